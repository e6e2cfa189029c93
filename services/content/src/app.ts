import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { createConsoleRouter } from '@flotilla/console';
import { createServiceApp, type ReadinessChecks, type ServiceMetrics } from '@flotilla/kit';
import type { TokenAuth } from './auth.js';
import type { ContentStore } from './blobstore/content-store.js';
import type { ContentCollections } from './collections.js';
import type { ContentConfig } from './config.js';
import type { Catalog } from './domain/catalog.js';
import type { ChannelStore } from './domain/channels.js';
import type { Promotions } from './domain/promotions.js';
import type { Publisher } from './publish/publisher.js';
import { mountGc } from './routes/gc.js';
import { mountHooks } from './routes/hooks.js';
import { mountOpenApi } from './routes/openapi.js';
import { mountPromotions } from './routes/promotions.js';
import { mountPublications } from './routes/publications.js';
import { mountRepositories } from './routes/repositories.js';
import { mountRollbacks } from './routes/rollbacks.js';
import { mountSignatures } from './routes/signatures.js';
import { mountSyncs } from './routes/syncs.js';
import { mountTasks } from './routes/tasks.js';
import { mountUntags } from './routes/untags.js';
import type { Signatures } from './signing/signatures.js';
import type { ContentTasks } from './tasks/submit.js';
import type { TaskQueue } from './tasks/task-queue.js';
import type { TaskWorker } from './tasks/worker.js';

export interface ContentAppDeps {
  config: ContentConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  readiness?: ReadinessChecks;
  auth: TokenAuth;
  c: ContentCollections;
  channels: ChannelStore;
  catalog: Catalog;
  contentStore: ContentStore;
  promotions: Promotions;
  publisher: Publisher;
  queue: TaskQueue;
  worker: TaskWorker;
  tasks: ContentTasks;
  signatures: Signatures;
}

/** The content API under `/api/v1`, one router file per resource; problem JSON for every error. */
export function createApp(deps: ContentAppDeps): Express {
  return createServiceApp(
    {
      name: 'content',
      logger: deps.logger,
      metrics: deps.metrics,
      ...(deps.readiness ? { readiness: deps.readiness } : {}),
      errorFormat: 'problem',
    },
    (app) => {
      const router = express.Router();
      for (const mount of [
        mountOpenApi,
        mountRepositories,
        mountSyncs,
        mountPromotions,
        mountUntags,
        mountRollbacks,
        mountPublications,
        mountGc,
        mountTasks,
        mountSignatures,
        mountHooks,
      ]) {
        mount(router, deps);
      }
      app.use('/api/v1', router);
      // The web console (packages/console): static pages, and the mirrors API through one origin.
      app.use('/console', createConsoleRouter({ mirrorsApiUrl: deps.config.mirrorsUrl }));
    },
  );
}

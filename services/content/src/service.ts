import type { Logger } from 'pino';
import type { Bus, Subscription } from '@flotilla/bus';
import { createOutbox } from '@flotilla/bus';
import {
  createMetrics,
  createStorageSpace,
  loadOrCreateSecret,
  type ServiceInstance,
} from '@flotilla/kit';
import type { Store } from '@flotilla/store';
import { createApp } from './app.js';
import { TokenAuth } from './auth.js';
import { ContentStore } from './blobstore/content-store.js';
import { contentCollections, ensureIndexes } from './collections.js';
import type { ContentConfig } from './config.js';
import { ContentMetrics } from './content-metrics.js';
import { Catalog } from './domain/catalog.js';
import { ChannelStore } from './domain/channels.js';
import { Promotions } from './domain/promotions.js';
import { adoptStoredFile, ContentGc } from './gc/content-gc.js';
import { PublishedTree } from './publish/published-tree.js';
import { Publisher, type PublishParams } from './publish/publisher.js';
import { Reconciler } from './sync/reconciler.js';
import { loadSigningKeys, type SigningKeys } from './signing/keys.js';
import { Resigner, type ResignParams } from './signing/resigner.js';
import { Signatures } from './signing/signatures.js';
import { Synchronizer } from './sync/synchronizer.js';
import { ContentTasks } from './tasks/submit.js';
import { TaskSchedule } from './tasks/schedule.js';
import { TaskQueue } from './tasks/task-queue.js';
import { TaskWorker } from './tasks/worker.js';

export const TASKS_QUEUE = 'flotilla.content.tasks';
export const REGISTRY_EVENTS_QUEUE = 'flotilla.content.registry-events';

export interface ContentServiceDeps {
  config: ContentConfig;
  logger: Logger;
  store: Store;
  bus: Bus;
  /** Queue names (tests on a shared RabbitMQ make them unique). */
  queues?: { tasks?: string; registryEvents?: string };
  /** How often idle workers look for tasks and expired leases (default 2000 ms). */
  pollMs?: number;
  /** How often the outbox retries pending events (default 2000 ms). */
  outboxIntervalMs?: number;
}

export interface ContentService extends ServiceInstance {
  /** The pieces, for tests and the CLI (same objects the API uses). */
  readonly parts: {
    config: ContentConfig;
    channels: ChannelStore;
    catalog: Catalog;
    promotions: Promotions;
    publisher: Publisher;
    queue: TaskQueue;
    worker: TaskWorker;
    tasks: ContentTasks;
    synchronizer: Synchronizer;
    reconciler: Reconciler;
    gc: ContentGc;
    contentStore: ContentStore;
    tree: PublishedTree;
    signatures: Signatures;
    flushEvents(): Promise<void>;
  };
}

/**
 * The composition root of content: builds the domain on the given store and bus. Secrets not in
 * the configuration come from (or are generated into) `<dataDir>/secrets/`.
 */
export async function createContentService(deps: ContentServiceDeps): Promise<ContentService> {
  const { store, bus } = deps;
  const logger = deps.logger.child({ service: 'content' });
  const config: ContentConfig = { ...deps.config, registry: { ...deps.config.registry } };
  config.apiToken = (
    await loadOrCreateSecret(config.dataDir, 'api-token', { env: config.apiToken })
  ).value;
  config.webhookSecret = (
    await loadOrCreateSecret(config.dataDir, 'webhook-secret', { env: config.webhookSecret })
  ).value;
  config.registry.password ??= (await loadOrCreateSecret(config.dataDir, 'admin-password')).value;

  const c = contentCollections(store);
  await ensureIndexes(c);
  const metrics = createMetrics('content');
  const reserveBytes = config.minFreeBytes ?? 0;
  const contentSpace = createStorageSpace({
    directory: config.contentDir,
    reserveBytes,
    volume: 'content',
    metrics,
  });
  const publishSpace = createStorageSpace({
    directory: config.publishDir,
    reserveBytes,
    volume: 'publish',
    metrics,
  });
  const contentStore = new ContentStore(config.contentDir, { space: contentSpace });
  await contentStore.init();
  const tree = new PublishedTree(config.publishDir, { space: publishSpace });
  await tree.init();

  const outbox = createOutbox({
    store,
    bus,
    logger,
    ...(deps.outboxIntervalMs !== undefined ? { intervalMs: deps.outboxIntervalMs } : {}),
  });
  const channels = new ChannelStore(c, config.channels);
  const catalog = new Catalog(c);
  const keys: SigningKeys = await loadSigningKeys(config);
  if (keys.current.created)
    logger.info({ key: keys.current.id, path: keys.current.source }, 'generated a signing key');
  const signatures = new Signatures({
    catalog,
    contentStore,
    keys,
    identity: config.signing.identity,
  });
  const promotions = new Promotions(c, channels, catalog, config.policy, outbox, {
    signatures,
    channels: config.signing.channels,
  });
  const resigner = new Resigner({
    channels,
    catalog,
    signatures,
    logger: logger.child({ component: 'sign' }),
  });
  const synchronizer = new Synchronizer({
    channels,
    catalog,
    contentStore,
    events: outbox,
    logger: logger.child({ component: 'sync' }),
    concurrency: config.syncConcurrency,
    adoptFile: (digest) => adoptStoredFile(contentStore.paths, digest),
  });
  const publisher = new Publisher({
    c,
    channels,
    catalog,
    contentStore,
    tree,
    events: outbox,
    keys,
    logger: logger.child({ component: 'publish' }),
    retainPublications: config.retainPublications,
    blobGraceSeconds: config.blobGraceSeconds,
    requestRetention: async () => {
      await tasks.submitRetention();
    },
  });
  const gc = new ContentGc({
    c,
    paths: contentStore.paths,
    logger: logger.child({ component: 'gc' }),
    keepVersions: config.keepVersions,
    graceMs: config.gcGraceMs,
    servedVersions: () => publisher.unprunedServedVersions(),
  });
  const contentMetrics = new ContentMetrics(metrics.registry);
  const leaseMs = config.taskLeaseSeconds * 1000;
  const queue = new TaskQueue(c, bus, logger.child({ component: 'tasks' }), leaseMs);
  const tasks: ContentTasks = new ContentTasks(queue, config, () => worker.wake());
  const reconciler = new Reconciler({
    channels,
    registry: () => config.registry,
    submitSync: (repository) => tasks.submitSync({ repository }, true),
    logger: logger.child({ component: 'reconcile' }),
  });
  const schedules = [
    new TaskSchedule({
      queue,
      kind: 'reconcile',
      intervalMs: config.reconcileIntervalMs,
      submit: () => tasks.submitReconcile(),
      logger,
    }),
    new TaskSchedule({
      queue,
      kind: 'gc',
      intervalMs: config.gcIntervalMs,
      submit: () => tasks.submitGc(),
      logger,
    }),
  ] as const;
  const worker: TaskWorker = new TaskWorker({
    queue,
    logger: logger.child({ component: 'worker' }),
    concurrency: config.workers,
    leaseMs,
    ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}),
    onEnded: (task, state, seconds) => contentMetrics.taskEnded(task.kind, state, seconds),
    handlers: {
      sync: async (task, ctx) => {
        const result = await synchronizer.sync(
          tasks.syncParams(task),
          ctx.progress,
          ctx.signal,
          task._id,
        );
        contentMetrics.synced(result.bytesFetched);
        return result;
      },
      publish: async (task, ctx) => {
        const result = await publisher.publish(
          task.params as unknown as PublishParams,
          ctx.progress,
          ctx.signal,
          task._id,
        );
        if (result.changed) contentMetrics.published(result.publication, result.newBlobs);
        return result;
      },
      retention: async () => ({ ...(await publisher.applyRetention()) }),
      reconcile: async (_task, ctx) => ({ ...(await reconciler.run(ctx.progress, ctx.signal)) }),
      gc: async (task, ctx) => ({
        ...(await gc.run({ dryRun: task.params.dryRun === true }, ctx.progress, ctx.signal)),
      }),
      sign: async (task, ctx) => ({
        ...(await resigner.resign(
          task.params as unknown as ResignParams,
          ctx.progress,
          ctx.signal,
        )),
      }),
    },
  });
  const app = createApp({
    config,
    logger,
    metrics,
    readiness: {
      store: () => store.ping(),
      bus: () => bus.ping(),
      // "storage low" warnings: below the reserve syncs and publishes fail, the API still reads
      'content-storage': () => contentSpace.readinessCheck(),
      'publish-storage': () => publishSpace.readinessCheck(),
    },
    auth: new TokenAuth(config.apiToken, config.readTokens),
    c,
    channels,
    catalog,
    contentStore,
    promotions,
    publisher,
    queue,
    worker,
    tasks,
    signatures,
  });

  const subscriptions: Subscription[] = [];
  let started = false;
  let readyResolve: () => void = () => undefined;
  const readyPromise = new Promise<void>((resolve) => (readyResolve = resolve));

  return {
    name: 'content',
    handler: app,
    parts: {
      config,
      channels,
      catalog,
      promotions,
      publisher,
      queue,
      worker,
      tasks,
      synchronizer,
      reconciler,
      gc,
      contentStore,
      tree,
      signatures,
      flushEvents: () => outbox.flush(),
    },
    async start() {
      if (started) return;
      started = true;
      await outbox.start();
      // A crash between a version and its pointer, or its audit record: both are rebuilt.
      const pointers = await channels.repairPointers();
      if (pointers > 0)
        logger.warn({ pointers }, 'channel pointers moved to their newest versions');
      const repaired = await promotions.repairAudit();
      if (repaired > 0) logger.warn({ repaired }, 'audit records rebuilt from their versions');
      subscriptions.push(
        await bus.subscribe(
          deps.queues?.registryEvents ?? REGISTRY_EVENTS_QUEUE,
          ['registry.manifest.pushed'],
          async (event) => {
            if (event.type !== 'registry.manifest.pushed') return;
            const data = event.data as { repository: string };
            await tasks.submitSync({ repository: data.repository }, true);
          },
        ),
      );
      if (config.workers > 0) {
        subscriptions.push(
          await bus.subscribe(
            deps.queues?.tasks ?? TASKS_QUEUE,
            ['content.task.queued'],
            async () => {
              worker.wake();
            },
          ),
        );
      }
      worker.start();
      // Reconcile at start heals events lost while no content process listened.
      schedules[0].start({ now: true });
      schedules[1].start();
      readyResolve();
    },
    async stop() {
      for (const schedule of schedules) await schedule.stop();
      for (const s of subscriptions.splice(0)) await s.cancel();
      await worker.stop();
      await outbox.stop();
      started = false;
    },
    ready: () => readyPromise,
  };
}

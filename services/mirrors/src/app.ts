import {
  createServiceApp,
  type ReadinessChecks,
  type ServiceApp,
  type ServiceMetrics,
} from '@flotilla/kit';
import type { RedirectStatisticsSummary } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { Crawler } from './crawler/crawler.js';
import type { CrawlLog, MirrorRepository } from './mirrors/repository.js';
import { requireApiToken } from './routes/admin-auth.js';
import { masterRouter } from './routes/master.js';
import { mirrorsRouter } from './routes/mirrors.js';
import { publicListRouter } from './routes/public-list.js';

/**
 * The mirrors service's HTTP side: the admin API, the public mirror list, the master tree.
 * Redirects and /mirrorlist are the redirector's (services/redirector).
 */
export interface AppDeps {
  logger: Logger;
  metrics: ServiceMetrics;
  readiness?: ReadinessChecks;
  repository: MirrorRepository;
  crawlLog: CrawlLog;
  crawler: Crawler;
  statistics: () => Promise<RedirectStatisticsSummary>;
  apiToken: string | undefined;
  /** Serve this directory at /master/; undefined = do not. */
  masterDir: string | undefined;
  currentPublication: () => number | null;
  changed: () => Promise<void>;
  /** Refuses an admin write early (507) while the data directory's volume is below its reserve. */
  ensureWritable?: () => Promise<void>;
}

export function createApp(deps: AppDeps): ServiceApp {
  return createServiceApp(
    {
      name: 'mirrors',
      logger: deps.logger,
      metrics: deps.metrics,
      readiness: deps.readiness,
      errorFormat: 'problem',
    },
    (app) => {
      app.use(
        publicListRouter({
          repository: deps.repository,
          currentPublication: deps.currentPublication,
        }),
      );
      if (deps.masterDir !== undefined) app.use(masterRouter(deps.masterDir));
      app.use('/api/v1', requireApiToken(deps.apiToken));
      app.use(
        mirrorsRouter({
          repository: deps.repository,
          crawlLog: deps.crawlLog,
          crawler: deps.crawler,
          statistics: deps.statistics,
          currentPublication: deps.currentPublication,
          changed: deps.changed,
          ...(deps.ensureWritable ? { ensureWritable: deps.ensureWritable } : {}),
        }),
      );
    },
  );
}

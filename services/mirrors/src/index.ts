export { createMirrorsService, type MirrorsService, type MirrorsServiceDeps } from './service.js';
export { loadMirrorsConfig, mirrorsConfigSchema, type MirrorsConfig } from './config.js';
export { main } from './main.js';
export { createApp, type AppDeps } from './app.js';
export {
  MirrorsClient,
  MirrorsApiError,
  type MirrorInput,
  type CrawlResult,
  type MirrorsClientOptions,
} from './client.js';
export type { MirrorView, CrawlStatus } from './mirrors/model.js';
export type { RedirectStatisticsSummary as StatisticsSummary } from '@flotilla/protocol';
export type { CrawlRecord } from './mirrors/repository.js';

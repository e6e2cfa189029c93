export {
  createRedirectorService,
  type RedirectorService,
  type RedirectorServiceDeps,
} from './service.js';
export { loadRedirectorConfig, redirectorConfigSchema, type RedirectorConfig } from './config.js';
export { main } from './main.js';
export { NO_GEO, openGeoLookup, type GeoInfo, type GeoLookup } from './geo.js';
export type { StatisticsSummary } from './statistics.js';

export {
  createCraneService,
  reloadQueueName,
  type CraneService,
  type CraneServiceDeps,
} from './service.js';
export { craneConfigSchema, loadCraneConfig, type CraneConfig } from './config.js';
export { createApp } from './app.js';
export { main } from './main.js';
export { createDirectorySource } from './source/directory-source.js';
export { createHttpSource } from './source/http-source.js';
export type { TreeSource } from './source/tree-source.js';
export type { Catalog } from './catalog/catalog.js';

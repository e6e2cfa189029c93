export {
  createRegistryService,
  type RegistryServiceDeps,
  type RegistryServiceInstance,
} from './service.js';
export { loadRegistryConfig, registryConfigSchema, type RegistryConfig } from './config.js';
export { main } from './main.js';
export { runGarbageCollection, type GcReport } from './ops/gc.js';
export { runFsck, type FsckReport } from './ops/fsck.js';

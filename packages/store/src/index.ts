export * from './port.js';
export { createEmbeddedStore, StoreWriteError, type EmbeddedStoreOptions } from './embedded.js';
export { createMongoStore, type MongoStoreOptions } from './mongo.js';
export { openStore, type OpenStoreOptions } from './open.js';
export {
  createCounters,
  createLeases,
  runExclusive,
  type Counters,
  type ExclusiveRun,
  type Leases,
} from './lease.js';
export {
  CorruptDatafileError,
  findCorruptLines,
  repairDatafile,
  type CorruptLine,
  type RepairReport,
} from './datafile.js';
export { collectionFile } from './paths.js';

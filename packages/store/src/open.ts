import { createEmbeddedStore } from './embedded.js';
import { createMongoStore } from './mongo.js';
import { embeddedStoreDir } from './paths.js';
import type { Store, StoreLogger } from './port.js';

export interface OpenStoreOptions {
  /** `$FLOTILLA_DATA_DIR`; the embedded store lives in `<dataDir>/db`. */
  dataDir: string;
  /** `MONGODB_URL`; when set, the store is MongoDB and `dataDir` is not used. */
  mongoUrl?: string | undefined;
  logger: StoreLogger;
  /** Passed to the embedded store. */
  compactIntervalMs?: number;
}

/** The composition roots' single entry point: MongoDB when a URL is configured, else embedded. */
export function openStore(options: OpenStoreOptions): Store {
  const { dataDir, mongoUrl, logger, compactIntervalMs } = options;
  if (mongoUrl) {
    logger.info({ store: 'mongo' }, 'opening store');
    return createMongoStore({ url: mongoUrl, logger });
  }
  const dir = embeddedStoreDir(dataDir);
  logger.info({ store: 'embedded', dir }, 'opening store');
  return createEmbeddedStore({
    dir,
    logger,
    ...(compactIntervalMs === undefined ? {} : { compactIntervalMs }),
  });
}

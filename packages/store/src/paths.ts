/**
 * The embedded store's on-disk layout; the only place that builds its paths.
 *
 *   <dir>/                      $FLOTILLA_DATA_DIR/db when opened through openStore
 *   ├── <collection>.db         one nedb datafile per collection: one JSON document per line,
 *   │                           appended on every write, rewritten (one line per live
 *   │                           document) by compaction
 *   └── <collection>.db~        nedb's temporary file while compacting (renamed into place)
 */

import { join } from 'node:path';

const COLLECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$/;

/** Collection names become file names, so they are restricted to a safe alphabet. */
export function assertCollectionName(name: string): void {
  if (!COLLECTION_NAME.test(name) || name.includes('..')) {
    throw new TypeError(
      `invalid collection name ${JSON.stringify(name)}: use letters, digits, '_', '-' and '.'`,
    );
  }
}

/** Where openStore puts the embedded store inside `$FLOTILLA_DATA_DIR`. */
export function embeddedStoreDir(dataDir: string): string {
  return join(dataDir, 'db');
}

export function collectionFile(dir: string, collection: string): string {
  assertCollectionName(collection);
  return join(dir, `${collection}.db`);
}

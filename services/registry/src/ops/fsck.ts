import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  createFilesystemDriver,
  PathNotFoundError,
  type StorageDriver,
} from '../storage/driver.js';
import { StoragePaths } from '../storage/paths.js';
import { isLeftover, takeInventory } from './inventory.js';

/**
 * `flotilla registry fsck`: re-hashes every blob and checks every pointer. `clean` is false
 * only for real damage — a blob whose bytes do not match its name, or a link/tag pointing at
 * something missing. Orphan blobs (no link anywhere: an interrupted push, or a deleted
 * manifest's leftovers) are normal until GC runs, and temporary files are what a crash leaves
 * and start-up removes; both are reported but do not make the store unclean.
 */
export interface FsckReport {
  blobs: number;
  bytes: number;
  repositories: number;
  corrupt: Array<{ digest: string; actual: string }>;
  danglingLinks: Array<{ repository: string; kind: string; path: string; digest: string }>;
  orphanBlobs: string[];
  temporaryFiles: string[];
  uploadSessions: number;
  clean: boolean;
}

export async function runFsck(options: {
  storageDir: string;
  logger: Logger;
}): Promise<FsckReport> {
  const logger = options.logger.child({ component: 'fsck' });
  const driver = createFilesystemDriver(options.storageDir);
  const inventory = await takeInventory(driver);
  const report: FsckReport = {
    blobs: inventory.blobs.size,
    bytes: 0,
    repositories: inventory.repositories.length,
    corrupt: [],
    danglingLinks: [],
    orphanBlobs: [],
    temporaryFiles: inventory.leftovers,
    uploadSessions: inventory.uploads,
    clean: true,
  };
  for (const blob of inventory.blobs.values()) {
    report.bytes += blob.size;
    const hash = createHash(blob.algorithm);
    try {
      const reader = await driver.reader(StoragePaths.blobData(blob));
      for await (const chunk of reader) hash.update(chunk as Buffer);
    } catch (err) {
      if (err instanceof PathNotFoundError) continue; // removed while checking (GC)
      throw err;
    }
    const actual = `${blob.algorithm}:${hash.digest('hex')}`;
    if (actual !== blob.digest) {
      report.corrupt.push({ digest: blob.digest, actual });
      logger.warn({ digest: blob.digest, actual }, 'corrupt blob');
    }
  }
  const revisions = new Set<string>();
  const referenced = new Set<string>();
  for (const link of inventory.links) {
    if (link.kind === 'revision') revisions.add(`${link.repository}@${link.digest}`);
    if (link.kind === 'layer' || link.kind === 'revision') referenced.add(link.digest);
  }
  for (const link of inventory.links) {
    const target =
      link.kind === 'tag' || link.kind === 'referrer'
        ? revisions.has(`${link.repository}@${link.digest}`)
        : inventory.blobs.has(link.digest);
    if (!target) {
      report.danglingLinks.push({
        repository: link.repository,
        kind: link.kind,
        path: link.path,
        digest: link.digest,
      });
      logger.warn(
        { repository: link.repository, kind: link.kind, digest: link.digest },
        'dangling link',
      );
    }
  }
  for (const digest of inventory.blobs.keys())
    if (!referenced.has(digest)) report.orphanBlobs.push(digest);
  report.clean = report.corrupt.length === 0 && report.danglingLinks.length === 0;
  logger.info(
    {
      blobs: report.blobs,
      corrupt: report.corrupt.length,
      dangling: report.danglingLinks.length,
      orphans: report.orphanBlobs.length,
    },
    'fsck finished',
  );
  return report;
}

/**
 * Start-up clean-up of what a crash left: temporary files are deleted; a blob parked by an
 * interrupted GC sweep (`data.sweep-*`) goes back to `data` when nothing replaced it (the
 * next GC decides again). `olderThan`: only files last written before it (replicas sharing the
 * storage leave each other's writes in progress alone).
 */
export async function removeTemporaryFiles(
  driver: StorageDriver,
  logger: Logger,
  olderThan?: Date,
): Promise<number> {
  const found: string[] = [];
  for (const root of [StoragePaths.blobsRoot, StoragePaths.repositoriesRoot]) {
    await driver.walk(root, (info) => {
      if (
        !info.isDir &&
        isLeftover(info.path) &&
        (olderThan === undefined || info.modTime < olderThan)
      )
        found.push(info.path);
      if (info.isDir && info.path.endsWith(`/${StoragePaths.reserved.uploads}`)) return 'skip';
    });
  }
  for (const path of found) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base.startsWith('data.sweep-')) {
      const data = `${path.slice(0, path.lastIndexOf('/'))}/data`;
      const exists = await driver.stat(data).then(
        () => true,
        () => false,
      );
      if (!exists) {
        await driver.move(path, data).catch(() => undefined);
        continue;
      }
    }
    await driver.delete(path);
  }
  if (found.length > 0)
    logger.info({ count: found.length }, 'removed leftovers of interrupted writes');
  return found.length;
}

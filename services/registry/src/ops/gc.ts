import { blobDescriptors, childManifests, isDigest, parseManifest } from '@flotilla/protocol';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { DEFAULT_GC_GRACE_MS } from '../config.js';
import { createGlobalBlobStore } from '../domain/blobs.js';
import { createUploadSessions } from '../domain/uploads.js';
import { createFilesystemDriver, PathNotFoundError } from '../storage/driver.js';
import { StoragePaths } from '../storage/paths.js';
import { takeInventory } from './inventory.js';

/**
 * `flotilla registry gc [--dry-run]`: removes blobs no manifest needs, while the registry
 * keeps serving (Distribution's GC needs it offline).
 *
 * The algorithm (mark and sweep with a time fence):
 * 1. `markStart` = now (minus one second for coarse mtimes). From here on, anything the
 *    registry writes or uses carries a newer mtime: a finished upload renames fresh data into
 *    place, a link touches the blob's data first, and a manifest PUT touches (`utimes`) every
 *    blob and child manifest it references before writing itself.
 * 2. Mark: every manifest revision of every repository is kept, and so is everything it
 *    references (config, layers, child manifests). Untagged manifests are kept too; deleting
 *    manifests is the API's job, not GC's.
 * 3. Sweep each unmarked blob unless its data or any link to it is newer than `markStart`:
 *    rename `data` to `data.sweep-<token>` (readers and `touch` now miss it), look at the
 *    parked file's mtime again — if someone touched it after the fence (between our scan and
 *    the rename) put it back — else delete it, then the layer links to it that are older than
 *    the fence. A manifest PUT racing the rename either touched first (we see the new mtime
 *    and restore) or touches after (it gets "blob unknown" and the client re-uploads), so a
 *    manifest never ends up pointing at a swept blob.
 * A push in progress is never raced: the fence lies a grace period (default 2 h, as Harbor)
 * before the mark, so a layer uploaded or linked within it is kept although no manifest names
 * it yet, and so is every layer linked into a repository that has an open upload session (a
 * build that takes longer than the grace period).
 * Upload sessions older than the upload TTL are purged with their bytes first (the registry
 * also does that hourly); the report says how many and how much.
 */
export interface GcReport {
  dryRun: boolean;
  markStart: string;
  blobs: number;
  marked: number;
  /** Unreferenced but too recent to sweep (within the grace period). */
  recent: number;
  /** Unreferenced but linked into a repository with an open upload session. */
  uploading: number;
  graceMs: number;
  /** Expired upload sessions removed (or, in a dry run, that would be). */
  uploadsPurged: Array<{ repository: string; uuid: string; bytes: number }>;
  uploadBytesFreed: number;
  swept: Array<{ digest: string; size: number }>;
  bytesFreed: number;
  /** Swept candidates that were touched during the sweep and restored. */
  restored: number;
}

export interface GcOptions {
  storageDir: string;
  dryRun?: boolean;
  logger: Logger;
  /** Blobs whose data or links are younger than this are kept (default 2 h). */
  graceMs?: number;
  /** Upload sessions older than this are purged (default 24 h, the registry's default). */
  uploadTtlMs?: number;
}

export async function runGarbageCollection(options: GcOptions): Promise<GcReport> {
  const logger = options.logger.child({ component: 'gc' });
  const dryRun = options.dryRun ?? false;
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const driver = createFilesystemDriver(options.storageDir);
  const now = new Date();
  const markStart = new Date(now.getTime() - 1000);
  const fence = markStart.getTime() - graceMs;
  const uploads = createUploadSessions({
    driver,
    blobs: createGlobalBlobStore(driver),
    logger: logger.child({ component: 'uploads' }),
    ttlMs: options.uploadTtlMs ?? 24 * 3_600_000,
  });
  const purged = await uploads.purgeExpired(now, { dryRun });
  // expired sessions do not count as open, whether or not this run removed them
  const uploading = await uploads.openSessions(now);
  const inventory = await takeInventory(driver);

  const marked = new Set<string>();
  for (const link of inventory.links) {
    if (link.kind !== 'revision' || !isDigest(link.digest)) continue;
    marked.add(link.digest);
    const blob = inventory.blobs.get(link.digest);
    if (!blob) continue;
    try {
      const bytes = await driver.getContent(StoragePaths.blobData(blob));
      const parsed = parseManifest(bytes);
      for (const d of [...blobDescriptors(parsed), ...childManifests(parsed)]) marked.add(d.digest);
    } catch (err) {
      // An unreadable manifest keeps everything it might reference: refuse to sweep blindly.
      logger.warn(
        { err, digest: link.digest, repository: link.repository },
        'failed to parse manifest; keeping all layer-linked blobs',
      );
      for (const other of inventory.links) if (other.kind === 'layer') marked.add(other.digest);
    }
  }

  const linksByDigest = new Map<string, typeof inventory.links>();
  for (const link of inventory.links) {
    if (link.kind !== 'layer') continue;
    const list = linksByDigest.get(link.digest) ?? [];
    list.push(link);
    linksByDigest.set(link.digest, list);
  }

  const report: GcReport = {
    dryRun,
    markStart: markStart.toISOString(),
    blobs: inventory.blobs.size,
    marked: 0,
    recent: 0,
    uploading: 0,
    graceMs,
    uploadsPurged: purged.sessions,
    uploadBytesFreed: purged.bytes,
    swept: [],
    bytesFreed: 0,
    restored: 0,
  };
  for (const blob of inventory.blobs.values()) {
    if (marked.has(blob.digest)) {
      report.marked++;
      continue;
    }
    const links = linksByDigest.get(blob.digest) ?? [];
    if (blob.modTime.getTime() >= fence || links.some((l) => l.modTime.getTime() >= fence)) {
      report.recent++;
      continue;
    }
    if (links.some((l) => uploading.has(l.repository))) {
      report.uploading++;
      continue;
    }
    if (dryRun) {
      report.swept.push({ digest: blob.digest, size: blob.size });
      report.bytesFreed += blob.size;
      continue;
    }
    const data = StoragePaths.blobData(blob);
    const parked = StoragePaths.sweepTrash(blob, randomBytes(6).toString('hex'));
    try {
      await driver.move(data, parked);
    } catch (err) {
      if (err instanceof PathNotFoundError) continue;
      throw err;
    }
    const info = await driver.stat(parked);
    if (info.modTime.getTime() >= fence) {
      await driver.move(parked, data);
      report.restored++;
      continue;
    }
    await driver.delete(parked);
    for (const link of links) {
      const current = await driver.stat(link.path).catch(() => undefined);
      if (current && current.modTime.getTime() < fence)
        await driver.delete(link.path.slice(0, link.path.lastIndexOf('/')));
    }
    // the blob directory itself, when nothing new arrived in it
    const dir = StoragePaths.blobDir(blob);
    const rest = await driver.list(dir).catch(() => ['?']);
    if (rest.length === 0) await driver.delete(dir);
    report.swept.push({ digest: blob.digest, size: blob.size });
    report.bytesFreed += blob.size;
  }
  logger.info(
    {
      dryRun,
      blobs: report.blobs,
      marked: report.marked,
      recent: report.recent,
      uploading: report.uploading,
      swept: report.swept.length,
      bytesFreed: report.bytesFreed,
      uploadsPurged: report.uploadsPurged.length,
      uploadBytesFreed: report.uploadBytesFreed,
    },
    'garbage collection finished',
  );
  return report;
}

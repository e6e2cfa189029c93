import { blobDescriptors, childManifests, isDigest, parseManifest } from '@flotilla/protocol';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
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
 * Upload sessions are not GC's business (the registry purges expired ones itself).
 */
export interface GcReport {
  dryRun: boolean;
  markStart: string;
  blobs: number;
  marked: number;
  /** Unreferenced but too recent to sweep. */
  recent: number;
  swept: Array<{ digest: string; size: number }>;
  bytesFreed: number;
  /** Swept candidates that were touched during the sweep and restored. */
  restored: number;
}

export async function runGarbageCollection(options: { storageDir: string; dryRun?: boolean; logger: Logger }): Promise<GcReport> {
  const logger = options.logger.child({ component: 'gc' });
  const dryRun = options.dryRun ?? false;
  const driver = createFilesystemDriver(options.storageDir);
  const markStart = new Date(Date.now() - 1000);
  const fence = markStart.getTime();
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
      logger.warn({ err, digest: link.digest, repository: link.repository }, 'failed to parse manifest; keeping all layer-linked blobs');
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
      if (current && current.modTime.getTime() < fence) await driver.delete(link.path.slice(0, link.path.lastIndexOf('/')));
    }
    // the blob directory itself, when nothing new arrived in it
    const dir = StoragePaths.blobDir(blob);
    const rest = await driver.list(dir).catch(() => ['?']);
    if (rest.length === 0) await driver.delete(dir);
    report.swept.push({ digest: blob.digest, size: blob.size });
    report.bytesFreed += blob.size;
  }
  logger.info(
    { dryRun, blobs: report.blobs, marked: report.marked, swept: report.swept.length, bytesFreed: report.bytesFreed },
    'garbage collection finished',
  );
  return report;
}

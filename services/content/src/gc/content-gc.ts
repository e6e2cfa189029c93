import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ContentPaths } from '../blobstore/paths.js';
import type {
  ChannelVersionDoc,
  ContentCollections,
  ManifestDoc,
  PublicationSnapshotEntry,
} from '../collections.js';
import type { ProgressReporter } from '../tasks/progress.js';

/** Largest `$in` list sent to the store at once. */
const IN_BATCH = 500;

export interface ContentGcOptions {
  c: ContentCollections;
  paths: ContentPaths;
  logger: Logger;
  /** Versions kept per channel, newest first (the head is always one of them). */
  keepVersions: number;
  /** Records and files used (written, or relied on by a sync) more recently than this are kept. */
  graceMs: number;
  /**
   * Every version a view of the published tree serves or a publication not yet pruned served
   * (the publisher's `unprunedServedVersions`): kept whatever `keepVersions` says.
   */
  servedVersions: () => Promise<PublicationSnapshotEntry[]>;
}

export interface GcReport {
  dryRun: boolean;
  /** Records and files older than this (and unreferenced) were eligible. */
  cutoff: string;
  versions: number;
  manifests: number;
  blobs: number;
  bytes: number;
  tmpFiles: number;
  kept: { versions: number; manifests: number; files: number };
}

type Timed = { _id: string; createdAt: string; usedAt?: string };

const lastUse = (doc: Timed): string =>
  doc.usedAt && doc.usedAt > doc.createdAt ? doc.usedAt : doc.createdAt;

/** The store filter for "not used since `cutoff`": gc's conditional deletes (a sync's touch wins). */
const unusedSince = (cutoff: string) => ({
  $or: [{ usedAt: { $lt: cutoff } }, { usedAt: { $exists: false }, createdAt: { $lt: cutoff } }],
});

/**
 * An unrecorded file already in the content store is adopted by a sync: its mtime becomes now,
 * so a concurrent gc puts it back instead of removing it. False when it is gone.
 */
export async function adoptStoredFile(paths: ContentPaths, digest: string): Promise<boolean> {
  const now = new Date();
  try {
    await fs.utimes(paths.blob(digest), now, now);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Garbage collection of content's own store: channel versions beyond the policy, then manifests,
 * blob records and files nothing kept references.
 *
 * Kept always: the newest `keepVersions` versions of every channel (so every head), every version
 * any channel's view of the published tree serves or a pending/complete publication served, and
 * everything those reference;
 * every record and file used within the grace period (or since the oldest running sync started),
 * so what an in-flight sync wrote or relies on stays. Syncs mark what they rely on (`usedAt`);
 * each record goes by a delete conditional on not having been used since the cutoff, and a file
 * only after its record went, by rename to `tmp/` and a look at its mtime (a file a sync rewrote
 * or adopted meanwhile is put back). Files the published tree holds (`published`) stay until
 * retention drops them from the tree. Versions made while gc runs are marked before the sweep.
 */
export class ContentGc {
  constructor(private readonly o: ContentGcOptions) {}

  async run(
    options: { dryRun: boolean },
    progress: ProgressReporter,
    signal: AbortSignal,
    now = new Date(),
  ): Promise<GcReport> {
    const { c, logger } = this.o;
    const startedAt = now.toISOString();
    const cutoff = await this.cutoff(now);
    const report: GcReport = {
      dryRun: options.dryRun,
      cutoff,
      versions: 0,
      manifests: 0,
      blobs: 0,
      bytes: 0,
      tmpFiles: 0,
      kept: { versions: 0, manifests: 0, files: 0 },
    };

    progress.update({ message: 'choosing versions' });
    const { kept, dropped } = await this.planVersions();
    report.versions = dropped.length;
    report.kept.versions = kept.length;
    if (!options.dryRun) {
      for (const batch of batches(dropped))
        await c.channelVersions.deleteMany({ _id: { $in: batch } });
    }
    signal.throwIfAborted();

    progress.update({ message: 'marking' });
    const manifestDocs = await c.manifests.find(
      {},
      { projection: { _id: 1, createdAt: 1, usedAt: 1, blobs: 1, children: 1 } },
    );
    const byDigest = new Map(manifestDocs.map((m) => [m._id, m]));
    const marked = new Set<string>();
    const roots = kept.flatMap((v) => v.tags.map((t) => t.digest));
    // Recently used manifests are roots too: an in-flight sync relies on their closures.
    for (const m of manifestDocs) if (lastUse(m) >= cutoff) roots.push(m._id);
    markClosures(roots, byDigest, marked);
    // Versions made while gc ran (a rollback or promotion of older content) are marked too.
    const fresh = await c.channelVersions.find({ createdAt: { $gte: startedAt } });
    markClosures(
      fresh.flatMap((v) => v.tags.map((t) => t.digest)),
      byDigest,
      marked,
    );
    signal.throwIfAborted();

    progress.update({ message: 'sweeping records' });
    const sweptFiles = new Set<string>();
    for (const m of manifestDocs) {
      if (marked.has(m._id) || lastUse(m) >= cutoff) continue;
      if (options.dryRun) report.manifests++;
      else if (
        (await c.manifests.deleteOne({ _id: m._id, ...unusedSince(cutoff) })).deletedCount > 0
      )
        report.manifests++;
    }
    const blobDocs = await c.blobs.find(
      {},
      { projection: { _id: 1, createdAt: 1, usedAt: 1, published: 1 } },
    );
    const recorded = new Set<string>();
    for (const b of blobDocs) {
      recorded.add(b._id);
      // The published tree holds it (usually as a hard link): retention decides, not gc.
      if (marked.has(b._id) || b.published || lastUse(b) >= cutoff) continue;
      if (
        options.dryRun ||
        (await c.blobs.deleteOne({ _id: b._id, published: { $ne: true }, ...unusedSince(cutoff) }))
          .deletedCount > 0
      ) {
        sweptFiles.add(b._id);
      }
    }
    report.kept.manifests = manifestDocs.length - report.manifests;
    signal.throwIfAborted();

    progress.update({ message: 'sweeping files' });
    const cutoffMs = Date.parse(cutoff);
    for await (const { digest, file } of this.walk()) {
      // A file without a record was left by a sync that died before recording it.
      const orphan = !recorded.has(digest) && !marked.has(digest);
      if (!sweptFiles.has(digest) && !orphan) {
        report.kept.files++;
        continue;
      }
      const st = await fs.stat(file).catch(() => undefined);
      if (!st || st.mtimeMs >= cutoffMs) {
        if (st) report.kept.files++;
        continue;
      }
      if (options.dryRun) {
        report.blobs++;
        report.bytes += st.size;
        continue;
      }
      const removed = await this.removeFile(digest, cutoffMs);
      if (removed === undefined) report.kept.files++;
      else {
        report.blobs++;
        report.bytes += removed;
      }
    }
    report.tmpFiles = await this.sweepTmp(cutoffMs, options.dryRun);
    logger.info({ ...report }, options.dryRun ? 'gc dry run finished' : 'gc finished');
    return report;
  }

  /** Now minus the grace period, or the start of the oldest running sync when that is earlier. */
  private async cutoff(now: Date): Promise<string> {
    let cutoff = new Date(now.getTime() - this.o.graceMs).toISOString();
    const running = await this.o.c.tasks.find(
      { kind: 'sync', state: 'running' },
      { projection: { startedAt: 1 } },
    );
    for (const t of running) if (t.startedAt && t.startedAt < cutoff) cutoff = t.startedAt;
    return cutoff;
  }

  /**
   * Per channel: keep from the oldest version anything needs (the newest `keepVersions`, every
   * view's, pending or complete publications') up to the head; drop older ones.
   * Kept versions stay contiguous.
   */
  private async planVersions(): Promise<{ kept: ChannelVersionDoc[]; dropped: string[] }> {
    const { c, keepVersions } = this.o;
    const needed = new Map<string, number>();
    const need = (repository: string, channel: string, version: number) => {
      const key = `${repository}|${channel}`;
      needed.set(key, Math.min(needed.get(key) ?? Number.MAX_SAFE_INTEGER, version));
    };
    for (const s of await this.o.servedVersions()) need(s.repository, s.channel, s.version);
    const all = await c.channelVersions.find({}, { sort: { number: -1 } });
    const byChannel = new Map<string, (ChannelVersionDoc & { _id: string })[]>();
    for (const v of all) {
      const key = `${v.repository}|${v.channel}`;
      const list = byChannel.get(key) ?? [];
      list.push(v);
      byChannel.set(key, list);
    }
    const kept: ChannelVersionDoc[] = [];
    const dropped: string[] = [];
    for (const [key, versions] of byChannel) {
      const head = (versions[0] as ChannelVersionDoc).number;
      const keepFrom = Math.min(
        head - keepVersions + 1,
        needed.get(key) ?? Number.MAX_SAFE_INTEGER,
      );
      for (const v of versions) {
        if (v.number >= keepFrom) kept.push(v);
        else dropped.push(v._id);
      }
    }
    return { kept, dropped };
  }

  private async *walk(): AsyncGenerator<{ digest: string; file: string }> {
    const { paths } = this.o;
    for (const algorithm of await readdirOrEmpty(paths.blobsDir())) {
      for (const prefix of await readdirOrEmpty(paths.blobsDir(algorithm))) {
        for (const hex of await readdirOrEmpty(paths.blobsDir(algorithm, prefix))) {
          const digest = `${algorithm}:${hex}`;
          let file: string;
          try {
            file = paths.blob(digest);
          } catch {
            continue; // not a file of ours
          }
          yield { digest, file };
        }
      }
    }
  }

  /**
   * Moves the file aside, then looks at what it moved: a file written or adopted since the cutoff
   * goes back (content-addressed, so putting it back over a fresh copy changes nothing).
   * Returns the bytes reclaimed, or undefined when it was kept.
   */
  private async removeFile(digest: string, cutoffMs: number): Promise<number | undefined> {
    const { paths } = this.o;
    const file = paths.blob(digest);
    const aside = paths.tmp(`gc-${randomUUID()}`);
    try {
      await fs.rename(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const st = await fs.stat(aside);
    if (st.mtimeMs >= cutoffMs) {
      await fs.rename(aside, file);
      return undefined;
    }
    await fs.rm(aside, { force: true });
    return st.size;
  }

  /** Downloads a dead process left in `tmp/` (untouched since the cutoff). */
  private async sweepTmp(cutoffMs: number, dryRun: boolean): Promise<number> {
    const { paths } = this.o;
    let removed = 0;
    for (const name of await readdirOrEmpty(paths.tmpDir)) {
      const file = paths.tmp(name);
      const st = await fs.stat(file).catch(() => undefined);
      if (!st || !st.isFile() || st.mtimeMs >= cutoffMs) continue;
      if (!dryRun) await fs.rm(file, { force: true });
      removed++;
    }
    return removed;
  }
}

function markClosures(
  roots: string[],
  manifests: Map<string, Pick<ManifestDoc, 'blobs' | 'children'>>,
  marked: Set<string>,
): void {
  const stack = [...roots];
  while (stack.length > 0) {
    const digest = stack.pop() as string;
    if (marked.has(digest)) continue;
    marked.add(digest);
    const doc = manifests.get(digest);
    if (!doc) continue;
    for (const b of doc.blobs) marked.add(b.digest);
    for (const child of doc.children) stack.push(child);
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function* batches<T>(items: T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += IN_BATCH) yield items.slice(i, i + IN_BATCH);
}

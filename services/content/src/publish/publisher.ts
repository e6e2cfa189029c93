import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { faultPoint } from '@flotilla/kit';
import {
  createEvent,
  DEFAULT_PUBLISHED_CHANNEL,
  parsePublicationRecord,
  repositoryMetadataSchema,
  publicationRecordSchema,
  type RepositoryMetadata,
} from '@flotilla/protocol';
import type { ContentStore } from '../blobstore/content-store.js';
import type {
  ContentCollections,
  PublicationDoc,
  PublicationSnapshotEntry,
  RepositoryDoc,
} from '../collections.js';
import { batches, type Catalog } from '../domain/catalog.js';
import { tagsToRecord, type ChannelStore } from '../domain/channels.js';
import { contentProblem } from '../domain/errors.js';
import { claimPublicationNumber } from '../domain/publication-numbers.js';
import type { EventSink } from '../domain/promotions.js';
import type { SigningKeys } from '../signing/keys.js';
import type { ProgressReporter } from '../tasks/progress.js';
import type { PublishedTree, StagedFile } from './published-tree.js';

export interface PublishParams {
  channel: string;
  repositories?: string[];
}

export type PublishResult = {
  channel: string;
  publication: number;
  /** False when the tree already held the channel's content: no publication was made. */
  changed: boolean;
  repositories: string[];
  newBlobs: number;
  bytesWritten: number;
  /** True when a retention task was queued (a publication fell out of the window). */
  retentionQueued: boolean;
};

export interface RetentionReport {
  prunedPublications: number[];
  markedUnreferenced: number;
  removedBlobs: number;
}

export interface PublisherDeps {
  c: ContentCollections;
  channels: ChannelStore;
  catalog: Catalog;
  contentStore: ContentStore;
  tree: PublishedTree;
  events: EventSink;
  /** Published under `keys/` with every publication, so clients can fetch what verifies it. */
  keys?: SigningKeys;
  logger: Logger;
  retainPublications: number;
  blobGraceSeconds: number;
  /** Blobs placed at once. */
  concurrency?: number;
  /** Queues a retention task; retention runs apart so a publish costs what changed. */
  requestRetention?: () => Promise<void>;
}

type Repo = RepositoryDoc & { _id: string };

/** A publication and one page of its sorted `newBlobs`, for `GET /api/v1/publications/<n>`. */
export interface PublicationDetail {
  doc: PublicationDoc & { _id: string };
  repositories: string[];
  newBlobs: string[];
  newBlobCount: number;
  /** Pass as `after` for the next page; absent on the last one. */
  nextAfter?: string;
}

/**
 * Writes a channel's current content into that channel's view of the published tree,
 * crash-safe and incremental. Other channels' views are never touched; blobs are shared.
 * 1. only the blobs and manifests the tree lacks (per the `blobs` index, never a tree walk),
 *    each verified, then recorded as published;
 * 2. one `publication_entries` document per repository written (bounded documents);
 * 3. `channels/<channel>/repositories/<name>.json` of the repositories whose channel version
 *    changed, all staged first, then renamed into the view together;
 * 4. `publications/<n>.json`; 5. `channels/<channel>/PUBLICATION`; 6. `PUBLICATION` last;
 * 7. the store marks n complete (counts only) and moves each repository's view pointer.
 * A failure or crash before 6 leaves the previous publication the newest; the next publish
 * reuses number n, redoes what n's attempt did (its entries and blob marks are reset first) and
 * still lists placed files in newBlobs. After 6 the store state is recomputed the same way.
 */
export class Publisher {
  constructor(private readonly deps: PublisherDeps) {}

  async lastComplete(): Promise<(PublicationDoc & { _id: string }) | undefined> {
    const [last] = await this.deps.c.publications.find(
      { state: { $in: ['complete', 'pruned'] } },
      { sort: { number: -1 }, limit: 1, projection: { snapshot: 0, newBlobs: 0, repositories: 0 } },
    );
    return last ?? undefined;
  }

  async publish(
    params: PublishParams,
    progress: ProgressReporter,
    signal: AbortSignal,
    taskId?: string,
  ): Promise<PublishResult> {
    const { tree } = this.deps;
    await tree.init();
    try {
      return await this.publishInto(params, progress, signal, taskId);
    } catch (err) {
      // Nothing staged was announced: drop it now rather than at the next publish.
      await tree.clearStaging().catch((cleanupErr: unknown) => {
        this.deps.logger.warn({ err: cleanupErr }, 'failed to clear the publish staging folder');
      });
      throw err;
    }
  }

  private async publishInto(
    params: PublishParams,
    progress: ProgressReporter,
    signal: AbortSignal,
    taskId?: string,
  ): Promise<PublishResult> {
    const { c, channels, catalog, contentStore, tree, logger } = this.deps;
    const { channel } = params;
    channels.assertChannel(channel);
    const { keys } = this.deps;
    if (keys) {
      await tree.writeKeys({
        schemaVersion: 1,
        current: keys.current.id,
        keys: [
          { id: keys.current.id, publicKey: keys.current.pem, status: 'current' },
          ...keys.retired.map((k) => ({ id: k.id, publicKey: k.pem, status: 'retired' as const })),
        ],
      });
    }

    const last = await this.lastComplete();

    let repos: Repo[] = (await channels.listRepositories()).filter(
      (r) => (r.channels[channel]?.version ?? 0) > 0,
    );
    if (params.repositories) {
      const wanted = new Set(params.repositories);
      repos = repos.filter((r) => wanted.has(r._id));
    }
    const changed = repos.filter((r) => {
      const version = r.channels[channel]?.version ?? 0;
      return r.views?.[channel]?.version !== version;
    });
    if (changed.length === 0) {
      logger.info({ channel }, 'nothing to publish');
      return {
        channel,
        publication: last?.number ?? 0,
        changed: false,
        repositories: [],
        newBlobs: 0,
        bytesWritten: 0,
        retentionQueued: false,
      };
    }

    const n = await claimPublicationNumber(c, { channel, taskId });
    const log = logger.child({ channel, publication: n });
    // An earlier attempt at n (this task's, or one that died, perhaps for another channel) may
    // have recorded entries: start n over, so nothing it recorded outlives it unannounced.
    await c.publicationEntries.deleteMany({ publication: n });
    await c.blobs.updateMany(
      { publishedIn: n },
      { $set: { published: false }, $unset: { publishedIn: '' } },
    );

    progress.update({ done: 0, total: changed.length, bytesDone: 0, message: 'writing blobs' });
    const limit = pLimit(this.deps.concurrency ?? 4);
    const newBlobs = new Set<string>();
    let bytesWritten = 0;
    const written: { repository: string; version: number }[] = [];
    const staged: StagedFile[] = [];

    for (const repo of changed) {
      signal.throwIfAborted();
      const versionNumber = repo.channels[channel]?.version ?? 0;
      const version = await channels.version(repo._id, channel, versionNumber);
      const closure = await catalog.closure(version.tags.map((t) => t.digest));
      const sizes = new Map<string, number>([...closure.blobs]);
      for (const [digest, doc] of closure.manifests) sizes.set(digest, doc.size);
      const docs = await catalog.blobDocs(sizes.keys());

      const toPlace: string[] = [];
      for (const digest of sizes.keys()) {
        const doc = docs.get(digest);
        if (!doc?.published) toPlace.push(digest);
        else if (doc.publishedIn === n) newBlobs.add(digest);
      }
      await Promise.all(
        toPlace.map((digest) =>
          limit(async () => {
            signal.throwIfAborted();
            const size = sizes.get(digest) as number;
            await tree.placeBlob(digest, contentStore.filePath(digest), size);
            bytesWritten += size;
            newBlobs.add(digest);
            progress.update({ bytesDone: bytesWritten });
          }),
        ),
      );
      faultPoint('publish.blobs-placed');
      // Recorded only once the files are in place: the index never claims a missing file.
      for (const batch of batches(toPlace)) {
        await c.blobs.updateMany(
          { _id: { $in: batch } },
          { $set: { published: true, publishedIn: n }, $unset: { unreferencedSince: '' } },
        );
      }
      await c.publicationEntries.updateOne(
        { _id: `${n}|${repo._id}` },
        { $set: { publication: n, channel, repository: repo._id, version: versionNumber } },
        { upsert: true },
      );

      const metadata: RepositoryMetadata = {
        schemaVersion: 1,
        repository: repo._id,
        publication: n,
        tags: tagsToRecord(version.tags),
        manifests: {},
        blobs: Object.fromEntries(closure.blobs),
      };
      for (const [digest, doc] of closure.manifests) {
        const bytes = await contentStore.readBytes(digest);
        metadata.manifests[digest] = {
          mediaType: doc.mediaType as RepositoryMetadata['manifests'][string]['mediaType'],
          size: doc.size,
          data: bytes.toString('base64'),
        };
      }
      staged.push(
        await tree.stageRepositoryMetadata(
          channel,
          repo._id,
          repositoryMetadataSchema.parse(metadata),
        ),
      );
      written.push({ repository: repo._id, version: versionNumber });
      progress.update({
        done: written.length,
        message: `prepared ${written.length} of ${changed.length} repositories`,
      });
    }

    signal.throwIfAborted();
    faultPoint('publish.metadata-staged');
    const committed = await tree.commit(staged);
    faultPoint('publish.metadata-renamed');
    const time = new Date().toISOString();
    const record = publicationRecordSchema.parse({
      schemaVersion: 1,
      publication: n,
      channel,
      time,
      repositories: written.map((w) => w.repository),
      newBlobs: [...newBlobs].sort(),
    });
    try {
      await tree.writePublicationRecord(n, record);
      faultPoint('publish.record-written');
      await tree.writeChannelMarker(channel, n);
    } catch (err) {
      // the view goes back to what its marker announces (a fresh crane would skip newer files)
      await committed.rollback();
      throw err;
    }
    await committed.release();
    faultPoint('publish.channel-marker-written');
    await tree.writeMarker(n);
    faultPoint('publish.marker-written');

    await c.publications.updateOne(
      { _id: String(n) },
      {
        $set: {
          state: 'complete',
          time,
          repositoryCount: record.repositories.length,
          newBlobCount: record.newBlobs.length,
        },
      },
    );
    faultPoint('publish.store-complete');
    for (const w of written) {
      await c.repositories.updateOne(
        { _id: w.repository },
        {
          $set: {
            published: { channel, version: w.version, publication: n },
            [`views.${channel}`]: { version: w.version, publication: n },
          },
        },
      );
    }
    await this.deps.events.enqueue(
      createEvent('content.published', 'content', {
        channel,
        publication: n,
        repositories: record.repositories,
        newBlobs: record.newBlobs.length,
      }),
    );
    log.info(
      { repositories: written.length, newBlobs: newBlobs.size, bytesWritten },
      'publication complete',
    );

    let retentionQueued = false;
    try {
      retentionQueued = await this.queueRetentionIfDue();
    } catch (err) {
      log.warn({ err }, 'failed to queue publication retention');
    }
    return {
      channel,
      publication: n,
      changed: true,
      repositories: record.repositories,
      newBlobs: newBlobs.size,
      bytesWritten,
      retentionQueued,
    };
  }

  /** True when publications fell out of the window or unreferenced blobs await removal. */
  async retentionDue(): Promise<boolean> {
    const { c } = this.deps;
    const complete = await c.publications.countDocuments({ state: 'complete' });
    if (complete > this.deps.retainPublications) return true;
    // Only published blobs are ever marked; `$gt ''` lets both stores answer from the sparse index.
    return (
      (await c.blobs.findOne({ unreferencedSince: { $gt: '' } }, { projection: { _id: 1 } })) !==
      null
    );
  }

  private async queueRetentionIfDue(): Promise<boolean> {
    if (!this.deps.requestRetention || !(await this.retentionDue())) return false;
    await this.deps.requestRetention();
    return true;
  }

  /**
   * Keeps the content of the last K publications. The records `publications/<n>.json` of older
   * ones stay in the tree: they are the log from which the redirector learns which publication
   * introduced each blob (and crane, reading over HTTP, which repositories exist), so pruning
   * them would make blobs still in use unknown. Blobs no retained publication references are marked, and
   * removed from the tree once they stayed unreferenced for the grace period (mirrors and
   * clients still on an older publication keep working meanwhile). Runs only when there is
   * something to prune or a removal pending, so a steady-state publish does not walk the index.
   */
  async applyRetention(now = new Date()): Promise<RetentionReport> {
    const { c, catalog, tree } = this.deps;
    const report: RetentionReport = {
      prunedPublications: [],
      markedUnreferenced: 0,
      removedBlobs: 0,
    };
    const complete = await c.publications.find(
      { state: 'complete' },
      { sort: { number: -1 }, projection: { newBlobs: 0, repositories: 0 } },
    );
    const keep = complete.slice(0, this.deps.retainPublications);
    const prune = complete.slice(this.deps.retainPublications);
    if (prune.length === 0 && !(await this.retentionDue())) return report;

    for (const p of prune) {
      await c.publications.updateOne({ _id: p._id }, { $set: { state: 'pruned' } });
      report.prunedPublications.push(p.number);
    }

    const referenced = new Set<string>();
    const seen = new Set<string>();
    for (const entry of await this.servedVersions(keep)) {
      const key = `${entry.repository}|${entry.channel}|${entry.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const version = await this.deps.channels.version(
        entry.repository,
        entry.channel,
        entry.version,
      );
      const closure = await catalog.closure(version.tags.map((t) => t.digest));
      for (const d of closure.manifests.keys()) referenced.add(d);
      for (const d of closure.blobs.keys()) referenced.add(d);
    }

    const published = await c.blobs.find(
      { published: true },
      { projection: { _id: 1, unreferencedSince: 1 } },
    );
    const graceMs = this.deps.blobGraceSeconds * 1000;
    for (const blob of published) {
      if (referenced.has(blob._id)) {
        if (blob.unreferencedSince)
          await c.blobs.updateOne({ _id: blob._id }, { $unset: { unreferencedSince: '' } });
        continue;
      }
      if (!blob.unreferencedSince) {
        await c.blobs.updateOne(
          { _id: blob._id },
          { $set: { unreferencedSince: now.toISOString() } },
        );
        report.markedUnreferenced++;
      } else if (now.getTime() - Date.parse(blob.unreferencedSince) >= graceMs) {
        // The record goes first: a crash then leaves an orphan file, never a record without one.
        await c.blobs.updateOne(
          { _id: blob._id },
          { $set: { published: false }, $unset: { publishedIn: '', unreferencedSince: '' } },
        );
        await tree.removeBlob(blob._id);
        report.removedBlobs++;
      }
    }
    return report;
  }

  /**
   * Every (repository, channel, version) that some view of the tree serves, or served as of a
   * retained publication: each channel's current view, every entry written by a retained
   * publication (or a later, unfinished one), and for each repository and channel the entry in
   * force once the oldest retained publication was made (its own, or an earlier one). Trees written before channels add the
   * snapshots their publication documents carry, and the root view's while crane still reads it
   * (until the default channel has a view of its own).
   */
  async servedVersions(keep: readonly PublicationDoc[]): Promise<PublicationSnapshotEntry[]> {
    const { c, tree } = this.deps;
    const out: PublicationSnapshotEntry[] = [];
    const oldestKept = Math.min(...keep.map((p) => p.number));
    const repos = await c.repositories.find(
      { views: { $exists: true } },
      { projection: { _id: 1, views: 1 } },
    );
    for (const repo of repos) {
      for (const [channel, view] of Object.entries(repo.views ?? {})) {
        out.push({ repository: repo._id, channel, version: view.version });
        if (!Number.isFinite(oldestKept)) continue;
        const [inForce] = await c.publicationEntries.find(
          { channel, repository: repo._id, publication: { $lte: oldestKept } },
          { sort: { publication: -1 }, limit: 1 },
        );
        if (inForce) out.push(inForce);
      }
    }
    if (Number.isFinite(oldestKept)) {
      for (const entry of await c.publicationEntries.find({ publication: { $gte: oldestKept } }))
        out.push(entry);
    }
    for (const p of keep) out.push(...(p.snapshot ?? []));
    if ((await tree.readChannelMarker(DEFAULT_PUBLISHED_CHANNEL)) === undefined) {
      const [legacy] = await c.publications.find(
        { snapshot: { $exists: true } },
        { sort: { number: -1 }, limit: 1, projection: { snapshot: 1 } },
      );
      out.push(...(legacy?.snapshot ?? []));
    }
    return out;
  }

  /**
   * What every publication not yet pruned (complete, or pending) and every channel's current view
   * serves: the versions content gc must keep whatever its policy.
   */
  async unprunedServedVersions(): Promise<PublicationSnapshotEntry[]> {
    const unpruned = await this.deps.c.publications.find(
      { state: { $in: ['pending', 'complete'] } },
      { projection: { number: 1, snapshot: 1 } },
    );
    return this.servedVersions(unpruned);
  }

  async get(n: number): Promise<PublicationDoc & { _id: string }> {
    const doc = await this.deps.c.publications.findOne(
      { _id: String(n) },
      { projection: { snapshot: 0 } },
    );
    if (!doc) throw contentProblem('unknown-publication', `publication ${n} is unknown`);
    return doc;
  }

  /**
   * Publication n and what it added, `newBlobs` a page at a time (digests after `after`, sorted):
   * the lists come from the tree's `publications/<n>.json` (documents written before the lists
   * moved out still hold them), so no store document holds them.
   */
  async detail(n: number, page: { after?: string; limit: number }): Promise<PublicationDetail> {
    const doc = await this.get(n);
    let repositories: string[] = [];
    let all: string[] = [];
    const text = await this.deps.tree.readPublicationRecord(n);
    if (text !== undefined && doc.state !== 'pending') {
      const record = parsePublicationRecord(text);
      repositories = record.repositories;
      all = [...record.newBlobs].sort();
    } else {
      repositories = doc.repositories ?? [];
      all = [...(doc.newBlobs ?? [])].sort();
    }
    const start = page.after === undefined ? 0 : firstAfter(all, page.after);
    const newBlobs = all.slice(start, start + page.limit);
    const more = start + page.limit < all.length;
    return {
      doc,
      repositories,
      newBlobs,
      newBlobCount: all.length,
      ...(more ? { nextAfter: newBlobs[newBlobs.length - 1] } : {}),
    };
  }

  /** Newest first; documents written before the lists moved out still carry (and cost) them. */
  list(limit = 100): Promise<(PublicationDoc & { _id: string })[]> {
    return this.deps.c.publications.find(
      {},
      { sort: { number: -1 }, limit, projection: { snapshot: 0 } },
    );
  }
}

/** Index of the first entry of a sorted list greater than `after`. */
function firstAfter(sorted: readonly string[], after: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { createEvent, repositoryMetadataSchema, publicationRecordSchema, type RepositoryMetadata } from '@flotilla/protocol';
import type { ContentStore } from '../blobstore/content-store.js';
import type { ContentCollections, PublicationDoc, PublicationSnapshotEntry, RepositoryDoc } from '../collections.js';
import type { Catalog } from '../domain/catalog.js';
import { tagsToRecord, type ChannelStore } from '../domain/channels.js';
import { contentProblem } from '../domain/errors.js';
import type { EventSink } from '../domain/promotions.js';
import type { SigningKeys } from '../signing/keys.js';
import type { ProgressReporter } from '../tasks/progress.js';
import type { PublishedTree } from './published-tree.js';

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

/**
 * Writes a channel's current content into the published tree, crash-safe and incremental:
 * 1. only the blobs and manifests the tree lacks (per the `blobs` index, never a tree walk),
 *    each verified, then recorded as published;
 * 2. `repositories/<name>.json` of the repositories whose channel version changed, by rename;
 * 3. `publications/<n>.json`; 4. `PUBLICATION` last, by rename; 5. the store records.
 * A crash before 4 leaves the previous publication whole; the next publish reuses number n,
 * skips files already placed and still lists them in newBlobs.
 */
export class Publisher {
  constructor(private readonly deps: PublisherDeps) {}

  async lastComplete(): Promise<(PublicationDoc & { _id: string }) | undefined> {
    const [last] = await this.deps.c.publications.find({ state: { $in: ['complete', 'pruned'] } }, { sort: { number: -1 }, limit: 1 });
    return last ?? undefined;
  }

  async publish(params: PublishParams, progress: ProgressReporter, signal: AbortSignal, taskId?: string): Promise<PublishResult> {
    const { c, channels, catalog, contentStore, tree, logger } = this.deps;
    const { channel } = params;
    channels.assertChannel(channel);
    await tree.init();
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
    const n = (last?.number ?? 0) + 1;
    const log = logger.child({ channel, publication: n });

    let repos: Repo[] = (await channels.listRepositories()).filter((r) => (r.channels[channel]?.version ?? 0) > 0);
    if (params.repositories) {
      const wanted = new Set(params.repositories);
      repos = repos.filter((r) => wanted.has(r._id));
    }
    const changed = repos.filter((r) => {
      const version = r.channels[channel]?.version ?? 0;
      return !(r.published && r.published.channel === channel && r.published.version === version);
    });
    if (changed.length === 0) {
      log.info('nothing to publish');
      return { channel, publication: last?.number ?? 0, changed: false, repositories: [], newBlobs: 0, bytesWritten: 0, retentionQueued: false };
    }

    await c.publications.updateOne(
      { _id: String(n) },
      {
        $set: { number: n, channel, state: 'pending', time: new Date().toISOString(), ...(taskId ? { taskId } : {}) },
        $setOnInsert: { repositories: [], newBlobs: [], snapshot: [] },
      },
      { upsert: true },
    );

    progress.update({ done: 0, total: changed.length, bytesDone: 0, message: 'writing blobs' });
    const limit = pLimit(this.deps.concurrency ?? 4);
    const newBlobs = new Set<string>();
    let bytesWritten = 0;
    const written: { repository: string; version: number }[] = [];

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
      if (toPlace.length > 0) {
        // Recorded only once the files are in place: the index never claims a missing file.
        await c.blobs.updateMany(
          { _id: { $in: toPlace } },
          { $set: { published: true, publishedIn: n }, $unset: { unreferencedSince: '' } },
        );
      }

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
        metadata.manifests[digest] = { mediaType: doc.mediaType as RepositoryMetadata['manifests'][string]['mediaType'], size: doc.size, data: bytes.toString('base64') };
      }
      await tree.writeRepositoryMetadata(repo._id, repositoryMetadataSchema.parse(metadata));
      written.push({ repository: repo._id, version: versionNumber });
      progress.update({ done: written.length, message: `published ${written.length} of ${changed.length} repositories` });
    }

    signal.throwIfAborted();
    const time = new Date().toISOString();
    const record = publicationRecordSchema.parse({
      schemaVersion: 1,
      publication: n,
      channel,
      time,
      repositories: written.map((w) => w.repository),
      newBlobs: [...newBlobs].sort(),
    });
    await tree.writePublicationRecord(n, record);
    await tree.writeMarker(n);

    const snapshot = new Map<string, PublicationSnapshotEntry>((last?.snapshot ?? []).map((s) => [s.repository, s]));
    for (const w of written) snapshot.set(w.repository, { repository: w.repository, channel, version: w.version });
    await c.publications.updateOne(
      { _id: String(n) },
      {
        $set: {
          state: 'complete',
          time,
          repositories: record.repositories,
          newBlobs: record.newBlobs,
          snapshot: [...snapshot.values()],
        },
      },
    );
    for (const w of written) {
      await c.repositories.updateOne(
        { _id: w.repository },
        { $set: { published: { channel, version: w.version, publication: n } } },
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
    log.info({ repositories: written.length, newBlobs: newBlobs.size, bytesWritten }, 'publication complete');

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
    return (await c.blobs.findOne({ unreferencedSince: { $gt: '' } }, { projection: { _id: 1 } })) !== null;
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
    const report: RetentionReport = { prunedPublications: [], markedUnreferenced: 0, removedBlobs: 0 };
    const complete = await c.publications.find({ state: 'complete' }, { sort: { number: -1 } });
    const keep = complete.slice(0, this.deps.retainPublications);
    const prune = complete.slice(this.deps.retainPublications);
    if (prune.length === 0 && !(await this.retentionDue())) return report;

    for (const p of prune) {
      await c.publications.updateOne({ _id: p._id }, { $set: { state: 'pruned' } });
      report.prunedPublications.push(p.number);
    }

    const referenced = new Set<string>();
    const seen = new Set<string>();
    for (const p of keep) {
      for (const entry of p.snapshot) {
        const key = `${entry.repository}|${entry.channel}|${entry.version}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const version = await this.deps.channels.version(entry.repository, entry.channel, entry.version);
        const closure = await catalog.closure(version.tags.map((t) => t.digest));
        for (const d of closure.manifests.keys()) referenced.add(d);
        for (const d of closure.blobs.keys()) referenced.add(d);
      }
    }

    const published = await c.blobs.find({ published: true }, { projection: { _id: 1, unreferencedSince: 1 } });
    const graceMs = this.deps.blobGraceSeconds * 1000;
    for (const blob of published) {
      if (referenced.has(blob._id)) {
        if (blob.unreferencedSince) await c.blobs.updateOne({ _id: blob._id }, { $unset: { unreferencedSince: '' } });
        continue;
      }
      if (!blob.unreferencedSince) {
        await c.blobs.updateOne({ _id: blob._id }, { $set: { unreferencedSince: now.toISOString() } });
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

  async get(n: number): Promise<PublicationDoc & { _id: string }> {
    const doc = await this.deps.c.publications.findOne({ _id: String(n) });
    if (!doc) throw contentProblem('unknown-publication', `publication ${n} is unknown`);
    return doc;
  }

  list(limit = 100): Promise<(PublicationDoc & { _id: string })[]> {
    return this.deps.c.publications.find({}, { sort: { number: -1 }, limit, projection: { snapshot: 0 } });
  }
}

import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { blobDescriptors, childManifests, createEvent, digestOf, isSignatureTag, parseManifest, signatureTag } from '@flotilla/protocol';
import type { ContentStore } from '../blobstore/content-store.js';
import type { TagEntry } from '../collections.js';
import type { Catalog } from '../domain/catalog.js';
import { diffTags, type ChannelStore } from '../domain/channels.js';
import type { EventSink } from '../domain/promotions.js';
import type { ProgressReporter } from '../tasks/progress.js';
import { RegistryClient, UpstreamError, type UpstreamCredentials } from './registry-client.js';
import { createTagFilter } from './tag-filter.js';

export interface SyncParams {
  repository: string;
  upstream: { url: string; repository?: string } & UpstreamCredentials;
  includeTags?: string[];
  excludeTags?: string[];
  /** Mirror mode: the channel ends up with exactly the upstream's (filtered) tags. */
  mirror?: boolean;
  /** Skip tags whose manifest has no cosign signature (`sha256-<hex>.sig`) upstream. */
  signedOnly?: boolean;
}

export type SyncResult = {
  channel: string;
  version: number;
  changed: boolean;
  added: number;
  removed: number;
  tags: number;
  unchanged: number;
  /** Tags left out by `signedOnly`. */
  unsigned: string[];
  /** Cosign signature tags synced with what they sign. */
  signatures: number;
  manifestsFetched: number;
  blobsFetched: number;
  bytesFetched: number;
  failures: { tag: string; error: string }[];
};

export class SyncFailedError extends Error {
  override readonly name = 'SyncFailedError';
  readonly code = 'sync-failed';
}

export interface SynchronizerDeps {
  channels: ChannelStore;
  catalog: Catalog;
  contentStore: ContentStore;
  events: EventSink;
  logger: Logger;
  concurrency: number;
}

/**
 * Pulls one repository from a V2 registry into the content store and makes a new version of the
 * first channel (`candidate`): HEAD every tag first and skip what is unchanged, fetch only new
 * manifests (indexes recursed), download only missing blobs with bounded concurrency, hashing
 * while streaming. Files and records are written before the version that points at them.
 */
export class Synchronizer {
  constructor(private readonly deps: SynchronizerDeps) {}

  async sync(params: SyncParams, progress: ProgressReporter, signal: AbortSignal, taskId?: string): Promise<SyncResult> {
    const { channels, catalog, contentStore, logger } = this.deps;
    setMaxListeners(0, signal);
    const channel = channels.channels[0] as string;
    const upstreamRepo = params.upstream.repository ?? params.repository;
    const client = new RegistryClient(params.upstream.url, {
      username: params.upstream.username,
      password: params.upstream.password,
    });
    const log = logger.child({ repository: params.repository, upstream: params.upstream.url });
    const filter = createTagFilter(params.includeTags, params.excludeTags);

    const listed = await client.listTags(upstreamRepo, signal);
    // Signature tags are not synced for themselves: they come with the digests they sign.
    const upstreamSignatures = new Set(listed.filter(isSignatureTag));
    const upstreamTags = listed.filter((t) => !isSignatureTag(t) && filter(t)).sort();
    const unsigned: string[] = [];
    const current = await channels.current(params.repository, channel);
    const currentMap = new Map((current?.tags ?? []).map((t) => [t.tag, t.digest]));
    progress.update({ done: 0, total: upstreamTags.length, bytesDone: 0, message: 'checking tags' });

    const stats = { manifestsFetched: 0, blobsFetched: 0, bytesFetched: 0, unchanged: 0 };
    let bytesTotal = 0;
    const blobLimit = pLimit(this.deps.concurrency);
    // A HEAD costs the upstream little and is all a re-sync does: check more tags at once.
    const tagLimit = pLimit(Math.min(64, this.deps.concurrency * 4));
    const blobsInFlight = new Map<string, Promise<void>>();
    const manifestsInFlight = new Map<string, Promise<void>>();
    const failures: { tag: string; error: string }[] = [];
    const resolved: TagEntry[] = [];
    let done = 0;

    const ensureBlob = (digest: string, size: number): Promise<void> => {
      let pending = blobsInFlight.get(digest);
      if (!pending) {
        pending = (async () => {
          const have = await contentStore.size(digest);
          if (have === size) {
            await catalog.recordBlob(digest, size, 'blob');
            return;
          }
          bytesTotal += size;
          progress.update({ bytesTotal });
          await blobLimit(() =>
            client.withRetry(async () => {
              const { body } = await client.openBlob(upstreamRepo, digest, signal);
              await contentStore.write(digest, body, {
                expectedSize: size,
                signal,
                onBytes: (n) => {
                  stats.bytesFetched += n;
                  progress.update({ bytesDone: stats.bytesFetched });
                },
              });
            }, signal),
          );
          stats.blobsFetched++;
          await catalog.recordBlob(digest, size, 'blob');
        })();
        blobsInFlight.set(digest, pending);
      }
      return pending;
    };

    const ingestManifest = (digest: string, bytes: Buffer, contentType: string): Promise<void> => {
      let pending = manifestsInFlight.get(digest);
      if (!pending) {
        pending = (async () => {
          if (await catalog.manifest(digest)) return;
          const parsed = parseManifest(bytes, contentType || undefined);
          const children = childManifests(parsed);
          await Promise.all(
            children.map(async (child) => {
              if (await catalog.manifest(child.digest)) return;
              const fetched = await client.getManifest(upstreamRepo, child.digest, signal);
              stats.manifestsFetched++;
              const actual = digestOf(fetched.bytes);
              if (actual !== child.digest) {
                throw new UpstreamError(`manifest ${child.digest} hashed to ${actual}`);
              }
              await ingestManifest(child.digest, fetched.bytes, fetched.mediaType || child.mediaType);
            }),
          );
          const blobs = blobDescriptors(parsed);
          await Promise.all(blobs.map((b) => ensureBlob(b.digest, b.size)));
          // The manifest's record is written last: its existence promises a complete closure.
          await contentStore.writeBytes(digest, bytes);
          await catalog.recordManifest(digest, {
            mediaType: parsed.mediaType,
            size: bytes.length,
            kind: parsed.kind,
            blobs: blobs.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType })),
            children: children.map((c) => c.digest),
          });
        })();
        manifestsInFlight.set(digest, pending);
      }
      return pending;
    };

    const syncTag = async (tag: string): Promise<void> => {
      signal.throwIfAborted();
      const head = await client.headManifest(upstreamRepo, tag, signal);
      if (!head) return;
      if (params.signedOnly && !isSignatureTag(tag) && !(head.digest && upstreamSignatures.has(signatureTag(head.digest)))) {
        unsigned.push(tag);
        return;
      }
      if (head.digest && currentMap.get(tag) === head.digest) {
        stats.unchanged++;
        resolved.push({ tag, digest: head.digest });
        return;
      }
      if (head.digest && (await catalog.manifest(head.digest))) {
        resolved.push({ tag, digest: head.digest });
        return;
      }
      const fetched = await client.getManifest(upstreamRepo, head.digest ?? tag, signal);
      stats.manifestsFetched++;
      const digest = digestOf(fetched.bytes);
      const claimed = head.digest ?? fetched.digest;
      if (claimed && claimed !== digest) {
        throw new UpstreamError(`manifest for ${tag} hashed to ${digest}, upstream said ${claimed}`);
      }
      await ingestManifest(digest, fetched.bytes, fetched.mediaType);
      resolved.push({ tag, digest });
    };

    await Promise.all(
      upstreamTags.map((tag) =>
        tagLimit(async () => {
          try {
            await syncTag(tag);
          } catch (err) {
            if (signal.aborted) throw err;
            log.warn({ err, tag }, 'failed to sync tag');
            failures.push({ tag, error: err instanceof Error ? err.message : String(err) });
          } finally {
            done++;
            progress.update({ done, message: `synced ${done} of ${upstreamTags.length} tags` });
          }
        }),
      ),
    );
    signal.throwIfAborted();

    // The signatures of every manifest synced (index children included), where the upstream has them.
    let signatures = 0;
    if (upstreamSignatures.size > 0) {
      const { manifests } = await catalog.closure(resolved.map((t) => t.digest));
      const wanted = [...manifests.keys()].map(signatureTag).filter((t) => upstreamSignatures.has(t));
      await Promise.all(
        wanted.map((tag) =>
          tagLimit(async () => {
            try {
              await syncTag(tag);
              signatures++;
            } catch (err) {
              if (signal.aborted) throw err;
              log.warn({ err, tag }, 'failed to sync signature');
              failures.push({ tag, error: err instanceof Error ? err.message : String(err) });
            }
          }),
        ),
      );
      signal.throwIfAborted();
    }

    const synced = new Map(resolved.map((t) => [t.tag, t.digest]));
    const commit = await channels.commit(
      params.repository,
      channel,
      (tags) => {
        if (params.mirror) {
          // Keep a tag that failed this time rather than drop content because of a hiccup.
          const kept = tags.filter((t) => !synced.has(t.tag) && failures.some((f) => f.tag === t.tag));
          return [...kept, ...resolved];
        }
        return [...tags.filter((t) => !synced.has(t.tag)), ...resolved];
      },
      { kind: 'sync', ...(taskId ? { ref: taskId } : {}) },
    );
    const diff = diffTags(commit.before?.tags ?? [], commit.version.tags);
    const added = diff.added.length + diff.changed.length;
    if (commit.changed) {
      await this.deps.events.enqueue(
        createEvent('content.synced', 'content', {
          repository: params.repository,
          channel,
          version: commit.version.number,
          added,
          removed: diff.removed.length,
        }),
      );
    }
    log.info({ version: commit.version.number, changed: commit.changed, ...stats, failures: failures.length }, 'sync finished');
    if (failures.length > 0) {
      // The tags that synced are committed; the task still fails so the failures are seen.
      throw new SyncFailedError(
        `${failures.length} of ${upstreamTags.length} tags failed (version ${commit.version.number} has the rest): ` +
          failures.slice(0, 5).map((f) => `${f.tag}: ${f.error}`).join('; '),
      );
    }
    return {
      channel,
      version: commit.version.number,
      changed: commit.changed,
      added,
      removed: diff.removed.length,
      tags: upstreamTags.length,
      failures,
      unsigned,
      signatures,
      ...stats,
    };
  }
}

import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import { isStorageFullError } from '@flotilla/kit';
import type { Logger } from 'pino';
import {
  blobDescriptors,
  childManifests,
  createEvent,
  digestOf,
  isSignatureTag,
  parseManifest,
  signatureTag,
} from '@flotilla/protocol';
import type { ContentStore } from '../blobstore/content-store.js';
import type { TagEntry } from '../collections.js';
import type { Catalog } from '../domain/catalog.js';
import { diffTags, type ChannelStore } from '../domain/channels.js';
import type { EventSink } from '../domain/promotions.js';
import type { ProgressReporter } from '../tasks/progress.js';
import {
  RegistryClient,
  UpstreamError,
  type RetryPolicy,
  type UpstreamCredentials,
  type UpstreamFailure,
} from './registry-client.js';
import { createTagFilter } from './tag-filter.js';

export interface SyncParams {
  repository: string;
  upstream: { url: string; repository?: string } & UpstreamCredentials;
  includeTags?: string[];
  excludeTags?: string[];
  /** Mirror mode: the channel ends up with exactly the upstream's (filtered) tags. */
  mirror?: boolean;
  /** Mirror mode may empty a channel that has tags only when this says so. */
  allowEmpty?: boolean;
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

interface SyncFailure {
  tag: string;
  error: string;
  upstream?: UpstreamFailure;
}

/** A sync that committed nothing; `details` names the upstream failure (stored with the task). */
export class SyncFailedError extends Error {
  override readonly name = 'SyncFailedError';
  constructor(
    message: string,
    readonly details: Record<string, unknown>,
    readonly code: 'sync-failed' | 'upstream-failed' | 'sync-would-empty' = 'sync-failed',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface SynchronizerDeps {
  channels: ChannelStore;
  catalog: Catalog;
  contentStore: ContentStore;
  events: EventSink;
  logger: Logger;
  concurrency: number;
  /**
   * Marks an unrecorded file already in the content store as in use now (its mtime), so gc
   * keeps it; false when it vanished meanwhile (then it is downloaded again).
   */
  adoptFile: (digest: string) => Promise<boolean>;
  /** Upstream retry policy (tests make it short). */
  retry?: RetryPolicy;
}

/**
 * Pulls one repository from a V2 registry into the content store and makes a new version of the
 * first channel (`candidate`): HEAD every tag first and skip what is unchanged, fetch only new
 * manifests (indexes recursed), download only missing blobs with bounded concurrency, hashing
 * while streaming. Files and records are written before the version that points at them.
 */
export class Synchronizer {
  constructor(private readonly deps: SynchronizerDeps) {}

  async sync(
    params: SyncParams,
    progress: ProgressReporter,
    taskSignal: AbortSignal,
    taskId?: string,
  ): Promise<SyncResult> {
    const { channels, catalog, contentStore, logger } = this.deps;
    setMaxListeners(0, taskSignal);
    // The first failure stops the rest of the sync: nothing of it will be committed anyway.
    const stop = new AbortController();
    const signal = AbortSignal.any([taskSignal, stop.signal]);
    setMaxListeners(0, signal);
    const channel = channels.channels[0] as string;
    const upstreamRepo = params.upstream.repository ?? params.repository;
    const client = new RegistryClient(
      params.upstream.url,
      { username: params.upstream.username, password: params.upstream.password },
      this.deps.retry ? { retry: this.deps.retry } : {},
    );
    const log = logger.child({ repository: params.repository, upstream: params.upstream.url });
    const filter = createTagFilter(params.includeTags, params.excludeTags);
    const fail = (err: unknown, context: string): Error => {
      // A full disk here is ours, not the upstream's: it keeps its own kind.
      if (err instanceof UpstreamError || (err instanceof Error && isStorageFullError(err)))
        return err;
      const reason = err instanceof Error ? err.message : String(err);
      return new UpstreamError(
        `failed to fetch ${context} of ${upstreamRepo} from ${params.upstream.url}: ${reason}`,
        undefined,
        false,
        {
          url: params.upstream.url,
          repository: upstreamRepo,
          fetching: context,
        },
      );
    };

    const current = await channels.current(params.repository, channel);
    const failed = (
      reason: string,
      failures: SyncFailure[],
      upstream: UpstreamFailure | undefined,
      cause?: unknown,
    ) =>
      new SyncFailedError(
        `sync of ${params.repository} from ${upstreamRepo} at ${params.upstream.url} failed; ${channel} stays at version ${current?.number ?? 0}: ${reason}`,
        {
          repository: params.repository,
          channel,
          version: current?.number ?? 0,
          failures,
          ...(upstream ? { upstream } : {}),
        },
        upstream ? 'upstream-failed' : 'sync-failed',
        { cause },
      );
    let listed: string[];
    try {
      listed = await client.listTags(upstreamRepo, signal);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      throw failed(err.message, [], err.details);
    }
    // Signature tags are not synced for themselves: they come with the digests they sign.
    const upstreamSignatures = new Set(listed.filter(isSignatureTag));
    const upstreamTags = listed.filter((t) => !isSignatureTag(t) && filter(t)).sort();
    const unsigned: string[] = [];
    const currentMap = new Map((current?.tags ?? []).map((t) => [t.tag, t.digest]));
    progress.update({
      done: 0,
      total: upstreamTags.length,
      bytesDone: 0,
      message: 'checking tags',
    });

    const stats = { manifestsFetched: 0, blobsFetched: 0, bytesFetched: 0, unchanged: 0 };
    let bytesTotal = 0;
    const blobLimit = pLimit(this.deps.concurrency);
    // A HEAD costs the upstream little and is all a re-sync does: check more tags at once.
    const tagLimit = pLimit(Math.min(64, this.deps.concurrency * 4));
    const blobsInFlight = new Map<string, Promise<void>>();
    const manifestsInFlight = new Map<string, Promise<void>>();
    const failures: SyncFailure[] = [];
    let firstError: unknown;
    const resolved: TagEntry[] = [];
    let done = 0;

    const ensureBlob = (digest: string, size: number): Promise<void> => {
      let pending = blobsInFlight.get(digest);
      if (!pending) {
        pending = (async () => {
          // Marking the record (or the file, when unrecorded) as used keeps gc from taking it.
          if ((await catalog.touchBlob(digest)) && (await contentStore.size(digest)) === size)
            return;
          if ((await contentStore.size(digest)) === size && (await this.deps.adoptFile(digest))) {
            await catalog.recordBlob(digest, size, 'blob');
            return;
          }
          bytesTotal += size;
          progress.update({ bytesTotal });
          try {
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
          } catch (err) {
            if (signal.aborted) throw err;
            throw fail(err, `blob ${digest}`);
          }
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
          if (await catalog.useManifest(digest)) return;
          let parsed: ReturnType<typeof parseManifest>;
          try {
            parsed = parseManifest(bytes, contentType || undefined);
          } catch (err) {
            throw fail(err, `manifest ${digest} (malformed)`);
          }
          const children = childManifests(parsed);
          await Promise.all(
            children.map(async (child) => {
              if (await catalog.useManifest(child.digest)) return;
              const fetched = await client.getManifest(upstreamRepo, child.digest, signal);
              stats.manifestsFetched++;
              const actual = digestOf(fetched.bytes);
              if (actual !== child.digest) {
                throw fail(new Error(`hashed to ${actual}`), `manifest ${child.digest}`);
              }
              await ingestManifest(
                child.digest,
                fetched.bytes,
                fetched.mediaType || child.mediaType,
              );
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
      // The tag list names the tag, so a 404 is the upstream contradicting itself. Docker
      // Distribution does for a moment: it notifies a manifest push, and lists the tag, before the
      // tag's link is written. Retried like a 5xx, then the sync fails rather than commit a
      // channel that silently lacks the tag.
      const head = await client.withRetry(async () => {
        const found = await client.headManifest(upstreamRepo, tag, signal);
        if (found) return found;
        const url = `${params.upstream.url.replace(/\/+$/, '')}/v2/${upstreamRepo}/manifests/${tag}`;
        throw new UpstreamError(
          `failed to fetch manifest ${tag} of ${upstreamRepo} at ${url}: upstream answered 404 although its tag list names the tag`,
          404,
          true,
          { url, repository: upstreamRepo, fetching: `manifest ${tag}`, status: 404 },
        );
      }, signal);
      if (
        params.signedOnly &&
        !isSignatureTag(tag) &&
        !(head.digest && upstreamSignatures.has(signatureTag(head.digest)))
      ) {
        unsigned.push(tag);
        return;
      }
      if (head.digest && currentMap.get(tag) === head.digest) {
        stats.unchanged++;
        resolved.push({ tag, digest: head.digest });
        return;
      }
      if (head.digest && (await catalog.useManifest(head.digest))) {
        resolved.push({ tag, digest: head.digest });
        return;
      }
      const fetched = await client.getManifest(upstreamRepo, head.digest ?? tag, signal);
      stats.manifestsFetched++;
      const digest = digestOf(fetched.bytes);
      const claimed = head.digest ?? fetched.digest;
      if (claimed && claimed !== digest) {
        throw fail(new Error(`hashed to ${digest}, upstream said ${claimed}`), `manifest ${tag}`);
      }
      await ingestManifest(digest, fetched.bytes, fetched.mediaType);
      resolved.push({ tag, digest });
    };

    /**
     * Syncs `tags`, all or nothing: the first failure stops the rest and fails the task, and the
     * channel keeps its version (what was downloaded stays in the content store for the next
     * attempt, or gc), like Pulp.
     */
    const syncAll = async (tags: string[], what: string, onEach: () => void): Promise<void> => {
      await Promise.all(
        tags.map((tag) =>
          tagLimit(async () => {
            if (signal.aborted) return;
            try {
              await syncTag(tag);
            } catch (err) {
              if (taskSignal.aborted || (stop.signal.aborted && failures.length > 0)) return;
              log.warn({ err, tag }, `failed to sync ${what}`);
              const upstream = err instanceof UpstreamError ? err.details : undefined;
              failures.push({
                tag,
                error: err instanceof Error ? err.message : String(err),
                ...(upstream ? { upstream } : {}),
              });
              firstError ??= err;
              stop.abort(err);
            } finally {
              onEach();
            }
          }),
        ),
      );
      taskSignal.throwIfAborted();
      if (failures.length > 0) {
        const first = failures[0] as (typeof failures)[number];
        log.info(
          { version: current?.number ?? 0, ...stats, failures: failures.length },
          `sync of ${what}s failed; channel unchanged`,
        );
        throw failed(`${first.tag}: ${first.error}`, failures, first.upstream, firstError);
      }
    };

    await syncAll(upstreamTags, 'tag', () => {
      done++;
      progress.update({ done, message: `synced ${done} of ${upstreamTags.length} tags` });
    });

    // The signatures of every manifest synced (index children included), where the upstream
    // has them: all or nothing like the tags they sign.
    let signatures = 0;
    if (upstreamSignatures.size > 0) {
      const { manifests } = await catalog.closure(resolved.map((t) => t.digest));
      const wanted = [...manifests.keys()]
        .map(signatureTag)
        .filter((t) => upstreamSignatures.has(t));
      await syncAll(wanted, 'signature', () => undefined);
      signatures = wanted.length; // all or nothing: past syncAll, every one is synced
    }

    const commit = await channels.commit(
      params.repository,
      channel,
      (tags) => {
        const next = params.mirror
          ? [...resolved]
          : [...tags.filter((t) => !resolved.some((r) => r.tag === t.tag)), ...resolved];
        if (params.mirror && next.length === 0 && tags.length > 0 && !params.allowEmpty) {
          throw new SyncFailedError(
            `mirror sync of ${params.repository} refused: ${upstreamRepo} at ${params.upstream.url} has no tags${
              params.includeTags || params.excludeTags ? ' matching the filters' : ''
            }, which would empty ${channel} (${tags.length} tags); send allowEmpty: true to empty it`,
            { repository: params.repository, channel, version: current?.number ?? 0, failures: [] },
            'sync-would-empty',
          );
        }
        return next;
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
    log.info(
      { version: commit.version.number, changed: commit.changed, ...stats },
      'sync finished',
    );
    return {
      channel,
      version: commit.version.number,
      changed: commit.changed,
      added,
      removed: diff.removed.length,
      tags: upstreamTags.length,
      failures: [],
      unsigned,
      signatures,
      ...stats,
    };
  }
}

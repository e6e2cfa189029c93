import { isStorageFullError, toStorageFullError } from '@flotilla/kit';
import { OciError, type ParsedDigest } from '@flotilla/protocol';
import { randomUUID } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from 'pino';
import { PathNotFoundError, type FileWriter, type StorageDriver } from '../storage/driver.js';
import { StoragePaths } from '../storage/paths.js';
import type { BlobInfo, GlobalBlobStore, LinkedBlobStore } from './blobs.js';
import { createDigester, type Digester, type RunningDigest } from './digests.js';
import { faultPoint } from '@flotilla/kit';

/**
 * Blob upload sessions (`_uploads/<uuid>/`). Bytes are hashed while they are written, never
 * buffered (on the digester's hashing thread). The live sha256 state stays in memory keyed by
 * session; Node cannot serialise a hash, so after a restart (or a failed request, or a lost
 * hashing thread) the data already on disk is re-hashed once.
 * `offset` on disk counts the bytes acknowledged to the client; bytes past it (a crash in the
 * middle of a chunk) are truncated away when the session resumes. Chunks are not fsynced one
 * by one: the data is fsynced once, when the upload completes and before it becomes a blob.
 */
export interface UploadState {
  uuid: string;
  repository: string;
  offset: number;
  startedAt: Date;
}

export interface AppendOptions {
  /** First byte position from `Content-Range`; must equal the current offset. */
  start?: number;
  /** Bytes announced by `Content-Length` / `Content-Range`; a short body is an error. */
  length?: number;
}

export interface UploadSessions {
  create(repository: string): Promise<UploadState>;
  status(repository: string, uuid: string): Promise<UploadState>;
  append(
    repository: string,
    uuid: string,
    body: Readable,
    options?: AppendOptions,
  ): Promise<UploadState>;
  /** Appends the optional last chunk, verifies the digest, moves the data into `blobs/`, links it. */
  complete(
    repository: string,
    uuid: string,
    digest: ParsedDigest,
    linked: LinkedBlobStore,
    body?: Readable,
    options?: AppendOptions,
  ): Promise<BlobInfo>;
  cancel(repository: string, uuid: string): Promise<void>;
  /** Removes sessions older than the TTL with their bytes (`dryRun`: only finds them). */
  purgeExpired(now?: Date, options?: { dryRun?: boolean }): Promise<PurgeReport>;
  /** Repositories with at least one session that has not expired (a push under way). */
  openSessions(now?: Date): Promise<Set<string>>;
}

export interface PurgeReport {
  /** Expired sessions (removed unless a dry run). */
  sessions: Array<{ repository: string; uuid: string; bytes: number }>;
  /** Bytes their data held. */
  bytes: number;
}

interface LiveHash {
  digest: RunningDigest;
  offset: number;
}

const NO_SYNC = { sync: false } as const;
const CHECKPOINT_INTERVAL_MS = 500;
const CHECKPOINT_BYTES = 8 * 1024 * 1024;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function unknownUpload(uuid: string): OciError {
  return new OciError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { uuid } });
}

export function rangeNotSatisfiable(offset: number, message: string): OciError {
  return new OciError('BLOB_UPLOAD_INVALID', message, {
    status: 416,
    headers: { Range: `0-${Math.max(offset - 1, 0)}` },
    detail: { offset },
  });
}

/**
 * `pipeline(body, sink)`, except that a failing sink leaves the request alone: the caller
 * can still answer (a full disk's 507) and node discards the rest of the body. A body that
 * fails (the client went away) destroys the sink, as pipeline would.
 */
async function receive(body: Readable, sink: Writable): Promise<void> {
  body.pipe(sink);
  const sinkDone = finished(sink).catch((err: unknown) => {
    body.unpipe(sink);
    throw err;
  });
  const bodyDone = finished(body).catch((err: unknown) => {
    if (!sink.destroyed) sink.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  });
  sinkDone.catch(() => undefined);
  bodyDone.catch(() => undefined);
  await Promise.race([sinkDone, bodyDone.then(() => sinkDone)]);
}

export function createUploadSessions(deps: {
  driver: StorageDriver;
  blobs: GlobalBlobStore;
  logger: Logger;
  ttlMs: number;
  /** Refuses a write early (StorageFullError) when the volume is below its reserve. */
  ensureWritable?: () => Promise<void>;
  /** Where running digests are computed; inline on the calling thread by default. */
  digester?: Digester;
}): UploadSessions {
  const { driver, logger, ttlMs } = deps;
  const ensureWritable = deps.ensureWritable ?? (async () => undefined);
  const digester = deps.digester ?? createDigester({ thread: false });
  const live = new Map<string, LiveHash>();
  const locks = new Map<string, Promise<unknown>>();

  /** Serialises operations on one session (two PATCHes racing would interleave bytes). */
  async function withLock<T>(key: string, op: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    const run = previous.then(op, op);
    const settled = run.catch(() => undefined);
    locks.set(key, settled);
    try {
      return await run;
    } finally {
      if (locks.get(key) === settled) locks.delete(key);
    }
  }

  async function readState(repository: string, uuid: string): Promise<UploadState> {
    if (!UUID.test(uuid)) throw unknownUpload(uuid);
    let offsetText: string;
    let startedText: string;
    try {
      [offsetText, startedText] = await Promise.all([
        driver
          .getContent(StoragePaths.uploadOffset(repository, uuid))
          .then((b) => b.toString('utf8')),
        driver
          .getContent(StoragePaths.uploadStartedAt(repository, uuid))
          .then((b) => b.toString('utf8')),
      ]);
    } catch (err) {
      if (err instanceof PathNotFoundError) throw unknownUpload(uuid);
      throw err;
    }
    const offset = Number.parseInt(offsetText, 10);
    const startedAt = new Date(startedText);
    if (!Number.isSafeInteger(offset) || offset < 0 || Number.isNaN(startedAt.getTime()))
      throw unknownUpload(uuid);
    if (startedAt.getTime() + ttlMs < Date.now()) {
      await discard(repository, uuid);
      throw unknownUpload(uuid);
    }
    try {
      const data = await driver.stat(StoragePaths.uploadData(repository, uuid));
      if (data.size < offset) throw unknownUpload(uuid);
    } catch (err) {
      if (err instanceof PathNotFoundError) throw unknownUpload(uuid);
      throw err;
    }
    return { uuid, repository, offset, startedAt };
  }

  /** Forgets a session's running digest (and frees its state on the hashing thread). */
  function forget(key: string): void {
    live.get(key)?.digest.dispose();
    live.delete(key);
  }

  async function discard(repository: string, uuid: string): Promise<void> {
    forget(`${repository}\n${uuid}`);
    await driver.delete(StoragePaths.uploadDir(repository, uuid));
  }

  async function hashOnDisk(
    repository: string,
    uuid: string,
    algorithm: string,
    length: number,
  ): Promise<RunningDigest> {
    const digest = digester.start(algorithm);
    if (length === 0) return digest;
    try {
      const reader = await driver.reader(StoragePaths.uploadData(repository, uuid), 0, length - 1);
      for await (const chunk of reader) await digest.update(chunk as Buffer);
    } catch (err) {
      digest.dispose();
      throw err;
    }
    return digest;
  }

  async function appendLocked(
    key: string,
    state: UploadState,
    body: Readable,
    options: AppendOptions,
  ): Promise<UploadState> {
    const { repository, uuid, offset } = state;
    if (options.start !== undefined && options.start !== offset) {
      body.resume();
      throw rangeNotSatisfiable(offset, `chunk starts at ${options.start}, upload is at ${offset}`);
    }
    let current = live.get(key);
    if (current?.offset !== offset) {
      logger.debug({ uuid, offset }, 'rehashing upload data');
      forget(key);
      current = { digest: await hashOnDisk(repository, uuid, 'sha256', offset), offset };
    }
    live.delete(key); // only restored once the new bytes are durable and counted
    const digest = current.digest;
    let writer: FileWriter;
    try {
      writer = await driver.writer(StoragePaths.uploadData(repository, uuid), offset, {
        observe: (chunk) => digest.update(chunk),
      });
    } catch (err) {
      digest.dispose();
      throw err;
    }
    const offsetPath = StoragePaths.uploadOffset(repository, uuid);
    // A long chunk checkpoints its offset now and then, so a crash in the middle of a 2 GiB
    // PATCH resumes near where it stopped instead of from the chunk's start.
    let checkpoint: Promise<void> = Promise.resolve();
    let checkpointed = offset;
    const timer = setInterval(() => {
      const written = writer.size;
      if (written - checkpointed < CHECKPOINT_BYTES) return;
      checkpointed = written;
      checkpoint = checkpoint
        .then(() => driver.putContent(offsetPath, String(written), NO_SYNC))
        .catch(() => undefined);
    }, CHECKPOINT_INTERVAL_MS);
    try {
      await receive(body, writer.stream);
      // No fsync per chunk: complete() fsyncs once before the data becomes a blob, and its
      // digest check catches whatever an OS crash could have lost in between.
      await writer.close();
    } catch (err) {
      clearInterval(timer);
      await checkpoint;
      if (isStorageFullError(err)) {
        // a full disk: give the staged bytes back at once (the whole session goes; the client starts over)
        await writer.cancel().catch(() => undefined);
        digest.dispose();
        body.resume();
        throw toStorageFullError(err, 'the upload did not fit; its bytes were removed');
      }
      // Keep what arrived (the session stays resumable from there); the hash is not trusted.
      await writer.close().catch(() => undefined);
      digest.dispose();
      const kept = writer.size;
      await driver.putContent(offsetPath, String(kept), NO_SYNC);
      logger.debug({ uuid, kept, err }, 'upload chunk interrupted');
      throw new OciError('BLOB_UPLOAD_INVALID', 'upload interrupted', {
        detail: { offset: kept },
        cause: err,
      });
    } finally {
      clearInterval(timer);
    }
    await checkpoint;
    const newOffset = writer.size;
    // After an OS crash the offset may run ahead of the data that reached the disk: readState
    // then finds the data shorter than the offset and the session is unknown (client restarts).
    await driver.putContent(
      StoragePaths.uploadOffset(repository, uuid),
      String(newOffset),
      NO_SYNC,
    );
    const received = newOffset - offset;
    if (options.length !== undefined && received !== options.length) {
      digest.dispose();
      throw new OciError('SIZE_INVALID', `received ${received} bytes, expected ${options.length}`, {
        detail: { received, expected: options.length },
      });
    }
    live.set(key, { digest, offset: newOffset });
    return { ...state, offset: newOffset };
  }

  /** Every session directory of every repository. */
  async function listSessions(): Promise<Array<{ repository: string; uuid: string }>> {
    const roots: Array<{ repository: string; path: string }> = [];
    const prefix = `${StoragePaths.repositoriesRoot}/`;
    await driver.walk(StoragePaths.repositoriesRoot, (info) => {
      if (!info.isDir) return;
      const name = info.path.slice(info.path.lastIndexOf('/') + 1);
      if (name === StoragePaths.reserved.uploads) {
        roots.push({
          repository: info.path.slice(prefix.length, info.path.length - name.length - 1),
          path: info.path,
        });
        return 'skip';
      }
      if (name.startsWith('_')) return 'skip';
    });
    const sessions: Array<{ repository: string; uuid: string }> = [];
    for (const { repository, path } of roots) {
      let uuids: string[];
      try {
        uuids = await driver.list(path);
      } catch (err) {
        if (err instanceof PathNotFoundError) continue;
        throw err;
      }
      for (const uuid of uuids) sessions.push({ repository, uuid });
    }
    return sessions;
  }

  /** Older than the TTL; a session that crashed before it was fully created counts from its directory's time. */
  async function isExpired(repository: string, uuid: string, now: Date): Promise<boolean> {
    let started: Date | undefined;
    try {
      started = new Date(
        (await driver.getContent(StoragePaths.uploadStartedAt(repository, uuid))).toString('utf8'),
      );
    } catch (err) {
      if (!(err instanceof PathNotFoundError)) throw err;
    }
    if (started === undefined || Number.isNaN(started.getTime())) {
      const info = await driver
        .stat(StoragePaths.uploadDir(repository, uuid))
        .catch(() => undefined);
      return info === undefined || info.modTime.getTime() + ttlMs < now.getTime();
    }
    return started.getTime() + ttlMs < now.getTime();
  }

  /** A write met a full disk: the session and its bytes go at once, and the error says why. */
  async function giveBackOnFull(repository: string, uuid: string, err: unknown): Promise<never> {
    if (!isStorageFullError(err)) throw err;
    await discard(repository, uuid).catch((cleanup: unknown) =>
      logger.warn({ err: cleanup, uuid }, 'failed to remove upload data'),
    );
    logger.warn({ repository, uuid }, 'upload refused: storage is full');
    throw toStorageFullError(err, 'the upload did not fit; its bytes were removed');
  }

  /** The data's digest: from the live state when it covers every byte, else from the disk. */
  async function digestOf(key: string, state: UploadState, algorithm: string): Promise<string> {
    const current = live.get(key);
    if (algorithm === 'sha256' && current?.offset === state.offset) {
      try {
        return await current.digest.hex();
      } catch (err) {
        logger.warn({ uuid: state.uuid, err }, 'running digest lost; rehashing upload data');
        forget(key);
      }
    }
    const fromDisk = await hashOnDisk(state.repository, state.uuid, algorithm, state.offset);
    try {
      return await fromDisk.hex();
    } finally {
      fromDisk.dispose();
    }
  }

  return {
    async create(repository) {
      await ensureWritable();
      const uuid = randomUUID();
      const startedAt = new Date();
      // data first, offset last: a session without an offset file is not a session yet
      // Not fsynced: a session an OS crash forgets is simply unknown, and the client restarts.
      try {
        await driver.putContent(StoragePaths.uploadData(repository, uuid), '', NO_SYNC);
        await driver.putContent(
          StoragePaths.uploadStartedAt(repository, uuid),
          startedAt.toISOString(),
          NO_SYNC,
        );
        await driver.putContent(StoragePaths.uploadOffset(repository, uuid), '0', NO_SYNC);
      } catch (err) {
        // a half-made session would only wait for the purge: remove it now
        await driver.delete(StoragePaths.uploadDir(repository, uuid)).catch(() => undefined);
        throw err;
      }
      live.set(`${repository}\n${uuid}`, { digest: digester.start('sha256'), offset: 0 });
      return { uuid, repository, offset: 0, startedAt };
    },

    status(repository, uuid) {
      return readState(repository, uuid);
    },

    append(repository, uuid, body, options = {}) {
      const key = `${repository}\n${uuid}`;
      return withLock(key, async () => {
        const state = await readState(repository, uuid)
          .then(async (found) => {
            await ensureWritable();
            return found;
          })
          .catch((err: unknown) => {
            body.resume();
            throw err;
          });
        return appendLocked(key, state, body, options).catch((err: unknown) =>
          giveBackOnFull(repository, uuid, err),
        );
      });
    },

    complete(repository, uuid, digest, linked, body, options = {}) {
      const key = `${repository}\n${uuid}`;
      return withLock(key, async () => {
        let state = await readState(repository, uuid)
          .then(async (found) => {
            if (body) await ensureWritable();
            return found;
          })
          .catch((err: unknown) => {
            body?.resume();
            throw err;
          });
        if (body)
          state = await appendLocked(key, state, body, options).catch((err: unknown) =>
            giveBackOnFull(repository, uuid, err),
          );
        const hex = await digestOf(key, state, digest.algorithm);
        if (hex !== digest.hex) {
          await discard(repository, uuid);
          throw new OciError('DIGEST_INVALID', undefined, {
            detail: {
              expected: digest.digest,
              actual: `${digest.algorithm}:${hex}`,
              size: state.offset,
            },
          });
        }
        // durable before it becomes visible as a blob (this also drops bytes past the offset)
        await (
          await driver.writer(StoragePaths.uploadData(repository, uuid), state.offset)
        ).commit();
        const existing = await deps.blobs.stat(digest);
        if (existing && existing.size === state.offset) {
          await driver.delete(StoragePaths.uploadData(repository, uuid));
        } else {
          await driver.move(
            StoragePaths.uploadData(repository, uuid),
            StoragePaths.blobData(digest),
          );
        }
        faultPoint('registry.upload.blob-stored');
        if (!(await linked.link(digest))) {
          // a concurrent GC swept the blob between our move and the link; the client retries
          await discard(repository, uuid);
          throw new OciError('BLOB_UPLOAD_INVALID', 'blob removed concurrently; retry the upload');
        }
        faultPoint('registry.upload.blob-linked');
        await discard(repository, uuid);
        return { digest: digest.digest, size: state.offset };
      });
    },

    cancel(repository, uuid) {
      const key = `${repository}\n${uuid}`;
      return withLock(key, async () => {
        await readState(repository, uuid);
        await discard(repository, uuid);
      });
    },

    async purgeExpired(now = new Date(), options = {}) {
      const report: PurgeReport = { sessions: [], bytes: 0 };
      for (const session of await listSessions()) {
        if (!(await isExpired(session.repository, session.uuid, now))) continue;
        const bytes =
          (
            await driver
              .stat(StoragePaths.uploadData(session.repository, session.uuid))
              .catch(() => undefined)
          )?.size ?? 0;
        if (!options.dryRun) await discard(session.repository, session.uuid);
        report.sessions.push({ ...session, bytes });
        report.bytes += bytes;
      }
      if (report.sessions.length > 0 && !options.dryRun) {
        logger.info(
          { purged: report.sessions.length, bytes: report.bytes },
          'purged expired upload sessions',
        );
      }
      return report;
    },

    async openSessions(now = new Date()) {
      const open = new Set<string>();
      for (const session of await listSessions()) {
        if (!(await isExpired(session.repository, session.uuid, now))) open.add(session.repository);
      }
      return open;
    },
  };
}

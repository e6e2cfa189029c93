import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { TEMP_MARKER } from './paths.js';
import { createAlignedBufferPool, createStagedWriter, type StagedWriter } from './staged-writer.js';

/**
 * The small storage driver (Distribution's `storagedriver.StorageDriver`): ten path-based
 * methods and nothing about registries. Paths are relative, `/`-separated, built only by
 * `paths.ts`. Registry logic lives above it (`../domain`).
 */
export interface StorageDriver {
  getContent(path: string): Promise<Buffer>;
  /**
   * Writes to a temporary sibling, fsyncs, renames into place (atomic replace). `sync: false`
   * skips the fsyncs for hints whose loss in an OS crash is harmless (upload offsets).
   */
  putContent(
    path: string,
    content: Uint8Array | string,
    options?: { sync?: boolean },
  ): Promise<void>;
  /** Bytes from `offset` up to and including `end` (inclusive, like HTTP ranges). */
  reader(path: string, offset?: number, end?: number): Promise<Readable>;
  /**
   * Copies bytes `start`..`end` (inclusive) into `destination`, sendfile-like: two reused
   * buffers, the next read overlapping the previous write, each write awaited (back-pressure),
   * stopping when the destination closes. Resolves false when the destination went away.
   */
  send(path: string, destination: Writable, start: number, end: number): Promise<boolean>;
  /**
   * Appends at `offset` (the file is truncated there first); `0` starts a new file.
   * `observe` sees every chunk, in order, just before it is written (hashing without an
   * extra stream hop).
   */
  writer(
    path: string,
    offset: number,
    options?: { observe?: (chunk: Buffer) => Promise<void> | void },
  ): Promise<FileWriter>;
  stat(path: string): Promise<FileInfo>;
  /** Names of the entries directly under `path` (not full paths). */
  list(path: string): Promise<string[]>;
  /** Renames `source` to `dest` (creating parents), replacing `dest` atomically. */
  move(source: string, dest: string): Promise<void>;
  /** Removes a file or a whole directory tree; missing is not an error. */
  delete(path: string): Promise<void>;
  /** Depth-first visit of every entry below `path`; return `'skip'` to prune a directory. */
  walk(
    path: string,
    visit: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip',
  ): Promise<void>;
  /** Sets the modification time (GC's "recently used" marker); throws when missing. */
  touch(path: string, time?: Date): Promise<void>;
}

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

/**
 * A file being appended to. Write through `stream` (it honours back-pressure), then `commit()`
 * (flush + fsync + close), `close()` (no fsync) or `cancel()` (close + delete). `size` counts
 * every byte written.
 */
export interface FileWriter {
  readonly stream: Writable;
  readonly size: number;
  commit(): Promise<void>;
  /** Closes without fsync, keeping the file (more may be appended later). */
  close(): Promise<void>;
  cancel(): Promise<void>;
}

export class PathNotFoundError extends Error {
  override readonly name = 'PathNotFoundError';
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
  }
}

/**
 * Read size of `send`: two buffers of this per download in flight. From the page cache, a chunk
 * small enough to stay in the CPU's cache between the read's copy and the socket's is faster:
 * warm 256 MiB GETs ran at 3.0–3.6 GB/s with 2 MiB reads, 2.4–3.3 with 1 MiB, 2.2–3.0 with
 * 4 MiB and 2.1–2.7 with 256 KiB. Cold reads depend on the device's
 * readahead: with `read_ahead_kb` 8192 they ran alike at every size here; on an earlier
 * machine with a small readahead 4 MiB reads were 3× faster than 1–2 MiB (docs/bench/registry.md).
 */
const SEND_CHUNK_BYTES = 2 * 1024 * 1024;

/** Dirty bytes after which a writer starts an fdatasync in the background. */
const FLUSH_BEHIND_BYTES = 32 * 1024 * 1024;

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function createFilesystemDriver(rootDirectory: string): StorageDriver {
  const root = resolve(rootDirectory);
  const stagingPool = createAlignedBufferPool();

  function full(path: string): string {
    const joined = resolve(root, ...path.split('/').filter((p) => p.length > 0));
    if (joined !== root && !joined.startsWith(root + sep))
      throw new Error(`path escapes storage root: ${path}`);
    return joined;
  }

  async function fsyncDir(dir: string): Promise<void> {
    const handle = await fsp.open(dir, 'r').catch(() => undefined);
    if (!handle) return;
    try {
      await handle.sync();
    } catch {
      // some filesystems refuse fsync on directories; the rename is still atomic
    } finally {
      await handle.close();
    }
  }

  async function wrapNotFound<T>(path: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(path);
      throw err;
    }
  }

  return {
    async getContent(path) {
      return wrapNotFound(path, () => fsp.readFile(full(path)));
    },

    async putContent(path, content, options = {}) {
      const sync = options.sync ?? true;
      const target = full(path);
      const dir = dirname(target);
      await fsp.mkdir(dir, { recursive: true });
      const temp = `${target}${TEMP_MARKER}${randomBytes(6).toString('hex')}`;
      try {
        const handle = await fsp.open(temp, 'w', 0o644);
        try {
          await handle.writeFile(content);
          if (sync) await handle.sync();
        } finally {
          await handle.close();
        }
        await fsp.rename(temp, target);
      } catch (err) {
        // a full disk fails the write: the half-written temporary goes with it
        await fsp.rm(temp, { force: true });
        throw err;
      }
      if (sync) await fsyncDir(dir);
    },

    async reader(path, offset = 0, end) {
      const file = full(path);
      const handle = await wrapNotFound(path, () => fsp.open(file, 'r'));
      // Opening first turns a missing file into PathNotFoundError before any byte is sent.
      return createReadStream('', {
        fd: handle,
        start: offset,
        ...(end === undefined ? {} : { end }),
        highWaterMark: 4 * 1024 * 1024,
      });
    },

    async send(path, destination, start, end) {
      const handle = await wrapNotFound(path, () => fsp.open(full(path), 'r'));
      let gone = destination.destroyed;
      const onClose = (): void => {
        gone = true;
      };
      destination.once('close', onClose);
      const closed = new Promise<void>((resolve) => destination.once('close', () => resolve()));
      try {
        const size = Math.min(SEND_CHUNK_BYTES, end - start + 1);
        const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
        let which = 0;
        let position = start;
        let pending: Promise<void> | undefined;
        while (position <= end && !gone) {
          const buffer = buffers[which] as Buffer;
          which ^= 1;
          const { bytesRead } = await handle.read(
            buffer,
            0,
            Math.min(size, end - position + 1),
            position,
          );
          if (bytesRead === 0) throw new Error(`file shorter than expected: ${path}`);
          if (pending) await Promise.race([pending, closed]);
          if (gone) break;
          const chunk = buffer.subarray(0, bytesRead);
          pending = new Promise<void>((resolve, reject) => {
            destination.write(chunk, (err) => (err ? reject(err) : resolve()));
          });
          pending.catch(() => undefined);
          position += bytesRead;
        }
        if (pending && !gone) await Promise.race([pending, closed]);
        return !gone;
      } finally {
        destination.off('close', onClose);
        await handle.close();
      }
    },

    async writer(path, offset, options = {}) {
      const observe = options.observe;
      const file = full(path);
      await fsp.mkdir(dirname(file), { recursive: true });
      const handle = await wrapNotFound(path, () =>
        fsp.open(file, offset === 0 ? 'w' : 'r+', 0o644),
      );
      try {
        if (offset > 0) {
          const { size } = await handle.stat();
          if (size < offset) throw new Error(`file shorter than the write offset: ${path}`);
          if (size > offset) await handle.truncate(offset);
        }
      } catch (err) {
        await handle.close();
        throw err;
      }
      let unsynced = 0;
      let flushing: Promise<void> | undefined;
      // Flush behind: start writing dirty pages out while the upload is still arriving, so
      // the fsync at commit has little left to do (direct writes leave no dirty pages).
      const flushBehind = (bytes: number): void => {
        unsynced += bytes;
        if (unsynced < FLUSH_BEHIND_BYTES || flushing) return;
        unsynced = 0;
        flushing = handle.datasync().then(
          () => {
            flushing = undefined;
          },
          () => {
            flushing = undefined;
          },
        );
      };
      const pair = stagingPool.takePair();
      let staged: StagedWriter | undefined;
      let position = offset;
      let stream: Writable;
      if (pair) {
        staged = createStagedWriter({
          file,
          handle,
          offset,
          pair,
          pool: stagingPool,
          observe,
          onBuffered: flushBehind,
        });
        stream = staged.stream;
      } else {
        // no aligned buffers to spare: plain buffered appends
        stream = new Writable({
          highWaterMark: 4 * 1024 * 1024,
          writev(chunks, callback) {
            const buffers = chunks.map((c) => c.chunk as Buffer);
            if (observe) for (const buffer of buffers) observe(buffer);
            handle.writev(buffers, position).then(
              ({ bytesWritten }) => {
                position += bytesWritten;
                flushBehind(bytesWritten);
                callback();
              },
              (err: Error) => callback(err),
            );
          },
        });
      }
      let closed = false;
      const finish = async (sync: boolean): Promise<void> => {
        if (closed) return;
        closed = true;
        if (!stream.destroyed && !stream.writableFinished) {
          stream.end();
          await finished(stream).catch(() => undefined);
        }
        try {
          // a client that went away: keep what it sent (the session resumes from there)
          if (stream.destroyed) await staged?.salvage();
          await staged?.settle();
          await flushing;
          if (sync) await handle.sync();
        } finally {
          await handle.close();
        }
      };
      return {
        stream,
        get size() {
          return staged ? staged.size : position;
        },
        commit: () => finish(true),
        close: () => finish(false),
        async cancel() {
          if (!closed) {
            closed = true;
            stream.destroy();
            await staged?.settle();
            await flushing;
            await handle.close().catch(() => undefined);
          }
          await fsp.rm(file, { force: true });
        },
      };
    },

    async stat(path) {
      const st = await wrapNotFound(path, () => fsp.stat(full(path)));
      return { path, size: st.size, modTime: st.mtime, isDir: st.isDirectory() };
    },

    async list(path) {
      const entries = await wrapNotFound(path, () => fsp.readdir(full(path)));
      return entries.sort();
    },

    async move(source, dest) {
      const target = full(dest);
      await fsp.mkdir(dirname(target), { recursive: true });
      await wrapNotFound(source, () => fsp.rename(full(source), target));
      await fsyncDir(dirname(target));
    },

    async delete(path) {
      await fsp.rm(full(path), { recursive: true, force: true });
    },

    async walk(path, visit) {
      const visitDir = async (rel: string): Promise<void> => {
        let entries: import('node:fs').Dirent[];
        try {
          entries = await fsp.readdir(full(rel), { withFileTypes: true });
        } catch (err) {
          if (isNotFound(err)) return;
          throw err;
        }
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const entry of entries) {
          const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
          let st: import('node:fs').Stats;
          try {
            st = await fsp.stat(join(full(rel), entry.name));
          } catch (err) {
            if (isNotFound(err)) continue; // removed while walking
            throw err;
          }
          const result = await visit({
            path: child,
            size: st.size,
            modTime: st.mtime,
            isDir: st.isDirectory(),
          });
          if (st.isDirectory() && result !== 'skip') await visitDir(child);
        }
      };
      await visitDir(path);
    },

    async touch(path, time = new Date()) {
      await wrapNotFound(path, () => fsp.utimes(full(path), time, time));
    },
  };
}

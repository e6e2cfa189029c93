import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isStorageFullError, toStorageFullError, type StorageSpace } from '@flotilla/kit';
import { DigestHasher } from '@flotilla/protocol';
import { ContentPaths } from './paths.js';

const STALE_TMP_MS = 24 * 3600 * 1000;

/**
 * Content-addressed files on the local filesystem. A file appears under its digest only after
 * its bytes were hashed on the way in and matched the digest (write to tmp, verify, rename).
 */
export class ContentStore {
  readonly paths: ContentPaths;
  /** Below its reserve, writes are refused before they start (StorageFullError). */
  private readonly space: StorageSpace | undefined;

  constructor(root: string, options: { space?: StorageSpace } = {}) {
    this.paths = new ContentPaths(root);
    this.space = options.space;
  }

  async init(): Promise<void> {
    await fs.mkdir(this.paths.tmpDir, { recursive: true });
    // Downloads a killed process left behind. Other processes may share the directory and be
    // writing right now, so only files untouched for a day go.
    const cutoff = Date.now() - STALE_TMP_MS;
    for (const name of await fs.readdir(this.paths.tmpDir)) {
      const file = this.paths.tmp(name);
      const st = await fs.stat(file).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await fs.rm(file, { force: true });
    }
  }

  /** Size of the stored file, or undefined when absent. */
  async size(digest: string): Promise<number | undefined> {
    try {
      const st = await fs.stat(this.paths.blob(digest));
      return st.size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  filePath(digest: string): string {
    return this.paths.blob(digest);
  }

  read(digest: string): Readable {
    return createReadStream(this.paths.blob(digest));
  }

  readBytes(digest: string): Promise<Buffer> {
    return fs.readFile(this.paths.blob(digest));
  }

  /**
   * Streams `source` into the store under `digest`, hashing while writing. Rejects (and leaves
   * nothing behind) when the bytes do not hash to `digest` or their count differs from
   * `expectedSize`. `onBytes` reports progress.
   */
  async write(
    digest: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options: { expectedSize?: number; onBytes?: (n: number) => void; signal?: AbortSignal } = {},
  ): Promise<number> {
    await this.space?.ensureWritable();
    const tmp = this.paths.tmp(randomUUID());
    const hasher = new DigestHasher({ expected: digest });
    let count = 0;
    const counter = async function* (input: AsyncIterable<Uint8Array>) {
      for await (const chunk of input) {
        count += chunk.length;
        options.onBytes?.(chunk.length);
        yield chunk;
      }
    };
    try {
      await pipeline(source, counter, hasher, createWriteStream(tmp), { signal: options.signal });
      if (options.expectedSize !== undefined && count !== options.expectedSize) {
        throw new SizeMismatchError(digest, options.expectedSize, count);
      }
      const dest = this.paths.blob(digest);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.rename(tmp, dest);
      return count;
    } catch (err) {
      await fs.rm(tmp, { force: true });
      // a full disk fails this one write (its temporary file is gone); the next one may fit
      if (isStorageFullError(err))
        throw toStorageFullError(
          err,
          `storage is full: no room for ${digest} in the content store`,
        );
      throw err;
    }
  }

  /** Stores bytes already in memory (manifests), verified like any other write. */
  async writeBytes(digest: string, bytes: Uint8Array): Promise<void> {
    await this.write(digest, Readable.from([Buffer.from(bytes)]), { expectedSize: bytes.length });
  }
}

export class SizeMismatchError extends Error {
  override readonly name = 'SizeMismatchError';
  constructor(
    readonly digest: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${digest}: expected ${expected} bytes, got ${actual}`);
  }
}

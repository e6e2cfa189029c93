import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isStorageFullError, toStorageFullError, type StorageSpace } from '@flotilla/kit';
import {
  DigestHasher,
  formatPublicationMarker,
  parsePublicationMarker,
  type PublishedKeys,
} from '@flotilla/protocol';
import { PublishPaths } from './paths.js';

/**
 * Writes into the published tree. Every file is staged under `.staging/`, verified, then renamed
 * into place, so a reader (crane, rsync) sees either the old file or the complete new one.
 */
export class PublishedTree {
  readonly paths: PublishPaths;
  /** Below its reserve, copies and metadata writes are refused before they start (StorageFullError). */
  private readonly space: StorageSpace | undefined;

  constructor(root: string, options: { space?: StorageSpace } = {}) {
    this.paths = new PublishPaths(root);
    this.space = options.space;
  }

  async init(): Promise<void> {
    await fs.mkdir(this.paths.stagingDir, { recursive: true });
    await this.clearStaging();
  }

  /** Drops every staged file: left over from a crash or a failed publish, never announced. */
  async clearStaging(): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(this.paths.stagingDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      await fs.rm(this.paths.staging(name), { force: true, recursive: true });
    }
  }

  /**
   * Places the content-store file `source` at the blob's path: a hard link when both are on one
   * filesystem, else a copy; either way the staged file is hashed before it is renamed in.
   * Returns how it was placed.
   */
  async placeBlob(digest: string, source: string, expectedSize: number): Promise<'link' | 'copy'> {
    const staged = this.paths.staging(randomUUID());
    let mode: 'link' | 'copy' = 'link';
    try {
      try {
        await fs.link(source, staged);
        await verifyFile(staged, digest, expectedSize);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP')
          throw err;
        mode = 'copy';
        await this.space?.ensureWritable();
        const hasher = new DigestHasher({ expected: digest });
        await pipeline(createReadStream(source), hasher, createWriteStream(staged));
        if (hasher.bytes !== expectedSize)
          throw new Error(`${digest}: size ${hasher.bytes}, expected ${expectedSize}`);
      }
      const dest = this.paths.blob(digest);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.rename(staged, dest);
      // rename(2) does nothing when both names are links to one file (the blob placed again
      // from the same content-store file), leaving the staged name behind
      await fs.rm(staged, { force: true });
      return mode;
    } catch (err) {
      await fs.rm(staged, { force: true });
      throw storageFullOr(err, `storage is full: no room for ${digest} in the published tree`);
    }
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await fs.access(this.paths.blob(digest));
      return true;
    } catch {
      return false;
    }
  }

  async removeBlob(digest: string): Promise<void> {
    await fs.rm(this.paths.blob(digest), { force: true });
  }

  /**
   * Writes a channel's `repositories/<name>.json` into staging only: a publication stages every
   * file first and renames them into the view together (`commit`), so a failed write leaves the
   * view untouched.
   */
  async stageRepositoryMetadata(
    channel: string,
    name: string,
    value: unknown,
  ): Promise<StagedFile> {
    const staged = await this.stage(`${JSON.stringify(value)}\n`);
    return { staged, dest: this.paths.channelRepository(channel, name) };
  }

  /**
   * Renames staged files into place, keeping each replaced file as a hard link in staging until
   * the returned `rollback` (put every replaced file back, remove the new ones) or `release`
   * (drop the kept links). A failure half-way through rolls back what it renamed.
   */
  async commit(files: readonly StagedFile[]): Promise<CommittedFiles> {
    const done: { dest: string; previous: string | null }[] = [];
    const rollback = async (): Promise<void> => {
      for (const { dest, previous } of done.reverse()) {
        if (previous === null) await fs.rm(dest, { force: true });
        else await fs.rename(previous, dest);
      }
      done.length = 0;
    };
    try {
      for (const file of files) {
        await fs.mkdir(path.dirname(file.dest), { recursive: true });
        let previous: string | null = this.paths.staging(randomUUID());
        try {
          await fs.link(file.dest, previous);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          previous = null;
        }
        done.push({ dest: file.dest, previous });
        await fs.rename(file.staged, file.dest);
      }
    } catch (err) {
      await rollback();
      throw err;
    }
    return {
      rollback,
      release: async () => {
        for (const { previous } of done.splice(0))
          if (previous !== null) await fs.rm(previous, { force: true });
      },
    };
  }

  async writePublicationRecord(n: number, value: unknown): Promise<void> {
    await this.writeAtomically(this.paths.publication(n), `${JSON.stringify(value, null, 2)}\n`);
  }

  /** The text of `publications/<n>.json`, or undefined when it does not exist. */
  async readPublicationRecord(n: number): Promise<string | undefined> {
    try {
      return await fs.readFile(this.paths.publication(n), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Moves `channels/<channel>/PUBLICATION` to n: the channel's view now shows publication n. */
  async writeChannelMarker(channel: string, n: number): Promise<void> {
    await this.writeAtomically(this.paths.channelMarker(channel), formatPublicationMarker(n));
  }

  /**
   * The public keys under `keys/`: each `<id>.pub` first, then `index.json`, then the removal
   * of keys no longer listed. Files whose content is unchanged are left alone (mirrors copy
   * only what changed).
   */
  async writeKeys(index: PublishedKeys): Promise<void> {
    for (const key of index.keys) await this.writeIfChanged(this.paths.key(key.id), key.publicKey);
    await this.writeIfChanged(this.paths.keysIndex, `${JSON.stringify(index, null, 2)}\n`);
    const listed = new Set(index.keys.map((k) => `${k.id}.pub`));
    const dir = path.dirname(this.paths.keysIndex);
    for (const name of await fs.readdir(dir)) {
      if (name.endsWith('.pub') && !listed.has(name))
        await fs.rm(path.join(dir, name), { force: true });
    }
  }

  private async writeIfChanged(dest: string, text: string): Promise<void> {
    const existing = await fs.readFile(dest, 'utf8').catch(() => undefined);
    if (existing !== text) await this.writeAtomically(dest, text);
  }

  /** Moves `PUBLICATION` to n: the last write of a publication. */
  async writeMarker(n: number): Promise<void> {
    await this.writeAtomically(this.paths.marker, formatPublicationMarker(n));
  }

  async readMarker(): Promise<number | undefined> {
    return readMarkerFile(this.paths.marker);
  }

  async readChannelMarker(channel: string): Promise<number | undefined> {
    return readMarkerFile(this.paths.channelMarker(channel));
  }

  private async stage(text: string): Promise<string> {
    await this.space?.ensureWritable();
    const staged = this.paths.staging(randomUUID());
    try {
      const handle = await fs.open(staged, 'w', 0o644);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return staged;
    } catch (err) {
      await fs.rm(staged, { force: true });
      throw storageFullOr(err, 'storage is full: no room to stage a file of the published tree');
    }
  }

  private async writeAtomically(dest: string, text: string): Promise<void> {
    const staged = await this.stage(text);
    try {
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.rename(staged, dest);
    } catch (err) {
      await fs.rm(staged, { force: true });
      throw storageFullOr(
        err,
        `storage is full: no room for ${path.basename(dest)} in the published tree`,
      );
    }
  }
}

export interface StagedFile {
  staged: string;
  dest: string;
}

export interface CommittedFiles {
  rollback(): Promise<void>;
  release(): Promise<void>;
}

async function readMarkerFile(file: string): Promise<number | undefined> {
  try {
    return parsePublicationMarker(await fs.readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A full disk becomes a StorageFullError saying where (its staged file is already gone). */
function storageFullOr(err: unknown, detail: string): unknown {
  return isStorageFullError(err) ? toStorageFullError(err, detail) : err;
}

async function verifyFile(file: string, digest: string, expectedSize: number): Promise<void> {
  const hasher = new DigestHasher({ expected: digest });
  await pipeline(
    createReadStream(file),
    hasher,
    new Writable({
      write(_chunk, _enc, cb) {
        cb();
      },
    }),
  );
  if (hasher.bytes !== expectedSize)
    throw new Error(`${digest}: size ${hasher.bytes}, expected ${expectedSize}`);
}

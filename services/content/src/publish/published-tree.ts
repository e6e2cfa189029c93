import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestHasher, formatPublicationMarker, parsePublicationMarker, PublishedPaths, type PublishedKeys } from '@flotilla/protocol';
import { PublishPaths } from './paths.js';

/**
 * Writes into the published tree. Every file is staged under `.staging/`, verified, then renamed
 * into place, so a reader (crane, rsync) sees either the old file or the complete new one.
 */
export class PublishedTree {
  readonly paths: PublishPaths;

  constructor(root: string) {
    this.paths = new PublishPaths(root);
  }

  async init(): Promise<void> {
    await fs.mkdir(this.paths.stagingDir, { recursive: true });
    // Left over from a crash: never announced, safe to drop.
    for (const name of await fs.readdir(this.paths.stagingDir)) {
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
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
        mode = 'copy';
        const hasher = new DigestHasher({ expected: digest });
        await pipeline(createReadStream(source), hasher, createWriteStream(staged));
        if (hasher.bytes !== expectedSize) throw new Error(`${digest}: size ${hasher.bytes}, expected ${expectedSize}`);
      }
      const dest = this.paths.blob(digest);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.rename(staged, dest);
      return mode;
    } catch (err) {
      await fs.rm(staged, { force: true });
      throw err;
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

  async writeRepositoryMetadata(name: string, value: unknown): Promise<void> {
    await this.writeAtomically(this.paths.repository(name), `${JSON.stringify(value)}\n`);
  }

  async writePublicationRecord(n: number, value: unknown): Promise<void> {
    await this.writeAtomically(this.paths.publication(n), `${JSON.stringify(value, null, 2)}\n`);
  }

  /**
   * The public keys under `keys/`: each `<id>.pub` first, then `index.json`, then the removal
   * of keys no longer listed. Files whose content is unchanged are left alone (mirrors copy
   * only what changed).
   */
  async writeKeys(index: PublishedKeys): Promise<void> {
    for (const key of index.keys) await this.writeIfChanged(this.paths.abs(PublishedPaths.key(key.id)), key.publicKey);
    await this.writeIfChanged(this.paths.abs(PublishedPaths.keys), `${JSON.stringify(index, null, 2)}\n`);
    const listed = new Set(index.keys.map((k) => `${k.id}.pub`));
    const dir = path.dirname(this.paths.abs(PublishedPaths.keys));
    for (const name of await fs.readdir(dir)) {
      if (name.endsWith('.pub') && !listed.has(name)) await fs.rm(path.join(dir, name), { force: true });
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
    try {
      return parsePublicationMarker(await fs.readFile(this.paths.marker, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async writeAtomically(dest: string, text: string): Promise<void> {
    const staged = this.paths.staging(randomUUID());
    try {
      const handle = await fs.open(staged, 'w', 0o644);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.rename(staged, dest);
    } catch (err) {
      await fs.rm(staged, { force: true });
      throw err;
    }
  }
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
  if (hasher.bytes !== expectedSize) throw new Error(`${digest}: size ${hasher.bytes}, expected ${expectedSize}`);
}

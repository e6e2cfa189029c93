import { OciError, parseDigest, type ParsedDigest } from '@flotilla/protocol';
import type { Readable, Writable } from 'node:stream';
import { PathNotFoundError, type StorageDriver } from '../storage/driver.js';
import { StoragePaths } from '../storage/paths.js';

/** What is known about a stored blob without reading it. */
export interface BlobInfo {
  digest: string;
  size: number;
}

/**
 * The global, content-addressed blob store (`blobs/`): data only, no notion of repositories.
 * Distribution's `blobStore`.
 */
export interface GlobalBlobStore {
  stat(digest: ParsedDigest): Promise<BlobInfo | undefined>;
  open(digest: ParsedDigest, start?: number, end?: number): Promise<Readable>;
  /** Streams bytes `start`..`end` into `destination` (see StorageDriver.send). */
  send(digest: ParsedDigest, destination: Writable, start: number, end: number): Promise<boolean>;
  /** Marks the blob as in use now (GC's guard); false when the blob does not exist. */
  touch(digest: ParsedDigest): Promise<boolean>;
}

export function createGlobalBlobStore(driver: StorageDriver): GlobalBlobStore {
  return {
    async stat(digest) {
      try {
        const info = await driver.stat(StoragePaths.blobData(digest));
        if (info.isDir) return undefined;
        return { digest: digest.digest, size: info.size };
      } catch (err) {
        if (err instanceof PathNotFoundError) return undefined;
        throw err;
      }
    },
    open(digest, start, end) {
      return driver.reader(StoragePaths.blobData(digest), start, end);
    },
    send(digest, destination, start, end) {
      return driver.send(StoragePaths.blobData(digest), destination, start, end);
    },
    async touch(digest) {
      try {
        await driver.touch(StoragePaths.blobData(digest));
        return true;
      } catch (err) {
        if (err instanceof PathNotFoundError) return false;
        throw err;
      }
    },
  };
}

/**
 * The blobs one repository may serve: a blob is visible in a repository only through a link
 * under `_layers/` (Distribution's `linkedBlobStore`). Data is always written before its link.
 */
export interface LinkedBlobStore {
  stat(digest: ParsedDigest): Promise<BlobInfo | undefined>;
  /** Links an existing global blob into this repository (upload completion, mount). */
  link(digest: ParsedDigest): Promise<boolean>;
  /** Removes the link; the data stays until GC. */
  unlink(digest: ParsedDigest): Promise<boolean>;
  hasLink(digest: ParsedDigest): Promise<boolean>;
}

async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    await driver.stat(path);
    return true;
  } catch (err) {
    if (err instanceof PathNotFoundError) return false;
    throw err;
  }
}

export function createLinkedBlobStore(
  driver: StorageDriver,
  blobs: GlobalBlobStore,
  repository: string,
): LinkedBlobStore {
  return {
    async stat(digest) {
      if (!(await exists(driver, StoragePaths.layerLink(repository, digest)))) {
        // Manifests are blobs too; Distribution serves them through /blobs/ as well.
        if (!(await exists(driver, StoragePaths.revisionLink(repository, digest))))
          return undefined;
      }
      return blobs.stat(digest);
    },
    async link(digest) {
      // Touch first: it proves the data exists and tells a concurrent GC sweep to keep it.
      if (!(await blobs.touch(digest))) return false;
      await driver.putContent(StoragePaths.layerLink(repository, digest), digest.digest);
      return true;
    },
    async unlink(digest) {
      const link = StoragePaths.layerLink(repository, digest);
      if (!(await exists(driver, link))) return false;
      await driver.delete(link.slice(0, link.lastIndexOf('/')));
      return true;
    },
    hasLink(digest) {
      return exists(driver, StoragePaths.layerLink(repository, digest));
    },
  };
}

/** Parses a digest from a URL or query, mapping malformed input to the OCI error. */
export function requireDigest(
  value: string | null | undefined,
  code: 'DIGEST_INVALID' = 'DIGEST_INVALID',
): ParsedDigest {
  if (value === null || value === undefined || value === '')
    throw new OciError(code, 'digest missing');
  return parseDigest(value);
}

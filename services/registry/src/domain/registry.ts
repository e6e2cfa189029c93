import type { ParsedDigest } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { StorageDriver } from '../storage/driver.js';
import { PathNotFoundError } from '../storage/driver.js';
import { StoragePaths } from '../storage/paths.js';
import {
  createGlobalBlobStore,
  createLinkedBlobStore,
  type GlobalBlobStore,
  type LinkedBlobStore,
} from './blobs.js';
import { createManifestService, type ManifestService } from './manifests.js';
import type { Digester } from './digests.js';
import { createUploadSessions, type UploadSessions } from './uploads.js';

/** One repository's view: its linked blobs and its manifests (tags and referrers included). */
export interface Repository {
  readonly name: string;
  readonly blobs: LinkedBlobStore;
  readonly manifests: ManifestService;
}

/** The registry logic above the storage driver (Distribution's `registry` + `repository`). */
export interface Registry {
  readonly blobs: GlobalBlobStore;
  readonly uploads: UploadSessions;
  repository(name: string): Repository;
  /** Every repository that has manifests, sorted. */
  catalog(): Promise<string[]>;
  /** Repositories linking the blob (automatic cross-mount discovery), sorted. */
  repositoriesWithBlob(digest: ParsedDigest): Promise<string[]>;
}

/** Wraps each repository's manifest service (caching, events); identity by default. */
export type ManifestDecorator = (service: ManifestService) => ManifestService;

export function createRegistry(deps: {
  driver: StorageDriver;
  logger: Logger;
  uploadTtlMs: number;
  decorateManifests?: ManifestDecorator[];
  /** Running digests of uploads (the service passes one with a hashing thread). */
  digester?: Digester;
  /** Refuses uploads and manifest puts early (StorageFullError) below the free-space reserve. */
  ensureWritable?: () => Promise<void>;
}): Registry {
  const { driver, logger } = deps;
  const blobs = createGlobalBlobStore(driver);
  const uploads = createUploadSessions({
    driver,
    blobs,
    logger: logger.child({ component: 'uploads' }),
    ttlMs: deps.uploadTtlMs,
    ...(deps.digester ? { digester: deps.digester } : {}),
    ...(deps.ensureWritable ? { ensureWritable: deps.ensureWritable } : {}),
  });
  const decorators = deps.decorateManifests ?? [];

  async function repositoryNames(): Promise<string[]> {
    const names: string[] = [];
    const prefix = `${StoragePaths.repositoriesRoot}/`;
    await driver.walk(StoragePaths.repositoriesRoot, (info) => {
      if (!info.isDir) return;
      const base = info.path.slice(info.path.lastIndexOf('/') + 1);
      if (base === StoragePaths.reserved.manifests) {
        names.push(info.path.slice(prefix.length, info.path.length - base.length - 1));
        return 'skip';
      }
      if (base.startsWith('_')) return 'skip';
    });
    return names.sort();
  }

  return {
    blobs,
    uploads,
    repository(name) {
      const linked = createLinkedBlobStore(driver, blobs, name);
      let manifests = createManifestService({
        driver,
        blobs,
        linked,
        repository: name,
        ...(deps.ensureWritable ? { ensureWritable: deps.ensureWritable } : {}),
      });
      for (const decorate of decorators) manifests = decorate(manifests);
      return { name, blobs: linked, manifests };
    },
    catalog: repositoryNames,
    async repositoriesWithBlob(digest) {
      if (!(await blobs.stat(digest))) return [];
      const out: string[] = [];
      const prefix = `${StoragePaths.repositoriesRoot}/`;
      await driver.walk(StoragePaths.repositoriesRoot, async (info) => {
        if (!info.isDir) return;
        const base = info.path.slice(info.path.lastIndexOf('/') + 1);
        if (base === StoragePaths.reserved.layers) {
          const name = info.path.slice(prefix.length, info.path.length - base.length - 1);
          try {
            await driver.stat(StoragePaths.layerLink(name, digest));
            out.push(name);
          } catch (err) {
            if (!(err instanceof PathNotFoundError)) throw err;
          }
          return 'skip';
        }
        if (base.startsWith('_')) return 'skip';
      });
      return out.sort();
    },
  };
}

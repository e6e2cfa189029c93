import type { ManifestService, StoredManifest } from './manifests.js';

/**
 * The read cache behind the hot path: tag → digest and digest → {bytes, mediaType}, per
 * repository, bounded (LRU by entries and bytes). Only the registry process writes manifests
 * and tags, so invalidating on its own put/delete keeps the cache exact. A version counter
 * stops a slow read that started before a write from re-inserting what the write replaced.
 */
export interface ManifestCache {
  tag(repository: string, tag: string): string | undefined;
  manifest(repository: string, digest: string): StoredManifest | undefined;
  readonly stats: { hits: number; misses: number };
}

export interface ManifestCacheOptions {
  maxEntries?: number;
  maxBytes?: number;
}

export interface ManifestCacheInternals extends ManifestCache {
  version(): number;
  setTag(repository: string, tag: string, digest: string, readVersion?: number): void;
  setManifest(repository: string, manifest: StoredManifest, readVersion?: number): void;
  dropTag(repository: string, tag: string): void;
  dropManifest(repository: string, digest: string): void;
  bump(): void;
}

export function createManifestCache(options: ManifestCacheOptions = {}): ManifestCacheInternals {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const tags = new Map<string, string>();
  const manifests = new Map<string, StoredManifest>();
  let bytes = 0;
  let version = 0;
  const stats = { hits: 0, misses: 0 };

  const tagKey = (repository: string, tag: string): string => `${repository}:${tag}`;
  const manifestKey = (repository: string, digest: string): string => `${repository}@${digest}`;

  function evict(): void {
    while (tags.size > maxEntries) {
      const first = tags.keys().next();
      if (first.done) break;
      tags.delete(first.value);
    }
    while (manifests.size > maxEntries || bytes > maxBytes) {
      const first = manifests.entries().next();
      if (first.done) break;
      manifests.delete(first.value[0]);
      bytes -= first.value[1].bytes.byteLength;
    }
  }

  return {
    stats,
    tag(repository, tag) {
      const value = tags.get(tagKey(repository, tag));
      if (value === undefined) stats.misses++;
      else stats.hits++;
      return value;
    },
    manifest(repository, digest) {
      const key = manifestKey(repository, digest);
      const value = manifests.get(key);
      if (value === undefined) {
        stats.misses++;
        return undefined;
      }
      stats.hits++;
      // refresh LRU position
      manifests.delete(key);
      manifests.set(key, value);
      return value;
    },
    version: () => version,
    bump() {
      version++;
    },
    setTag(repository, tag, digest, readVersion) {
      if (readVersion !== undefined && readVersion !== version) return;
      const key = tagKey(repository, tag);
      tags.delete(key);
      tags.set(key, digest);
      evict();
    },
    setManifest(repository, manifest, readVersion) {
      if (readVersion !== undefined && readVersion !== version) return;
      const key = manifestKey(repository, manifest.digest);
      const previous = manifests.get(key);
      if (previous) {
        manifests.delete(key);
        bytes -= previous.bytes.byteLength;
      }
      manifests.set(key, manifest);
      bytes += manifest.bytes.byteLength;
      evict();
    },
    dropTag(repository, tag) {
      tags.delete(tagKey(repository, tag));
    },
    dropManifest(repository, digest) {
      const key = manifestKey(repository, digest);
      const previous = manifests.get(key);
      if (previous) {
        manifests.delete(key);
        bytes -= previous.bytes.byteLength;
      }
      for (const [key2, value] of tags)
        if (value === digest && key2.startsWith(`${repository}:`)) tags.delete(key2);
    },
  };
}

/** Decorator: reads through the cache, writes invalidate it once the change is on disk. */
export function withManifestCache(
  cache: ManifestCacheInternals,
): (service: ManifestService) => ManifestService {
  return (service) => {
    const repository = service.repository;
    return {
      ...service,
      repository,
      async get(digest) {
        const hit = cache.manifest(repository, digest.digest);
        if (hit) return hit;
        const readVersion = cache.version();
        const found = await service.get(digest);
        if (found) cache.setManifest(repository, found, readVersion);
        return found;
      },
      async resolveTag(tag) {
        const hit = cache.tag(repository, tag);
        if (hit !== undefined) return hit;
        const readVersion = cache.version();
        const found = await service.resolveTag(tag);
        if (found !== undefined) cache.setTag(repository, tag, found, readVersion);
        return found;
      },
      async put(bytes, contentType, reference, extraTags) {
        cache.bump();
        try {
          const result = await service.put(bytes, contentType, reference, extraTags);
          cache.bump();
          cache.setManifest(repository, {
            digest: result.digest,
            mediaType: result.mediaType,
            bytes,
          });
          for (const tag of result.tags) cache.setTag(repository, tag, result.digest);
          return result;
        } catch (err) {
          for (const tag of [reference.tag, ...(extraTags ?? [])])
            if (tag !== undefined) cache.dropTag(repository, tag);
          throw err;
        }
      },
      async delete(digest) {
        cache.bump();
        try {
          return await service.delete(digest);
        } finally {
          cache.bump();
          cache.dropManifest(repository, digest.digest);
        }
      },
      async deleteTag(tag) {
        cache.bump();
        try {
          return await service.deleteTag(tag);
        } finally {
          cache.bump();
          cache.dropTag(repository, tag);
        }
      },
    };
  };
}

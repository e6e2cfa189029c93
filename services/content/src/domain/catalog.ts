import { DuplicateKeyError } from '@flotilla/store';
import type { BlobDoc, ContentCollections, ManifestDoc } from '../collections.js';

/** Largest `$in` list sent to the store at once. */
const IN_BATCH = 500;

export interface Closure {
  /** Every manifest reachable from the roots (index children included). */
  manifests: Map<string, ManifestDoc>;
  /** Every config and layer reachable → its size. */
  blobs: Map<string, number>;
}

/**
 * The record of what the content store holds: manifests with their references, and every file
 * (blobs and manifests) with its publishing state. Files are written before their records
 * (content before the pointer to it).
 */
export class Catalog {
  constructor(private readonly c: ContentCollections) {}

  async recordBlob(digest: string, size: number, kind: BlobDoc['kind']): Promise<void> {
    await this.c.blobs.updateOne(
      { _id: digest },
      { $setOnInsert: { size, kind, createdAt: new Date().toISOString() } },
      { upsert: true },
    );
  }

  async recordManifest(digest: string, doc: Omit<ManifestDoc, 'createdAt'>): Promise<void> {
    await this.recordBlob(digest, doc.size, 'manifest');
    try {
      await this.c.manifests.insertOne({
        ...doc,
        _id: digest,
        createdAt: new Date().toISOString(),
      });
    } catch (err) {
      // Another sync recorded the same manifest first: manifests are immutable by digest.
      if (!(err instanceof DuplicateKeyError)) throw err;
    }
  }

  /** Marks a file's record as used now (gc keeps it); false when it is not recorded. */
  async touchBlob(digest: string): Promise<boolean> {
    const r = await this.c.blobs.updateOne(
      { _id: digest },
      { $set: { usedAt: new Date().toISOString() } },
    );
    return r.matchedCount > 0;
  }

  /**
   * A recorded manifest a sync may rely on instead of fetching it: every record of its closure
   * (manifests, their files, configs and layers) is marked as used now, so gc (which only removes
   * records unused for its grace period, one conditional delete each) keeps them. Null when any
   * record is missing: the caller fetches the manifest again.
   */
  async useManifest(digest: string): Promise<(ManifestDoc & { _id: string }) | null> {
    const doc = await this.manifest(digest);
    if (!doc) return null;
    let closure: Closure;
    try {
      closure = await this.closure([digest]);
    } catch {
      return null;
    }
    const now = new Date().toISOString();
    const manifestIds = [...closure.manifests.keys()];
    const fileIds = [...new Set([...manifestIds, ...closure.blobs.keys()])];
    for (const batch of batches(manifestIds)) {
      const r = await this.c.manifests.updateMany(
        { _id: { $in: batch } },
        { $set: { usedAt: now } },
      );
      if (r.matchedCount !== batch.length) return null;
    }
    for (const batch of batches(fileIds)) {
      const r = await this.c.blobs.updateMany({ _id: { $in: batch } }, { $set: { usedAt: now } });
      if (r.matchedCount !== batch.length) return null;
    }
    return doc;
  }

  async manifest(digest: string): Promise<(ManifestDoc & { _id: string }) | null> {
    return this.c.manifests.findOne({ _id: digest });
  }

  async manifests(digests: Iterable<string>): Promise<Map<string, ManifestDoc>> {
    const out = new Map<string, ManifestDoc>();
    for (const batch of batches([...new Set(digests)])) {
      for (const doc of await this.c.manifests.find({ _id: { $in: batch } })) out.set(doc._id, doc);
    }
    return out;
  }

  async blobDocs(digests: Iterable<string>): Promise<Map<string, BlobDoc & { _id: string }>> {
    const out = new Map<string, BlobDoc & { _id: string }>();
    for (const batch of batches([...new Set(digests)])) {
      for (const doc of await this.c.blobs.find({ _id: { $in: batch } })) out.set(doc._id, doc);
    }
    return out;
  }

  /** Manifests and blobs reachable from `roots` (tag targets); throws when a record is missing. */
  async closure(roots: Iterable<string>): Promise<Closure> {
    const manifests = new Map<string, ManifestDoc>();
    const blobs = new Map<string, number>();
    let frontier = [...new Set(roots)];
    while (frontier.length > 0) {
      const found = await this.manifests(frontier);
      const next: string[] = [];
      for (const digest of frontier) {
        const doc = found.get(digest);
        if (!doc) throw new Error(`manifest ${digest} is referenced but not recorded`);
        manifests.set(digest, doc);
        for (const blob of doc.blobs) blobs.set(blob.digest, blob.size);
        for (const child of doc.children) if (!manifests.has(child)) next.push(child);
      }
      frontier = [...new Set(next)];
    }
    return { manifests, blobs };
  }
}

export function* batches<T>(items: T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += IN_BATCH) yield items.slice(i, i + IN_BATCH);
}

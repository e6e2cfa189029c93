import {
  artifactTypeOf,
  blobDescriptors,
  childManifests,
  digestOf,
  MediaType,
  OciError,
  parseDigest,
  parseManifest,
  type ParsedDigest,
  type ReferrerDescriptor,
} from '@flotilla/protocol';
import { PathNotFoundError, type StorageDriver } from '../storage/driver.js';
import { parseReferrerEntry, StoragePaths } from '../storage/paths.js';
import type { GlobalBlobStore, LinkedBlobStore } from './blobs.js';

/** A manifest as stored: the exact pushed bytes and the media type it was pushed as. */
export interface StoredManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface PutManifestResult {
  repository: string;
  digest: string;
  mediaType: string;
  size: number;
  /** Tags that now point at the manifest. */
  tags: string[];
  subject?: string;
}

export interface DeleteManifestResult {
  repository: string;
  digest: string;
  /** Tags that pointed at the manifest and were removed with it. */
  tags: string[];
}

/**
 * Manifests, tags and referrers of one repository. The manifest bytes live in `blobs/`; the
 * repository holds a revision link (plus the pushed media type), tags point at revisions and
 * `_referrers/` indexes manifests by their `subject`. Decorated for caching and events
 * (`./cached-manifests.ts`, `../events/notifying-manifests.ts`).
 */
export interface ManifestService {
  readonly repository: string;
  get(digest: ParsedDigest): Promise<StoredManifest | undefined>;
  resolveTag(tag: string): Promise<string | undefined>;
  put(
    bytes: Buffer,
    contentType: string | undefined,
    reference: { tag?: string; digest?: string },
    extraTags?: string[],
  ): Promise<PutManifestResult>;
  delete(digest: ParsedDigest): Promise<DeleteManifestResult>;
  deleteTag(tag: string): Promise<DeleteManifestResult>;
  /** Sorted tag names; NAME_UNKNOWN when the repository does not exist. */
  tags(): Promise<string[]>;
  referrers(subject: ParsedDigest, artifactType?: string): Promise<ReferrerDescriptor[]>;
}

const NON_DISTRIBUTABLE = new Set<string>([
  MediaType.DOCKER_FOREIGN_LAYER,
  MediaType.OCI_LAYER_NONDIST,
  MediaType.OCI_LAYER_NONDIST_GZIP,
  MediaType.OCI_LAYER_NONDIST_ZSTD,
]);

async function readText(driver: StorageDriver, path: string): Promise<string | undefined> {
  try {
    return (await driver.getContent(path)).toString('utf8').trim();
  } catch (err) {
    if (err instanceof PathNotFoundError) return undefined;
    throw err;
  }
}

async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (err instanceof PathNotFoundError) return [];
    throw err;
  }
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

export function createManifestService(deps: {
  driver: StorageDriver;
  blobs: GlobalBlobStore;
  linked: LinkedBlobStore;
  repository: string;
  /** Refuses a put early (StorageFullError) below the free-space reserve. */
  ensureWritable?: () => Promise<void>;
}): ManifestService {
  const { driver, blobs, linked, repository } = deps;

  async function hasRevision(digest: ParsedDigest): Promise<boolean> {
    return (
      (await readText(driver, StoragePaths.revisionLink(repository, digest))) === digest.digest
    );
  }

  async function get(digest: ParsedDigest): Promise<StoredManifest | undefined> {
    if (!(await hasRevision(digest))) return undefined;
    let bytes: Buffer;
    try {
      bytes = await driver.getContent(StoragePaths.blobData(digest));
    } catch (err) {
      if (err instanceof PathNotFoundError) return undefined;
      throw err;
    }
    const mediaType =
      (await readText(driver, StoragePaths.revisionMediaType(repository, digest))) ??
      MediaType.OCI_MANIFEST;
    return { digest: digest.digest, mediaType, bytes };
  }

  async function tagsPointingAt(digest: string): Promise<string[]> {
    const out: string[] = [];
    for (const tag of await listOrEmpty(driver, StoragePaths.tagsRoot(repository))) {
      if ((await readText(driver, StoragePaths.tagCurrentLink(repository, tag))) === digest)
        out.push(tag);
    }
    return out;
  }

  return {
    repository,
    get,

    async resolveTag(tag) {
      const digest = await readText(driver, StoragePaths.tagCurrentLink(repository, tag));
      return digest === undefined || digest === '' ? undefined : digest;
    },

    async put(bytes, contentType, reference, extraTags = []) {
      const parsed = parseManifest(bytes, contentType);
      let digest: ParsedDigest;
      if (reference.digest !== undefined) {
        digest = parseDigest(reference.digest);
        const actual =
          digest.algorithm === 'sha256' ? parsed.digest : digestOf(bytes, digest.algorithm);
        if (actual !== digest.digest) {
          throw new OciError('DIGEST_INVALID', 'manifest digest does not match the reference', {
            detail: { expected: digest.digest, actual },
          });
        }
      } else {
        digest = parseDigest(parsed.digest);
      }

      const missing: string[] = [];
      for (const descriptor of blobDescriptors(parsed)) {
        if (NON_DISTRIBUTABLE.has(descriptor.mediaType) || (descriptor.urls?.length ?? 0) > 0)
          continue;
        const d = parseDigest(descriptor.digest);
        // touch() both proves the data exists and tells a running GC that it is in use
        if (!(await linked.hasLink(d)) || !(await blobs.touch(d))) missing.push(d.digest);
      }
      for (const child of childManifests(parsed)) {
        const d = parseDigest(child.digest);
        if (!(await hasRevision(d)) || !(await blobs.touch(d))) missing.push(d.digest);
      }
      if (missing.length > 0) {
        throw new OciError('MANIFEST_BLOB_UNKNOWN', undefined, {
          detail: { digest: missing[0], missing: missing.slice(0, 20) },
        });
      }

      await deps.ensureWritable?.();
      // content, then its media type, then the revision link, then referrers and tags
      if ((await blobs.stat(digest))?.size !== bytes.byteLength) {
        await driver.putContent(StoragePaths.blobData(digest), bytes);
      } else {
        await blobs.touch(digest);
      }
      await driver.putContent(StoragePaths.revisionMediaType(repository, digest), parsed.mediaType);
      await driver.putContent(StoragePaths.revisionLink(repository, digest), digest.digest);
      let subject: string | undefined;
      if (parsed.subject) {
        const s = parseDigest(parsed.subject.digest);
        subject = s.digest;
        await driver.putContent(StoragePaths.referrerLink(repository, s, digest), digest.digest);
      }
      const tags = [
        ...new Set([...(reference.tag === undefined ? [] : [reference.tag]), ...extraTags]),
      ];
      for (const tag of tags)
        await driver.putContent(StoragePaths.tagCurrentLink(repository, tag), digest.digest);
      const result: PutManifestResult = {
        repository,
        digest: digest.digest,
        mediaType: parsed.mediaType,
        size: bytes.byteLength,
        tags,
      };
      if (subject !== undefined) result.subject = subject;
      return result;
    },

    async delete(digest) {
      const manifest = await get(digest);
      if (!manifest)
        throw new OciError('MANIFEST_UNKNOWN', undefined, { detail: { digest: digest.digest } });
      // pointers go first: tags, then the referrers entry, then the revision itself
      const tags = await tagsPointingAt(digest.digest);
      for (const tag of tags) await driver.delete(StoragePaths.tagDir(repository, tag));
      let subjectDigest: string | undefined;
      try {
        subjectDigest = parseManifest(manifest.bytes, manifest.mediaType).subject?.digest;
      } catch {
        subjectDigest = undefined;
      }
      if (subjectDigest !== undefined) {
        const s = parseDigest(subjectDigest);
        await driver.delete(parentOf(StoragePaths.referrerLink(repository, s, digest)));
      }
      await driver.delete(StoragePaths.revisionDir(repository, digest));
      return { repository, digest: digest.digest, tags };
    },

    async deleteTag(tag) {
      const digest = await readText(driver, StoragePaths.tagCurrentLink(repository, tag));
      if (digest === undefined)
        throw new OciError('MANIFEST_UNKNOWN', 'tag unknown', { detail: { tag } });
      await driver.delete(StoragePaths.tagDir(repository, tag));
      return { repository, digest, tags: [tag] };
    },

    async tags() {
      try {
        await driver.stat(StoragePaths.repository(repository));
      } catch (err) {
        if (err instanceof PathNotFoundError)
          throw new OciError('NAME_UNKNOWN', undefined, { detail: { name: repository } });
        throw err;
      }
      const out: string[] = [];
      for (const tag of await listOrEmpty(driver, StoragePaths.tagsRoot(repository))) {
        if ((await readText(driver, StoragePaths.tagCurrentLink(repository, tag))) !== undefined)
          out.push(tag);
      }
      return out.sort();
    },

    async referrers(subject, artifactType) {
      const out: ReferrerDescriptor[] = [];
      for (const entry of await listOrEmpty(
        driver,
        StoragePaths.referrersOf(repository, subject),
      )) {
        const parts = parseReferrerEntry(entry);
        if (!parts) continue;
        let d: ParsedDigest;
        try {
          d = parseDigest(`${parts.algorithm}:${parts.hex}`);
        } catch {
          continue;
        }
        const manifest = await get(d);
        if (!manifest) continue;
        let descriptor: ReferrerDescriptor;
        try {
          const parsed = parseManifest(manifest.bytes, manifest.mediaType);
          descriptor = {
            mediaType: parsed.mediaType,
            digest: d.digest,
            size: manifest.bytes.byteLength,
          };
          const type = artifactTypeOf(parsed);
          if (type !== undefined) descriptor.artifactType = type;
          if (parsed.annotations !== undefined) descriptor.annotations = parsed.annotations;
        } catch {
          continue;
        }
        if (artifactType !== undefined && descriptor.artifactType !== artifactType) continue;
        out.push(descriptor);
      }
      return out;
    },
  };
}

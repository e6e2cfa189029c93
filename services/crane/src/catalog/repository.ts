import {
  digestOf,
  MediaType,
  parseDigest,
  type ReferrerDescriptor,
  type RepositoryMetadata,
} from '@flotilla/protocol';

/**
 * One published repository as crane serves it: everything a response needs is computed here,
 * once per load (bodies as Buffers, response headers as frozen objects), so the request path
 * only looks things up.
 */
export interface ManifestEntry {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly body: Buffer;
  readonly isIndex: boolean;
  /** For an index: the linux/amd64 child, the fallback for clients that do not accept indexes. */
  readonly amd64Child?: string;
  /** Headers when addressed by digest (long-lived cache) and by tag (short cache). */
  readonly headersByDigest: Readonly<Record<string, string>>;
  readonly headersByTag: Readonly<Record<string, string>>;
}

export interface RepositoryView {
  readonly name: string;
  readonly publication: number;
  readonly protected: boolean;
  readonly tags: ReadonlyMap<string, string>;
  /** Tag names, sorted (code-unit order, like Distribution), for `tags/list` pagination. */
  readonly tagNames: readonly string[];
  readonly manifests: ReadonlyMap<string, ManifestEntry>;
  /** Every layer and config digest → size. */
  readonly blobs: ReadonlyMap<string, number>;
  /** Subject digest → the manifests that refer to it. */
  readonly referrers: ReadonlyMap<string, readonly ReferrerDescriptor[]>;
}

export interface CachePolicy {
  /** `Cache-Control` for responses addressed by digest (immutable). */
  byDigest: string;
  /** `Cache-Control` for responses addressed by tag (a tag moves on the next publication). */
  byTag: string;
}

export class MetadataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetadataError';
  }
}

interface ManifestShape {
  mediaType?: unknown;
  artifactType?: unknown;
  config?: { mediaType?: unknown };
  manifests?: Array<{
    digest?: unknown;
    platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
  }>;
  subject?: { digest?: unknown };
  annotations?: unknown;
}

function findAmd64Child(shape: ManifestShape): string | undefined {
  let withVariant: string | undefined;
  for (const child of shape.manifests ?? []) {
    const p = child.platform;
    if (p?.os !== 'linux' || p.architecture !== 'amd64' || typeof child.digest !== 'string')
      continue;
    if (p.variant === undefined) return child.digest;
    withVariant ??= child.digest;
  }
  return withVariant;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string')
  );
}

/**
 * Builds the served form of one repository from its validated metadata. Throws
 * `MetadataError` when the metadata contradicts itself (bytes that do not hash to their digest,
 * a tag pointing at a manifest that is not there): such a file is skipped by the loader and the
 * previous good copy of the repository keeps being served.
 */
export function buildRepositoryView(
  metadata: RepositoryMetadata,
  options: { protected: boolean; cache: CachePolicy },
): RepositoryView {
  const manifests = new Map<string, ManifestEntry>();
  const referrers = new Map<string, ReferrerDescriptor[]>();
  for (const [digest, entry] of Object.entries(metadata.manifests)) {
    const body = Buffer.from(entry.data, 'base64');
    if (body.length !== entry.size) {
      throw new MetadataError(
        `manifest ${digest}: ${body.length} bytes, metadata says ${entry.size}`,
      );
    }
    const { algorithm } = parseDigest(digest);
    if (digestOf(body, algorithm) !== digest)
      throw new MetadataError(`manifest ${digest}: bytes do not match the digest`);
    let shape: ManifestShape;
    try {
      shape = JSON.parse(body.toString('utf8')) as ManifestShape;
    } catch (err) {
      throw new MetadataError(`manifest ${digest}: not JSON`, { cause: err });
    }
    if (typeof shape !== 'object' || shape === null)
      throw new MetadataError(`manifest ${digest}: not an object`);
    const isIndex =
      entry.mediaType === MediaType.OCI_INDEX || entry.mediaType === MediaType.DOCKER_MANIFEST_LIST;
    const common = {
      'Content-Type': entry.mediaType,
      'Content-Length': String(body.length),
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Docker-Distribution-Api-Version': 'registry/2.0',
    };
    const amd64Child = isIndex ? findAmd64Child(shape) : undefined;
    manifests.set(digest, {
      digest,
      mediaType: entry.mediaType,
      size: body.length,
      body,
      isIndex,
      ...(amd64Child ? { amd64Child } : {}),
      headersByDigest: Object.freeze({ ...common, 'Cache-Control': options.cache.byDigest }),
      // by tag the answer depends on Accept (the amd64 fallback): shared caches must key on it
      headersByTag: Object.freeze({
        ...common,
        'Cache-Control': options.cache.byTag,
        Vary: 'Accept',
      }),
    });
    const subject = shape.subject?.digest;
    if (typeof subject === 'string') {
      const artifactType =
        typeof shape.artifactType === 'string'
          ? shape.artifactType
          : typeof shape.config?.mediaType === 'string'
            ? shape.config.mediaType
            : undefined;
      const descriptor: ReferrerDescriptor = {
        mediaType: entry.mediaType,
        digest,
        size: body.length,
        ...(artifactType ? { artifactType } : {}),
        ...(isStringRecord(shape.annotations) ? { annotations: shape.annotations } : {}),
      };
      const list = referrers.get(subject) ?? [];
      list.push(descriptor);
      referrers.set(subject, list);
    }
  }
  const tags = new Map<string, string>();
  for (const [tag, digest] of Object.entries(metadata.tags)) {
    if (!manifests.has(digest))
      throw new MetadataError(`tag ${tag} points at ${digest}, which is not in manifests`);
    tags.set(tag, digest);
  }
  for (const list of referrers.values())
    list.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return {
    name: metadata.repository,
    publication: metadata.publication,
    protected: options.protected,
    tags,
    tagNames: [...tags.keys()].sort(compareCodeUnits),
    manifests,
    blobs: new Map(Object.entries(metadata.blobs)),
    referrers,
  };
}

/** Plain code-unit order (what Distribution's sort.Strings gives), not locale order. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

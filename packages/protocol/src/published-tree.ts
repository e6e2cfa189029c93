import { Buffer } from 'node:buffer';
import { z } from 'zod';
import { isDigest, parseDigest } from './digest.js';
import { OciError } from './errors.js';
import { MANIFEST_MEDIA_TYPES } from './media-types.js';
import { assertRepositoryName, isValidRepositoryName, isValidTag } from './reference.js';

/**
 * The published tree, relative to the publish root (always `/`-separated):
 *
 *   blobs/sha256/<first 2 hex>/<64 hex>          immutable blobs and manifests, exact bytes,
 *                                                once however many channels reference them
 *   publications/<n>.json                        publication record n (one sequence, every channel)
 *   PUBLICATION                                  n of the newest complete publication of any
 *                                                channel, written last (what mirrors are judged by)
 *   channels/<channel>/repositories/<name>.json  crane metadata: that channel's view
 *   channels/<channel>/PUBLICATION               n of the channel's newest complete publication
 *   repositories/<name>.json                     the single view of trees written before channels
 *                                                (read as the default channel's view until that
 *                                                channel has a view of its own)
 *   keys/index.json, keys/<id>.pub               the public keys published images are signed with
 *                                                (one set for every channel)
 *
 * Every path is built here and from validated input only, so no `..` can get in.
 */
export const PublishedPaths = {
  /** Only sha256 blobs are published; other algorithms raise UNSUPPORTED. */
  blob(digest: string): string {
    const parsed = parseDigest(digest);
    if (parsed.algorithm !== 'sha256') {
      throw new OciError('UNSUPPORTED', 'the published tree holds sha256 blobs only', {
        status: 400,
        detail: { digest: parsed.digest },
      });
    }
    return `blobs/sha256/${parsed.hex.slice(0, 2)}/${parsed.hex}`;
  },
  /** The single-view layout of trees written before channels (`legacyView().repository`). */
  repository(name: string): string {
    assertRepositoryName(name);
    return `repositories/${name}.json`;
  },
  /** `channels/<channel>/repositories/<name>.json`. */
  channelRepository(channel: string, name: string): string {
    return publishedView(channel).repository(name);
  },
  /** `channels/<channel>/PUBLICATION`. */
  channelMarker(channel: string): string {
    return publishedView(channel).marker;
  },
  publication(n: number): string {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new PublishedTreeError(
        'PUBLICATION_INVALID',
        'publication number must be an integer ≥ 0',
      );
    }
    return `publications/${n}.json`;
  },
  marker: 'PUBLICATION',
  /** The public keys Flotilla signs with (current and retired): `keys/index.json`. */
  keys: 'keys/index.json',
  /** One public key as PEM: `keys/<id>.pub` (id = 16 hex, see `publicKeyId`). */
  key(id: string): string {
    if (!KEY_ID.test(id))
      throw new PublishedTreeError('METADATA_INVALID', 'a key id is 16 lowercase hex');
    return `keys/${id}.pub`;
  },
} as const;

/** The channel crane serves unless told otherwise, and content publishes by default. */
export const DEFAULT_PUBLISHED_CHANNEL = 'stable';

const CHANNEL_NAME = /^[a-z][a-z0-9-]{0,63}$/;

export function isValidChannelName(channel: string): boolean {
  return CHANNEL_NAME.test(channel);
}

/**
 * One channel's view of the tree (what one crane serves): its repository metadata files and
 * its marker. `channel: null` is the single view of a tree written before channels.
 */
export interface PublishedView {
  readonly channel: string | null;
  /** The folder holding `<name>.json` files. */
  readonly repositoriesDir: string;
  readonly marker: string;
  repository(name: string): string;
}

export function publishedView(channel: string): PublishedView {
  if (!isValidChannelName(channel)) {
    throw new PublishedTreeError('CHANNEL_INVALID', 'channel names are lowercase words');
  }
  const base = `channels/${channel}`;
  return {
    channel,
    repositoriesDir: `${base}/repositories`,
    marker: `${base}/PUBLICATION`,
    repository(name) {
      assertRepositoryName(name);
      return `${base}/repositories/${name}.json`;
    },
  };
}

/** The single view of a tree written before channels: root `repositories/` and `PUBLICATION`. */
export function legacyView(): PublishedView {
  return {
    channel: null,
    repositoriesDir: 'repositories',
    marker: PublishedPaths.marker,
    repository: (name) => PublishedPaths.repository(name),
  };
}

const KEY_ID = /^[a-f0-9]{16}$/;

export type PublishedTreeErrorCode =
  'PUBLICATION_INVALID' | 'MARKER_INVALID' | 'METADATA_INVALID' | 'CHANNEL_INVALID';

export class PublishedTreeError extends Error {
  readonly code: PublishedTreeErrorCode;
  readonly issues: { path: string; message: string }[];

  constructor(
    code: PublishedTreeErrorCode,
    message: string,
    issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'PublishedTreeError';
    this.code = code;
    this.issues = issues;
  }
}

const digest = z.string().refine(isDigest, { message: 'invalid digest' });
const sha256Digest = z
  .string()
  .regex(/^sha256:[a-f0-9]{64}$/, { message: 'expected a sha256 digest' });
const publication = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, { message: 'expected base64' });

export const publishedManifestSchema = z
  .object({
    mediaType: z.enum(MANIFEST_MEDIA_TYPES),
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    /** Base64 of the exact manifest bytes. */
    data: base64,
  })
  .refine((m) => Buffer.byteLength(m.data, 'base64') === m.size, {
    message: 'size differs from the length of data',
    path: ['size'],
  });

/**
 * A JSON object used as a map, parsed into a null-prototype object: `__proto__` is a valid
 * tag, and `tags[tag]` must never reach Object.prototype (z.record would drop such a key
 * silently and leave the prototype lookup in place).
 */
function dictionary<V extends z.ZodType>(key: z.ZodType<string>, value: V) {
  return z.custom<Record<string, z.output<V>>>().transform((input, ctx) => {
    const out = Object.create(null) as Record<string, z.output<V>>;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      ctx.addIssue({ code: 'custom', message: 'expected an object' });
      return z.NEVER;
    }
    for (const k of Object.keys(input)) {
      if (!key.safeParse(k).success) {
        ctx.addIssue({ code: 'custom', message: 'invalid key', path: [k] });
        continue;
      }
      const parsed = value.safeParse((input as Record<string, unknown>)[k]);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          ctx.addIssue({ code: 'custom', message: issue.message, path: [k, ...issue.path] });
        }
        continue;
      }
      out[k] = parsed.data as z.output<V>;
    }
    return out;
  });
}

export const repositoryMetadataSchema = z
  .object({
    schemaVersion: z.literal(1),
    repository: z.string().refine(isValidRepositoryName, { message: 'invalid repository name' }),
    publication,
    /** tag → manifest digest (a null-prototype object). */
    tags: dictionary(z.string().refine(isValidTag), digest),
    /** manifest digest → media type, size and base64 bytes (a null-prototype object). */
    manifests: dictionary(digest, publishedManifestSchema),
    /** layer/config digest → size (a null-prototype object). */
    blobs: dictionary(sha256Digest, z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
  })
  .superRefine((metadata, ctx) => {
    for (const [tag, target] of Object.entries(metadata.tags)) {
      if (!Object.hasOwn(metadata.manifests, target)) {
        ctx.addIssue({
          code: 'custom',
          message: 'tag points to a manifest missing from manifests',
          path: ['tags', tag],
        });
      }
    }
  });

export const publicationRecordSchema = z.object({
  schemaVersion: z.literal(1),
  publication,
  channel: z.string().min(1),
  time: z.iso.datetime({ offset: true }),
  repositories: z.array(
    z.string().refine(isValidRepositoryName, { message: 'invalid repository name' }),
  ),
  /** Digests of the blobs (layers, configs and manifests) this publication added. */
  newBlobs: z.array(sha256Digest),
});

export type PublishedManifest = z.infer<typeof publishedManifestSchema>;
export type RepositoryMetadata = z.infer<typeof repositoryMetadataSchema>;
export type PublicationRecord = z.infer<typeof publicationRecordSchema>;

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues
    .slice(0, 10)
    .map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

function parseJsonDocument<T>(
  schema: z.ZodType<T>,
  input: string | Uint8Array | unknown,
  what: string,
): T {
  let value: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      throw new PublishedTreeError('METADATA_INVALID', `${what} is not valid JSON`);
    }
  }
  const result = schema.safeParse(value);
  if (!result.success)
    throw new PublishedTreeError('METADATA_INVALID', `invalid ${what}`, issuesOf(result.error));
  return result.data;
}

/** Parses `repositories/<name>.json` (text, bytes or an already-parsed value). */
export function parseRepositoryMetadata(input: string | Uint8Array | unknown): RepositoryMetadata {
  return parseJsonDocument(repositoryMetadataSchema, input, 'repository metadata');
}

/** Parses `publications/<n>.json` (text, bytes or an already-parsed value). */
export function parsePublicationRecord(input: string | Uint8Array | unknown): PublicationRecord {
  return parseJsonDocument(publicationRecordSchema, input, 'publication record');
}

/** The content of `PUBLICATION`: a decimal integer ≥ 0, surrounding whitespace allowed. */
export function parsePublicationMarker(text: string | Uint8Array): number {
  const raw =
    typeof text === 'string'
      ? text
      : text instanceof Uint8Array
        ? Buffer.from(text).toString('utf8')
        : '';
  const trimmed = raw.trim();
  if (!/^[0-9]{1,15}$/.test(trimmed)) {
    throw new PublishedTreeError('MARKER_INVALID', 'PUBLICATION must hold a decimal integer');
  }
  return Number.parseInt(trimmed, 10);
}

/** The text to write into `PUBLICATION` for publication n. */
export function formatPublicationMarker(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new PublishedTreeError(
      'PUBLICATION_INVALID',
      'publication number must be an integer ≥ 0',
    );
  }
  return `${n}\n`;
}

export const publishedKeysSchema = z.object({
  schemaVersion: z.literal(1),
  /** The key new signatures are made with. */
  current: z.string().regex(KEY_ID),
  keys: z.array(
    z.object({
      id: z.string().regex(KEY_ID),
      /** PEM (`-----BEGIN PUBLIC KEY-----`). */
      publicKey: z.string().min(1).max(10_000),
      status: z.enum(['current', 'retired']),
    }),
  ),
});

export type PublishedKeys = z.infer<typeof publishedKeysSchema>;

/** Parses `keys/index.json` (text, bytes or an already-parsed value). */
export function parsePublishedKeys(input: string | Uint8Array | unknown): PublishedKeys {
  return parseJsonDocument(publishedKeysSchema, input, 'published keys');
}

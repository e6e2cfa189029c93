import { z } from 'zod';
import { digestOf, isDigest } from './digest.js';
import { OciError } from './errors.js';
import {
  MediaType,
  isImageManifestMediaType,
  isIndexMediaType,
  isManifestMediaType,
  isSchema1MediaType,
  normalizeMediaType,
  type ManifestMediaType,
} from './media-types.js';

/** The registry refuses larger manifests (Docker Distribution's limit too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export const SCHEMA1_REFUSAL = 'Docker schema 1 manifests are not supported; push schema 2 or OCI';

const digestField = z
  .string()
  .refine(isDigest, { message: 'invalid digest (expected sha256:<64 hex> or sha512:<128 hex>)' });
const sizeField = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const annotationsField = z.record(z.string(), z.string());

export const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});
export type Platform = z.infer<typeof platformSchema>;

export const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest: digestField,
  size: sizeField,
  urls: z.array(z.string()).optional(),
  annotations: annotationsField.optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
  data: z.string().optional(),
});

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

/** A descriptor as the referrers API lists it (an entry of the returned index's `manifests`). */
export type ReferrerDescriptor = Pick<
  Descriptor,
  'mediaType' | 'digest' | 'size' | 'artifactType' | 'annotations'
>;

export const ociManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.OCI_MANIFEST).optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsField.optional(),
});

export const ociIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.OCI_INDEX).optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsField.optional(),
});

// Docker's schema 2 formats always carry their mediaType (Distribution refuses them without it).
export const dockerManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.DOCKER_MANIFEST),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});

export const dockerManifestListSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.DOCKER_MANIFEST_LIST),
  manifests: z.array(descriptorSchema),
});

const SCHEMA_BY_MEDIA_TYPE = {
  [MediaType.OCI_MANIFEST]: ociManifestSchema,
  [MediaType.OCI_INDEX]: ociIndexSchema,
  [MediaType.DOCKER_MANIFEST]: dockerManifestSchema,
  [MediaType.DOCKER_MANIFEST_LIST]: dockerManifestListSchema,
} as const;

export type ManifestKind = 'image' | 'index';

export interface ParsedManifest {
  mediaType: ManifestMediaType;
  kind: ManifestKind;
  /** sha256 of the exact bytes. */
  digest: string;
  size: number;
  schemaVersion: 2;
  /** Images only. */
  config?: Descriptor;
  /** Images: the layers, in order; indexes: empty. */
  layers: Descriptor[];
  /** Indexes: the child manifests; images: empty. */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Content types clients send when they do not know better; for these the media type is
 * taken from the body, as when no Content-Type was given.
 */
const GENERIC_CONTENT_TYPES = new Set([
  '',
  'application/json',
  'application/octet-stream',
  'text/plain',
]);

function invalid(message: string, detail?: unknown): OciError {
  return new OciError('MANIFEST_INVALID', message, detail === undefined ? {} : { detail });
}

function schema1Refusal(): OciError {
  return new OciError('UNSUPPORTED', SCHEMA1_REFUSAL, { status: 415 });
}

function toDescriptor(d: z.infer<typeof descriptorSchema>): Descriptor {
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform !== undefined) out.platform = d.platform;
  if (d.artifactType !== undefined) out.artifactType = d.artifactType;
  if (d.annotations !== undefined) out.annotations = d.annotations;
  if (d.urls !== undefined) out.urls = d.urls;
  return out;
}

function decodeJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalid('manifest is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalid('manifest is not valid JSON', {
      reason: err instanceof Error ? err.message : String(err),
    });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The media type from a Content-Type header, or undefined when it says nothing useful. */
function mediaTypeFromContentType(contentType: string | undefined): ManifestMediaType | undefined {
  if (contentType === undefined) return undefined;
  const normalized = normalizeMediaType(contentType);
  if (GENERIC_CONTENT_TYPES.has(normalized)) return undefined;
  if (isSchema1MediaType(normalized)) throw schema1Refusal();
  if (!isManifestMediaType(normalized)) {
    throw new OciError(
      'UNSUPPORTED',
      `unsupported manifest media type "${normalized.slice(0, 100)}"`,
      {
        status: 415,
        detail: { mediaType: normalized.slice(0, 200) },
      },
    );
  }
  return normalized as ManifestMediaType;
}

function inferMediaType(body: Record<string, unknown>): ManifestMediaType {
  if ('manifests' in body) return MediaType.OCI_INDEX;
  if ('config' in body && 'layers' in body) return MediaType.OCI_MANIFEST;
  throw invalid(
    'cannot determine the manifest media type: no mediaType and neither manifests nor config and layers',
  );
}

/**
 * Validates a pushed or fetched manifest and resolves its media type: from the Content-Type
 * when one is given, else from the body's mediaType field, else by shape (`manifests` → OCI
 * index, `config` + `layers` → OCI image manifest).
 *
 * Refusals: larger than MAX_MANIFEST_BYTES → SIZE_INVALID with status 413 (the registry
 * answers 413 Payload Too Large; SIZE_INVALID is the catalog code about lengths);
 * Docker schema 1 (by content type or by schemaVersion 1) and unknown manifest media types →
 * UNSUPPORTED with status 415; everything else (invalid UTF-8 or JSON, a mediaType field that
 * contradicts the Content-Type, bad digests, negative sizes, missing fields) → MANIFEST_INVALID.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  if (!(bytes instanceof Uint8Array)) throw invalid('manifest must be bytes');
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new OciError('SIZE_INVALID', `manifest larger than ${MAX_MANIFEST_BYTES} bytes`, {
      status: 413,
      detail: { size: bytes.byteLength, limit: MAX_MANIFEST_BYTES },
    });
  }
  const fromHeader = mediaTypeFromContentType(contentType);
  const body = decodeJson(bytes);
  if (!isPlainObject(body)) throw invalid('manifest must be a JSON object');
  if (body['schemaVersion'] === 1) throw schema1Refusal();
  const declared = body['mediaType'];
  if (declared !== undefined && typeof declared !== 'string')
    throw invalid('mediaType must be a string');
  if (declared !== undefined && isSchema1MediaType(declared)) throw schema1Refusal();
  if (fromHeader !== undefined && declared !== undefined && declared !== fromHeader) {
    throw invalid(
      `mediaType "${declared.slice(0, 100)}" contradicts Content-Type "${fromHeader}"`,
      {
        mediaType: declared.slice(0, 200),
        contentType: fromHeader,
      },
    );
  }
  let mediaType: ManifestMediaType;
  if (fromHeader !== undefined) mediaType = fromHeader;
  else if (declared !== undefined) {
    if (!isManifestMediaType(declared) || declared !== normalizeMediaType(declared)) {
      throw invalid(`unknown manifest mediaType "${declared.slice(0, 100)}"`);
    }
    mediaType = declared as ManifestMediaType;
  } else mediaType = inferMediaType(body);

  const result = SCHEMA_BY_MEDIA_TYPE[mediaType].safeParse(body);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 10).map((issue) => ({
      path: issue.path.map(String).join('.'),
      message: issue.message,
    }));
    const first = issues[0];
    throw invalid(
      first === undefined
        ? 'manifest invalid'
        : `manifest invalid: ${first.path || '(root)'}: ${first.message}`,
      {
        issues,
      },
    );
  }
  const data = result.data as {
    config?: z.infer<typeof descriptorSchema>;
    layers?: z.infer<typeof descriptorSchema>[];
    manifests?: z.infer<typeof descriptorSchema>[];
    subject?: z.infer<typeof descriptorSchema>;
    artifactType?: string;
    annotations?: Record<string, string>;
  };
  const kind: ManifestKind = isIndexMediaType(mediaType) ? 'index' : 'image';
  const parsed: ParsedManifest = {
    mediaType,
    kind,
    digest: digestOf(bytes),
    size: bytes.byteLength,
    schemaVersion: 2,
    layers: kind === 'image' ? (data.layers ?? []).map(toDescriptor) : [],
    manifests: kind === 'index' ? (data.manifests ?? []).map(toDescriptor) : [],
  };
  if (kind === 'image' && data.config !== undefined) parsed.config = toDescriptor(data.config);
  if (data.subject !== undefined) parsed.subject = toDescriptor(data.subject);
  if (data.artifactType !== undefined) parsed.artifactType = data.artifactType;
  if (data.annotations !== undefined) parsed.annotations = data.annotations;
  return parsed;
}

/** Config and layers: the blobs an image manifest needs (none for an index). */
export function blobDescriptors(parsed: ParsedManifest): Descriptor[] {
  return parsed.config === undefined ? [...parsed.layers] : [parsed.config, ...parsed.layers];
}

/** The manifests an index points to (none for an image manifest). */
export function childManifests(parsed: ParsedManifest): Descriptor[] {
  return [...parsed.manifests];
}

/**
 * The artifactType a referrers response reports for this manifest: its own artifactType,
 * else (image manifests) the config's media type, as the distribution spec prescribes.
 */
export function artifactTypeOf(parsed: ParsedManifest): string | undefined {
  return (
    parsed.artifactType ??
    (isImageManifestMediaType(parsed.mediaType) ? parsed.config?.mediaType : undefined)
  );
}

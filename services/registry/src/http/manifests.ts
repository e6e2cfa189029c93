import {
  MAX_MANIFEST_BYTES,
  MediaType,
  OciError,
  parseDigest,
  parseManifest,
  parseManifestReference,
  parseManifestReferenceToRead,
  assertTag,
  type ParsedDigest,
} from '@flotilla/protocol';
import type { StoredManifest } from '../domain/manifests.js';
import { authorize, Locations, sendEmpty, type V2Context } from './context.js';

/** `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE. */

function accepts(acceptHeader: string | undefined, mediaType: string): boolean {
  if (acceptHeader === undefined || acceptHeader.trim() === '') return true;
  for (const part of acceptHeader.split(',')) {
    const semi = part.indexOf(';');
    const type = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase();
    if (type === mediaType || type === '*/*' || type === 'application/*') return true;
  }
  return false;
}

async function loadManifest(
  ctx: V2Context,
  digest: ParsedDigest,
): Promise<StoredManifest | undefined> {
  return (
    ctx.deps.cache.manifest(ctx.name, digest.digest) ??
    (await ctx.deps.registry.repository(ctx.name).manifests.get(digest))
  );
}

/**
 * Distribution's negotiation: an OCI manifest or index is only served to a client that
 * accepts its type; a Docker manifest list asked for by tag by a client that does not accept
 * lists gets the linux/amd64 image instead; Docker schema 2 images are served as they are
 * (Distribution would down-convert to schema 1, which Flotilla does not support).
 */
async function negotiate(
  ctx: V2Context,
  manifest: StoredManifest,
  byTag: boolean,
): Promise<StoredManifest> {
  const accept = ctx.req.headers.accept;
  if (accepts(accept, manifest.mediaType)) return manifest;
  if (manifest.mediaType === MediaType.OCI_MANIFEST || manifest.mediaType === MediaType.OCI_INDEX) {
    const what = manifest.mediaType === MediaType.OCI_INDEX ? 'OCI index' : 'OCI manifest';
    throw new OciError(
      'MANIFEST_UNKNOWN',
      `${what} found, but accept header does not support OCI manifests`,
      {
        detail: { mediaType: manifest.mediaType },
      },
    );
  }
  if (manifest.mediaType === MediaType.DOCKER_MANIFEST_LIST && byTag) {
    const parsed = parseManifest(manifest.bytes, manifest.mediaType);
    const child = parsed.manifests.find(
      (m) => m.platform?.architecture === 'amd64' && m.platform.os === 'linux',
    );
    if (child) {
      const found = await loadManifest(ctx, parseDigest(child.digest));
      if (found) return found;
    }
    throw new OciError(
      'MANIFEST_UNKNOWN',
      'manifest list found, but accept header does not support manifest lists',
    );
  }
  return manifest;
}

export async function getManifest(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'pull');
  const reference = parseManifestReferenceToRead(ctx.param);
  let digest: ParsedDigest;
  if (reference.tag !== undefined) {
    const resolved =
      ctx.deps.cache.tag(ctx.name, reference.tag) ??
      (await ctx.deps.registry.repository(ctx.name).manifests.resolveTag(reference.tag));
    if (resolved === undefined)
      throw new OciError('MANIFEST_UNKNOWN', undefined, { detail: { tag: reference.tag } });
    digest = parseDigest(resolved);
  } else {
    digest = parseDigest(reference.digest);
  }
  const stored = await loadManifest(ctx, digest);
  if (!stored)
    throw new OciError('MANIFEST_UNKNOWN', undefined, { detail: { digest: digest.digest } });
  const manifest = await negotiate(ctx, stored, reference.tag !== undefined);
  const etag = `"${manifest.digest}"`;
  const headers = {
    'Content-Type': manifest.mediaType,
    'Docker-Content-Digest': manifest.digest,
    ETag: etag,
  };
  const ifNoneMatch = ctx.req.headers['if-none-match'];
  if (
    ifNoneMatch !== undefined &&
    ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')
  ) {
    ctx.res.writeHead(304, headers);
    ctx.res.end();
    return;
  }
  ctx.res.writeHead(200, { ...headers, 'Content-Length': manifest.bytes.byteLength });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : manifest.bytes);
}

/** Reads a request body of at most `limit` bytes (manifests only; blobs are streamed). */
async function readLimited(ctx: V2Context, limit: number): Promise<Buffer> {
  const declared = ctx.req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    ctx.req.resume();
    throw new OciError('SIZE_INVALID', `manifest larger than ${limit} bytes`, {
      status: 413,
      detail: { size: Number(declared), limit },
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req) {
    total += (chunk as Buffer).byteLength;
    if (total > limit) {
      ctx.req.resume();
      throw new OciError('SIZE_INVALID', `manifest larger than ${limit} bytes`, {
        status: 413,
        detail: { limit },
      });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

export async function putManifest(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  const reference = parseManifestReference(ctx.param);
  const extraTags = ctx.search === '' ? [] : ctx.query().getAll('tag');
  for (const tag of extraTags) assertTag(tag);
  const bytes = await readLimited(ctx, MAX_MANIFEST_BYTES);
  const result = await ctx.deps.registry
    .repository(ctx.name)
    .manifests.put(bytes, ctx.req.headers['content-type'], reference, extraTags);
  const headers: Record<string, string> = {
    Location: Locations.manifest(ctx.name, result.digest),
    'Docker-Content-Digest': result.digest,
  };
  if (result.subject !== undefined) headers['OCI-Subject'] = result.subject;
  if (extraTags.length > 0) headers['OCI-Tag'] = result.tags.join(',');
  sendEmpty(ctx.res, 201, headers);
}

export async function deleteManifest(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'delete');
  if (!ctx.deps.deleteEnabled)
    throw new OciError('UNSUPPORTED', 'deletes are disabled on this registry');
  const reference = parseManifestReference(ctx.param);
  const manifests = ctx.deps.registry.repository(ctx.name).manifests;
  if (reference.tag !== undefined) await manifests.deleteTag(reference.tag);
  else await manifests.delete(parseDigest(reference.digest));
  sendEmpty(ctx.res, 202);
}

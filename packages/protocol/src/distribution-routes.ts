import { OciError } from './errors.js';

/**
 * The OCI Distribution `/v2/` path grammar, for every service that answers it:
 *
 *   /v2/                                   base
 *   /v2/_catalog                           catalog
 *   /v2/<name>/tags/list                   tags
 *   /v2/<name>/manifests/<reference>       manifest
 *   /v2/<name>/blobs/<digest>              blob
 *   /v2/<name>/blobs/uploads/              uploads (start a session; trailing `/` optional)
 *   /v2/<name>/blobs/uploads/<id>          upload
 *   /v2/<name>/referrers/<digest>          referrers
 *
 * A name may contain `/` and even the resource words; the last parameter never contains `/`,
 * so the marker nearest the end wins. The name is returned as written (the caller validates
 * it); the last parameter is percent-decoded, and a malformed `%` in it is `NAME_INVALID`
 * (400), the same in every service. Query strings are the caller's to strip.
 */
export type V2Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'manifest' | 'blob' | 'referrers'; name: string; reference: string }
  | { kind: 'upload'; name: string; reference: string }
  | { kind: 'unknown' };

export type V2RouteKind = V2Route['kind'];

// Longer markers first: `/blobs/uploads/` and `/blobs/` start at the same place.
const MARKERS = [
  ['/blobs/uploads/', 'upload'],
  ['/manifests/', 'manifest'],
  ['/blobs/', 'blob'],
  ['/referrers/', 'referrers'],
] as const;

const TAGS_SUFFIX = '/tags/list';
const UPLOADS_SUFFIX = '/blobs/uploads';

function decodeParameter(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new OciError('NAME_INVALID', 'malformed percent-encoding', { status: 400 });
  }
}

/** Parses a path that starts with `/v2` (no query string). Throws only for a malformed `%`. */
export function parseV2Path(path: string): V2Route {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return { kind: 'unknown' };
  const rest = path.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };
  if (rest.endsWith(TAGS_SUFFIX) && rest.length > TAGS_SUFFIX.length) {
    return { kind: 'tags', name: rest.slice(0, -TAGS_SUFFIX.length) };
  }
  for (const suffix of [UPLOADS_SUFFIX, `${UPLOADS_SUFFIX}/`]) {
    if (rest.endsWith(suffix) && rest.length > suffix.length)
      return { kind: 'uploads', name: rest.slice(0, -suffix.length) };
  }
  let best = -1;
  let kind: 'manifest' | 'blob' | 'upload' | 'referrers' = 'manifest';
  let markerLength = 0;
  for (const [marker, k] of MARKERS) {
    const at = rest.lastIndexOf(marker);
    if (at > best) {
      best = at;
      kind = k;
      markerLength = marker.length;
    }
  }
  if (best <= 0) return { kind: 'unknown' };
  const reference = rest.slice(best + markerLength);
  if (reference === '' || reference.includes('/')) return { kind: 'unknown' };
  return { kind, name: rest.slice(0, best), reference: decodeParameter(reference) };
}

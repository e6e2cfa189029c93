import { MediaType, OciError } from '@flotilla/protocol';
import type { ManifestEntry, RepositoryView } from '../catalog/repository.js';

/**
 * The media types a client accepts. `any` for `*\/*` or `application/*`: Distribution gives
 * wildcards no meaning, but a browser or curl sending `*\/*` plainly takes whatever we have.
 */
export interface Accepted {
  readonly any: boolean;
  readonly types: ReadonlySet<string>;
}

const NOTHING: Accepted = Object.freeze({ any: false, types: new Set<string>() });

/** Parses every `Accept` header: comma lists, parameters (`;q=`) ignored, case-folded. */
export function parseAccept(header: string | string[] | undefined): Accepted {
  if (header === undefined || header === '') return NOTHING;
  const types = new Set<string>();
  let any = false;
  for (const value of Array.isArray(header) ? header : [header]) {
    for (const part of value.split(',')) {
      const semi = part.indexOf(';');
      const type = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase();
      if (type === '') continue;
      if (type === '*/*' || type === 'application/*') any = true;
      types.add(type);
    }
  }
  return { any, types };
}

/**
 * Whether a client with `accepted` may receive a manifest of `mediaType`. As in Docker
 * Distribution (registry/handlers/manifests.go), a Docker schema2 image manifest is served
 * whatever the client sent (old clients send no Accept at all; Distribution 2.8 would rewrite
 * it to schema1, which nobody should pull any more); every other type must be accepted.
 */
export function accepts(accepted: Accepted, mediaType: string): boolean {
  return mediaType === MediaType.DOCKER_MANIFEST || accepted.any || accepted.types.has(mediaType);
}

/**
 * Picks what to send for `entry` (the manifest a tag or digest names):
 * - its own bytes when the client accepts its type;
 * - for an index the client does not accept, fetched by tag: the linux/amd64 child when the
 *   client accepts that (Crane's and Distribution's fallback for clients that predate
 *   indexes);
 * - for a Docker manifest list fetched by digest: the list itself (Distribution does the same:
 *   a digest names exact bytes, so sending a different manifest would fail verification);
 * - otherwise `MANIFEST_UNKNOWN`, with Distribution's messages.
 */
export function negotiateManifest(
  repo: RepositoryView,
  entry: ManifestEntry,
  byTag: boolean,
  accepted: Accepted,
): ManifestEntry {
  if (accepts(accepted, entry.mediaType)) return entry;
  if (entry.isIndex) {
    if (byTag && entry.amd64Child !== undefined) {
      const child = repo.manifests.get(entry.amd64Child);
      if (child && accepts(accepted, child.mediaType)) return child;
    }
    if (!byTag && entry.mediaType === MediaType.DOCKER_MANIFEST_LIST) return entry;
    throw new OciError(
      'MANIFEST_UNKNOWN',
      entry.mediaType === MediaType.OCI_INDEX
        ? 'OCI index found, but accept header does not support OCI indexes'
        : 'manifest list found, but accept header does not support manifest lists and there is no linux/amd64 image',
    );
  }
  throw new OciError(
    'MANIFEST_UNKNOWN',
    'OCI manifest found, but accept header does not support OCI manifests',
  );
}

import { OciError, parseManifestReferenceToRead } from '@flotilla/protocol';
import type { RepositoryView } from '../catalog/repository.js';
import { pulpManifestLocation, type PulpRepository } from '../catalog/pulp.js';
import type { V2Context } from './context.js';
import { negotiateManifest, parseAccept, type Accepted } from './negotiation.js';
import { API_VERSION, API_VERSION_HEADER, sendRedirect } from './respond.js';

// Clients send a handful of distinct Accept headers; parse each once.
const acceptCache = new Map<string, Accepted>();

function acceptedOf(header: string | undefined): Accepted {
  if (header === undefined) return parseAccept(undefined);
  let accepted = acceptCache.get(header);
  if (accepted === undefined) {
    accepted = parseAccept(header);
    if (acceptCache.size >= 256) acceptCache.clear();
    acceptCache.set(header, accepted);
  }
  return accepted;
}

/** `GET|HEAD /v2/<name>/manifests/<tag|digest>`: exact bytes and precomputed headers from memory. */
export function serveManifest(ctx: V2Context, repo: RepositoryView, reference: string): void {
  const ref = parseManifestReferenceToRead(reference);
  const byTag = ref.tag !== undefined;
  const digest = byTag ? repo.tags.get(ref.tag) : ref.digest;
  const entry = digest === undefined ? undefined : repo.manifests.get(digest);
  if (entry === undefined) {
    throw new OciError('MANIFEST_UNKNOWN', undefined, {
      detail: byTag ? { tag: ref.tag } : { digest: ref.digest },
    });
  }
  const chosen = negotiateManifest(repo, entry, byTag, acceptedOf(ctx.req.headers.accept));
  const headers = byTag ? chosen.headersByTag : chosen.headersByDigest;
  const ifNoneMatch = ctx.req.headers['if-none-match'];
  if (
    ifNoneMatch !== undefined &&
    (ifNoneMatch.includes(chosen.digest) || ifNoneMatch.trim() === '*')
  ) {
    ctx.res.writeHead(304, {
      ETag: headers.ETag!,
      'Docker-Content-Digest': chosen.digest,
      'Cache-Control': headers['Cache-Control']!,
      [API_VERSION_HEADER]: API_VERSION,
      ...(byTag ? { Vary: 'Accept' } : {}),
    });
    ctx.res.end();
    return;
  }
  ctx.res.writeHead(200, headers);
  ctx.res.end(ctx.head ? undefined : chosen.body);
}

/** A Pulp 2 repository: redirect where Crane would have. */
export function servePulpManifest(ctx: V2Context, repo: PulpRepository, reference: string): void {
  parseManifestReferenceToRead(reference);
  sendRedirect(
    ctx.res,
    302,
    pulpManifestLocation(repo, reference, acceptedOf(ctx.req.headers.accept).types),
  );
}

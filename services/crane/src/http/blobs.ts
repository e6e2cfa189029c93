import { OciError, parseDigest, PublishedPaths } from '@flotilla/protocol';
import { pulpBlobLocation, type PulpRepository } from '../catalog/pulp.js';
import type { RepositoryView } from '../catalog/repository.js';
import type { V2Context } from './context.js';
import { API_VERSION, API_VERSION_HEADER, sendRedirect } from './respond.js';

/**
 * `HEAD /v2/<name>/blobs/<digest>` answers from metadata (size, digest), no redirect;
 * `GET` redirects (307) to the mirror redirector. Only digests in this repository's published
 * content are known: anything else is `BLOB_UNKNOWN`, whatever exists elsewhere in the tree.
 */
export function serveBlob(
  ctx: V2Context,
  repo: RepositoryView,
  reference: string,
  options: { blobBaseUrl: string; cacheControl: string },
): void {
  const { digest } = parseDigest(reference);
  const size = repo.blobs.get(digest) ?? repo.manifests.get(digest)?.size;
  if (size === undefined) throw new OciError('BLOB_UNKNOWN', undefined, { detail: { digest } });
  if (ctx.head) {
    ctx.res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(size),
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Cache-Control': options.cacheControl,
      [API_VERSION_HEADER]: API_VERSION,
    });
    ctx.res.end();
    return;
  }
  sendRedirect(ctx.res, 307, `${options.blobBaseUrl}/${PublishedPaths.blob(digest)}`, {
    'Docker-Content-Digest': digest,
    'Cache-Control': options.cacheControl,
  });
}

export function servePulpBlob(ctx: V2Context, repo: PulpRepository, reference: string): void {
  const { digest } = parseDigest(reference);
  sendRedirect(ctx.res, 302, pulpBlobLocation(repo, digest));
}

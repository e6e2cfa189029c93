import { MediaType, parseDigest } from '@flotilla/protocol';
import type { RepositoryView } from '../catalog/repository.js';
import type { V2Context } from './context.js';
import { sendJson } from './respond.js';

/**
 * `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an OCI index of the published manifests
 * whose `subject` is `digest` (an empty index when there are none, as the spec asks).
 */
export function serveReferrers(
  ctx: V2Context,
  repo: RepositoryView | null,
  reference: string,
  cacheControl: string,
): void {
  const { digest } = parseDigest(reference);
  let manifests = repo?.referrers.get(digest) ?? [];
  const headers: Record<string, string> = { 'Cache-Control': cacheControl };
  const artifactType = ctx.query === '' ? null : new URLSearchParams(ctx.query).get('artifactType');
  if (artifactType !== null) {
    manifests = manifests.filter((m) => m.artifactType === artifactType);
    headers['OCI-Filters-Applied'] = 'artifactType';
  }
  sendJson(
    ctx.res,
    ctx.head,
    { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests },
    headers,
    MediaType.OCI_INDEX,
  );
}

import { MediaType } from '@flotilla/protocol';
import { requireDigest } from '../domain/blobs.js';
import { authorize, sendJson, type V2Context } from './context.js';

/**
 * `/v2/<name>/referrers/<digest>[?artifactType=]`: an OCI index of the manifests whose
 * `subject` is the digest; an empty index (never 404) for an unknown subject.
 */
export async function listReferrers(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'pull');
  const subject = requireDigest(ctx.param);
  const artifactType = ctx.search === '' ? null : ctx.query().get('artifactType');
  const manifests = await ctx.deps.registry
    .repository(ctx.name)
    .manifests.referrers(
      subject,
      artifactType === null || artifactType === '' ? undefined : artifactType,
    );
  const headers: Record<string, string> = { 'Content-Type': MediaType.OCI_INDEX };
  if (artifactType !== null && artifactType !== '') headers['OCI-Filters-Applied'] = 'artifactType';
  sendJson(
    ctx.res,
    200,
    { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests },
    headers,
    ctx.method === 'HEAD',
  );
}

import { isValidRepositoryName, OciError } from '@flotilla/protocol';
import { requireDigest } from '../domain/blobs.js';
import { rangeNotSatisfiable, type AppendOptions } from '../domain/uploads.js';
import { authorize, Locations, sendEmpty, uploadRange, type V2Context } from './context.js';

/**
 * `/v2/<name>/blobs/uploads/[<uuid>]`: POST (session, monolithic, mount), PATCH (chunked or
 * streamed), PUT (finish), GET (status), DELETE (cancel).
 */

function contentLength(ctx: V2Context): number | undefined {
  const raw = ctx.req.headers['content-length'];
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new OciError('SIZE_INVALID', 'invalid Content-Length');
  return Number(raw);
}

function hasBody(ctx: V2Context): boolean {
  const length = contentLength(ctx);
  return (
    (length !== undefined && length > 0) ||
    (length === undefined && ctx.req.headers['transfer-encoding'] !== undefined)
  );
}

/** `Content-Range: <start>-<end>` (also `bytes <start>-<end>[/<total>]`), checked against Content-Length. */
function chunkOptions(
  ctx: V2Context,
  offsetForErrors: () => Promise<number>,
): Promise<AppendOptions> | AppendOptions {
  const length = contentLength(ctx);
  const header = ctx.req.headers['content-range'];
  if (header === undefined) return length === undefined ? {} : { length };
  const m = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  const start = Number(m?.[1]);
  const end = Number(m?.[2]);
  if (!m || end < start) {
    // the spec answers an invalid Content-Range like an out-of-order chunk: 416 with the Range
    // the client can resume from
    return offsetForErrors().then((offset) => {
      throw rangeNotSatisfiable(
        offset,
        m ? 'Content-Range end before start' : 'malformed Content-Range',
      );
    });
  }
  if (length === undefined) {
    throw new OciError('SIZE_INVALID', 'Content-Length is required with Content-Range');
  }
  if (length !== end - start + 1) {
    throw new OciError('SIZE_INVALID', 'Content-Length does not match Content-Range', {
      detail: { start, end, length },
    });
  }
  return { start, length };
}

function sessionHeaders(name: string, uuid: string, offset: number): Record<string, string> {
  return {
    Location: Locations.upload(name, uuid),
    Range: uploadRange(offset),
    'Docker-Upload-UUID': uuid,
  };
}

async function tryMount(ctx: V2Context, mountValue: string, from: string | null): Promise<boolean> {
  const digest = requireDigest(mountValue);
  const target = ctx.deps.registry.repository(ctx.name);
  const user = await ctx.deps.authenticator.authenticate(ctx.req.headers.authorization);
  let candidates: string[];
  if (from !== null) {
    if (!isValidRepositoryName(from)) return false;
    candidates = [from];
  } else {
    // automatic content discovery: any repository holding the blob that the caller may read
    candidates = await ctx.deps.registry.repositoriesWithBlob(digest);
  }
  for (const source of candidates) {
    if (!ctx.deps.policy.allows(user, source, 'pull')) continue;
    if (source !== ctx.name && !(await ctx.deps.registry.repository(source).blobs.hasLink(digest)))
      continue;
    if (source === ctx.name && !(await target.blobs.hasLink(digest))) continue;
    if (await target.blobs.link(digest)) {
      sendEmpty(ctx.res, 201, {
        Location: Locations.blob(ctx.name, digest.digest),
        'Docker-Content-Digest': digest.digest,
      });
      return true;
    }
  }
  return false;
}

export async function startUpload(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  const query = ctx.search === '' ? undefined : ctx.query();
  const mount = query?.get('mount');
  if (mount) {
    ctx.req.resume();
    if (await tryMount(ctx, mount, query?.get('from') ?? null)) return;
  }
  const digestValue = mount ? null : (query?.get('digest') ?? null);
  const uploads = ctx.deps.registry.uploads;
  if (digestValue !== null) {
    const digest = requireDigest(digestValue);
    const length = contentLength(ctx);
    if (length === undefined && ctx.req.headers['transfer-encoding'] === undefined) {
      throw new OciError('SIZE_INVALID', 'Content-Length is required for a monolithic upload');
    }
    const session = await uploads.create(ctx.name);
    try {
      const info = await uploads.complete(
        ctx.name,
        session.uuid,
        digest,
        ctx.deps.registry.repository(ctx.name).blobs,
        ctx.req,
        length === undefined ? {} : { length },
      );
      sendEmpty(ctx.res, 201, {
        Location: Locations.blob(ctx.name, info.digest),
        'Docker-Content-Digest': info.digest,
      });
    } catch (err) {
      await uploads.cancel(ctx.name, session.uuid).catch(() => undefined);
      throw err;
    }
    return;
  }
  ctx.req.resume();
  const session = await uploads.create(ctx.name);
  sendEmpty(ctx.res, 202, sessionHeaders(ctx.name, session.uuid, 0));
}

export async function uploadStatus(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  const state = await ctx.deps.registry.uploads.status(ctx.name, ctx.param);
  sendEmpty(ctx.res, 204, sessionHeaders(ctx.name, state.uuid, state.offset));
}

export async function patchUpload(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  const uploads = ctx.deps.registry.uploads;
  const options = await chunkOptions(
    ctx,
    async () => (await uploads.status(ctx.name, ctx.param)).offset,
  );
  const state = await uploads.append(ctx.name, ctx.param, ctx.req, options);
  sendEmpty(ctx.res, 202, sessionHeaders(ctx.name, state.uuid, state.offset));
}

export async function finishUpload(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  const digestValue = ctx.search === '' ? null : ctx.query().get('digest');
  if (digestValue === null || digestValue === '') {
    ctx.req.resume();
    throw new OciError('DIGEST_INVALID', 'digest query parameter is required to finish an upload');
  }
  const digest = requireDigest(digestValue);
  const uploads = ctx.deps.registry.uploads;
  const withBody = hasBody(ctx);
  const options = withBody
    ? await chunkOptions(ctx, async () => (await uploads.status(ctx.name, ctx.param)).offset)
    : {};
  if (!withBody) ctx.req.resume();
  const info = await uploads.complete(
    ctx.name,
    ctx.param,
    digest,
    ctx.deps.registry.repository(ctx.name).blobs,
    withBody ? ctx.req : undefined,
    options,
  );
  sendEmpty(ctx.res, 201, {
    Location: Locations.blob(ctx.name, info.digest),
    'Docker-Content-Digest': info.digest,
  });
}

export async function cancelUpload(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'push');
  await ctx.deps.registry.uploads.cancel(ctx.name, ctx.param);
  sendEmpty(ctx.res, 204);
}

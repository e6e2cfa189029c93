import { OciError } from '@flotilla/protocol';
import { requireDigest } from '../domain/blobs.js';
import { authorize, sendEmpty, type V2Context } from './context.js';

/** `/v2/<name>/blobs/<digest>`: GET and HEAD (with Range), DELETE. */

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** One `bytes=` range against `size`: inclusive bounds, 'unsatisfiable', or undefined to ignore. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // malformed or multiple ranges: RFC 9110 lets us send it all
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

export async function getBlob(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'pull');
  const digest = requireDigest(ctx.param);
  const repository = ctx.deps.registry.repository(ctx.name);
  const info = await repository.blobs.stat(digest);
  if (!info) throw new OciError('BLOB_UNKNOWN', undefined, { detail: { digest: digest.digest } });
  const etag = `"${digest.digest}"`;
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest.digest,
    ETag: etag,
    'Cache-Control': IMMUTABLE,
    'Accept-Ranges': 'bytes',
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
  const range = ctx.method === 'GET' ? parseRange(ctx.req.headers.range, info.size) : undefined;
  if (range === 'unsatisfiable') {
    throw new OciError('SIZE_INVALID', 'requested range not satisfiable', {
      status: 416,
      headers: { 'Content-Range': `bytes */${info.size}` },
      detail: { size: info.size },
    });
  }
  if (ctx.method === 'HEAD') {
    ctx.res.writeHead(200, { ...headers, 'Content-Length': info.size });
    ctx.res.end();
    return;
  }
  if (info.size === 0) {
    ctx.res.writeHead(200, { ...headers, 'Content-Length': 0 });
    ctx.res.end();
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? info.size - 1;
  if (range) {
    ctx.res.writeHead(206, {
      ...headers,
      'Content-Length': end - start + 1,
      'Content-Range': `bytes ${start}-${end}/${info.size}`,
    });
  } else {
    ctx.res.writeHead(200, { ...headers, 'Content-Length': info.size });
  }
  try {
    // awaits every write (back-pressure) and stops as soon as the client goes away
    if (await ctx.deps.registry.blobs.send(digest, ctx.res, start, end)) ctx.res.end();
  } catch (err) {
    ctx.deps.logger.debug({ err, digest: digest.digest }, 'blob download interrupted');
    ctx.res.destroy();
  }
}

export async function deleteBlob(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'delete');
  if (!ctx.deps.deleteEnabled)
    throw new OciError('UNSUPPORTED', 'deletes are disabled on this registry');
  const digest = requireDigest(ctx.param);
  if (!(await ctx.deps.registry.repository(ctx.name).blobs.unlink(digest))) {
    throw new OciError('BLOB_UNKNOWN', undefined, { detail: { digest: digest.digest } });
  }
  sendEmpty(ctx.res, 202, { 'Docker-Content-Digest': digest.digest });
}

import path from 'node:path';
import { problems } from '@flotilla/kit';
import { Router } from 'express';

/**
 * `GET|HEAD /master/<path>`: the published tree itself, the mirror of last resort (all-in-one).
 * Only regular files under the publish directory; `..`, dot files and anything outside are
 * 404. `send` (under `res.sendFile`) handles `Range`, `HEAD`, `Content-Length`, `ETag` and
 * `Last-Modified`. Blobs and metadata are served as bytes: nothing here is interpreted.
 */
export function masterRouter(publishDir: string): Router {
  const router = Router();
  const root = path.resolve(publishDir);
  router.get('/master/*tail', (req, res, next) => {
    const tail = (req.params as { tail?: string[] }).tail ?? [];
    if (
      tail.length === 0 ||
      tail.some(
        (segment) =>
          segment === '' || segment === '.' || segment === '..' || segment.includes('\0'),
      )
    ) {
      next(problems.notFound('no such file in the published tree'));
      return;
    }
    res.sendFile(
      tail.join('/'),
      {
        root,
        dotfiles: 'deny',
        acceptRanges: true,
        cacheControl: false,
        headers: { 'Cache-Control': 'public, max-age=60' },
      },
      (error?: Error & { status?: number; statusCode?: number }) => {
        if (!error) return;
        if (res.headersSent) {
          res.destroy();
          return;
        }
        const status = error.status ?? error.statusCode ?? 500;
        next(status === 416 ? error : problems.notFound('no such file in the published tree'));
      },
    );
  });
  return router;
}

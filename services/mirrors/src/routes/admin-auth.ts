import { createHash, timingSafeEqual } from 'node:crypto';
import { problems } from '@flotilla/kit';
import type { RequestHandler } from 'express';

/**
 * Bearer-token check for the admin API (`FLOTILLA_API_TOKEN`). Compared as SHA-256 hashes in
 * constant time so neither content nor length leaks; without a configured token every admin
 * request is refused.
 */
export function requireApiToken(token: string | undefined): RequestHandler {
  const expected = token === undefined ? undefined : createHash('sha256').update(token).digest();
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!expected || !match) {
      next(problems.unauthorized('a bearer token is required'));
      return;
    }
    const presented = createHash('sha256').update(match[1]!).digest();
    if (!timingSafeEqual(presented, expected)) {
      next(problems.unauthorized('invalid token'));
      return;
    }
    next();
  };
}

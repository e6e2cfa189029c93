import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { problems } from '@flotilla/kit';

export type Role = 'admin' | 'read';

export interface Principal {
  role: Role;
  /** Recorded as the actor of promotions: `admin`, or `reader:<token fingerprint>`. */
  actor: string;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function fingerprint(token: string): string {
  return digest(token).toString('hex').slice(0, 8);
}

/**
 * Bearer tokens: `FLOTILLA_API_TOKEN` is admin (reads and writes); each of
 * `FLOTILLA_CONTENT_READ_TOKENS` may only read. No or unknown token → 401; a read token on a
 * write → 403. Tokens are compared as SHA-256 digests in constant time.
 */
export class TokenAuth {
  private readonly admin?: Buffer;
  private readonly readers: { hash: Buffer; actor: string }[];

  constructor(adminToken: string | undefined, readTokens: readonly string[]) {
    this.admin = adminToken ? digest(adminToken) : undefined;
    this.readers = readTokens.map((t) => ({ hash: digest(t), actor: `reader:${fingerprint(t)}` }));
  }

  identify(header: string | undefined): Principal | undefined {
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) return undefined;
    const hash = digest(m[1] as string);
    if (this.admin && timingSafeEqual(hash, this.admin)) return { role: 'admin', actor: 'admin' };
    const reader = this.readers.find((r) => timingSafeEqual(hash, r.hash));
    return reader ? { role: 'read', actor: reader.actor } : undefined;
  }

  require(role: Role): RequestHandler {
    return (req, res, next) => {
      const header = req.headers.authorization;
      const principal = this.identify(header);
      if (!principal) {
        next(problems.unauthorized(header ? 'unknown token' : 'a bearer token is required'));
        return;
      }
      if (role === 'admin' && principal.role !== 'admin') {
        next(problems.forbidden('this token may only read'));
        return;
      }
      res.locals.principal = principal;
      next();
    };
  }
}

export function principalOf(locals: Record<string, unknown>): Principal {
  return (locals.principal as Principal | undefined) ?? { role: 'read', actor: 'anonymous' };
}

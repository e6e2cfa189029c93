import { OciError } from '@flotilla/protocol';
import type { UserDirectory } from './htpasswd.js';

/**
 * Turns an `Authorization` header into a user. bcrypt costs milliseconds, so each distinct
 * header value is verified once and remembered (bounded LRU, short TTL; failures for a
 * shorter time so a fixed password is noticed quickly). `Basic` with an empty user name (what
 * containers/image sends when it has no credentials) means anonymous.
 */
export interface Authenticator {
  /** undefined = anonymous; throws UNAUTHORIZED for wrong credentials. */
  authenticate(header: string | undefined): Promise<string | undefined>;
  /** The cached answer, if any, without doing work (the hot path's synchronous check). */
  cached(header: string): { user: string | undefined } | 'invalid' | undefined;
  /** Forgets every verified header (the users changed); checks in flight are not remembered. */
  forget(): void;
}

export const REALM = 'flotilla';
export const CHALLENGE = `Basic realm="${REALM}"`;

export function unauthorized(message?: string): OciError {
  return new OciError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': CHALLENGE } });
}

interface CacheEntry {
  user: string | undefined;
  valid: boolean;
  expiresAt: number;
}

export function createAuthenticator(options: {
  users: UserDirectory;
  maxEntries?: number;
  ttlMs?: number;
  failureTtlMs?: number;
  now?: () => number;
}): Authenticator {
  const maxEntries = options.maxEntries ?? 1024;
  const ttlMs = options.ttlMs ?? 60_000;
  const failureTtlMs = options.failureTtlMs ?? 5_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<CacheEntry>>();
  // Bumped by forget(): a check that started against the old users is not remembered.
  let generation = 0;

  function remember(header: string, entry: CacheEntry): void {
    cache.delete(header);
    cache.set(header, entry);
    if (cache.size > maxEntries) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
  }

  function lookup(header: string): CacheEntry | undefined {
    const entry = cache.get(header);
    if (entry === undefined) return undefined;
    cache.delete(header);
    if (entry.expiresAt <= now()) return undefined;
    cache.set(header, entry); // most recently used goes last; eviction takes the first
    return entry;
  }

  async function verify(header: string): Promise<CacheEntry> {
    const space = header.indexOf(' ');
    const scheme = space > 0 ? header.slice(0, space).toLowerCase() : header.toLowerCase();
    if (scheme !== 'basic' || space < 0)
      return { user: undefined, valid: false, expiresAt: now() + failureTtlMs };
    const decoded = Buffer.from(header.slice(space + 1).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { user: undefined, valid: false, expiresAt: now() + failureTtlMs };
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    if (user === '') return { user: undefined, valid: true, expiresAt: now() + ttlMs };
    const ok = await options.users.verify(user, password);
    return ok
      ? { user, valid: true, expiresAt: now() + ttlMs }
      : { user: undefined, valid: false, expiresAt: now() + failureTtlMs };
  }

  return {
    cached(header) {
      const entry = lookup(header);
      if (entry === undefined) return undefined;
      return entry.valid ? { user: entry.user } : 'invalid';
    },
    async authenticate(header) {
      if (header === undefined || header === '') return undefined;
      let entry = lookup(header);
      if (entry === undefined) {
        let pending = inFlight.get(header);
        if (pending === undefined) {
          const started = generation;
          const check: Promise<CacheEntry> = verify(header)
            .then((result) => {
              if (started === generation) remember(header, result);
              return result;
            })
            .finally(() => {
              if (inFlight.get(header) === check) inFlight.delete(header);
            });
          inFlight.set(header, check);
          pending = check;
        }
        entry = await pending;
      }
      if (!entry.valid) throw unauthorized('invalid credentials');
      return entry.user;
    },
    forget() {
      generation += 1;
      cache.clear();
      inFlight.clear();
    },
  };
}

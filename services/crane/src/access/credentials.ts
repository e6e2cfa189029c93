import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import pLimit from 'p-limit';

/**
 * Who may read protected repositories: users of an htpasswd file (bcrypt entries, as
 * `htpasswd -B` writes them and Docker Distribution reads them) over Basic auth, or clients
 * whose certificate the TLS terminator verified and said so in a header. The header is only
 * believed from a trusted proxy, otherwise any client could send it.
 */
export interface CredentialCheck {
  /** Whether `/v2/` should challenge anonymous clients (an htpasswd file is configured). */
  readonly challengesBasic: boolean;
  /** true when the request carries valid credentials. Resolves quickly for cached headers. */
  verify(
    headers: { authorization?: string; certificate?: string },
    fromTrustedProxy: boolean,
  ): boolean | Promise<boolean>;
}

/** Parses htpasswd text: `user:$2y$…` lines; other hash schemes are rejected at load. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[abxy]\$\d\d\$/.test(hash)) {
      throw new Error(`htpasswd line ${i + 1}: expected user:bcrypt-hash`);
    }
    users.set(user, hash.replace(/^\$2y\$/, '$2b$'));
  }
  return users;
}

export async function loadHtpasswd(file: string): Promise<Map<string, string>> {
  return parseHtpasswd(await readFile(file, 'utf8'));
}

const CACHE_TTL_MS = 5 * 60_000;
const NEGATIVE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;
/** bcrypt compares at once, and waiting: a flood of fresh passwords cannot take every core. */
const BCRYPT_CONCURRENCY = 2;
const BCRYPT_QUEUE_MAX = 200;

export function createCredentialCheck(options: {
  users?: ReadonlyMap<string, string>;
  certificateValue?: string;
  now?: () => number;
}): CredentialCheck {
  const users = options.users ?? new Map<string, string>();
  const now = options.now ?? Date.now;
  // sha256(header) → verdict and expiry: bcrypt costs tens of ms, a pull makes dozens of requests
  const cache = new Map<string, { ok: boolean; expires: number }>();
  const expected =
    options.certificateValue === undefined ? undefined : Buffer.from(options.certificateValue);
  const bcryptSlots = pLimit(BCRYPT_CONCURRENCY);

  function verifyBasic(header: string): boolean | Promise<boolean> {
    const key = createHash('sha256').update(header).digest('base64');
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return hit.ok;
    return checkBasic(key, header);
  }

  async function checkBasic(key: string, header: string): Promise<boolean> {
    let ok = false;
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (match) {
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const hash = colon > 0 ? users.get(decoded.slice(0, colon)) : undefined;
      if (hash !== undefined) {
        // over the queue bound the request is simply unauthenticated (and not cached)
        if (bcryptSlots.pendingCount >= BCRYPT_QUEUE_MAX) return false;
        ok = await bcryptSlots(() => bcrypt.compare(decoded.slice(colon + 1), hash));
      }
    }
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, { ok, expires: now() + (ok ? CACHE_TTL_MS : NEGATIVE_TTL_MS) });
    return ok;
  }

  return {
    challengesBasic: users.size > 0,
    verify(headers, fromTrustedProxy) {
      if (expected !== undefined && fromTrustedProxy && headers.certificate !== undefined) {
        const got = Buffer.from(headers.certificate);
        if (got.length === expected.length && timingSafeEqual(got, expected)) return true;
      }
      if (users.size === 0 || headers.authorization === undefined) return false;
      return verifyBasic(headers.authorization);
    },
  };
}

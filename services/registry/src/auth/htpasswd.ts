import bcrypt from 'bcryptjs';
import { timingSafeEqual } from 'node:crypto';

/**
 * Users and how to check their passwords: Distribution's htpasswd format (`user:$2y$…`,
 * bcrypt only; other hash schemes are refused when the file is parsed) plus the built-in
 * `admin` user whose plain password comes from `FLOTILLA_ADMIN_PASSWORD`.
 */
export interface UserDirectory {
  /** True when the user exists and the password matches. Expensive (bcrypt): cache above. */
  verify(user: string, password: string): Promise<boolean>;
}

export const ADMIN_USER = 'admin';

export class HtpasswdError extends Error {
  override readonly name = 'HtpasswdError';
}

export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(`htpasswd line ${index + 1}: expected user:hash`);
    const hash = line.slice(colon + 1);
    if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new HtpasswdError(
        `htpasswd line ${index + 1}: only bcrypt hashes ($2y$) are supported`,
      );
    }
    users.set(line.slice(0, colon), hash);
  });
  return users;
}

function equalStrings(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createUserDirectory(options: {
  htpasswd?: Map<string, string>;
  adminPassword?: string;
}): UserDirectory {
  const users = options.htpasswd ?? new Map<string, string>();
  return {
    async verify(user, password) {
      if (
        user === ADMIN_USER &&
        options.adminPassword !== undefined &&
        options.adminPassword !== ''
      ) {
        if (equalStrings(password, options.adminPassword)) return true;
      }
      const hash = users.get(user);
      if (hash === undefined) return false;
      return bcrypt.compare(password, hash);
    },
  };
}

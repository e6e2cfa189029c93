import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { accessFileSchema, createAccessPolicy, type AccessPolicy } from './access.js';
import { createUserDirectory, parseHtpasswd, type UserDirectory } from './htpasswd.js';

/**
 * The htpasswd and access files, re-read when they change, so an admin adds a user or a
 * rule without restarting the registry. Each poll reads the files and compares their text
 * (modification times are too coarse to tell two quick edits of one size apart; the files are
 * small), which also follows editors that replace the file and Kubernetes' ConfigMap symlink
 * swaps. A file that no longer reads or parses is logged and the version in force stays in
 * force: a typo must not lock everyone out. At start a bad file is an error, as before.
 */
export interface AuthFiles {
  /** Stable objects that always answer with the files in force. */
  readonly users: UserDirectory;
  readonly policy: AccessPolicy;
  /** Re-reads whichever file changed; true when the rules in force changed. */
  reload(): Promise<boolean>;
  /** Stops polling. */
  stop(): void;
}

export interface AuthFilesOptions {
  htpasswdFile?: string | undefined;
  accessFile?: string | undefined;
  adminPassword?: string | undefined;
  anonymousPull: boolean;
  logger: Logger;
  /** Poll interval; 0 = never reload. */
  reloadIntervalMs: number;
  /** Called after a successful reload (the authenticator forgets what it verified). */
  onChange?: () => void;
}

/** Stands for a file that cannot be read (a NUL never appears in either format). */
const MISSING = '\u0000missing';

export async function loadAuthFiles(options: AuthFilesOptions): Promise<AuthFiles> {
  const { htpasswdFile, accessFile, logger } = options;
  const parseUsers = (text: string | undefined): UserDirectory =>
    createUserDirectory({
      ...(text !== undefined ? { htpasswd: parseHtpasswd(text) } : {}),
      ...(options.adminPassword ? { adminPassword: options.adminPassword } : {}),
    });
  const parsePolicy = (text: string | undefined): AccessPolicy =>
    createAccessPolicy({
      anonymousPull: options.anonymousPull,
      ...(text !== undefined ? { accessFile: accessFileSchema.parse(JSON.parse(text)) } : {}),
    });

  let usersText = htpasswdFile ? await readFile(htpasswdFile, 'utf8') : undefined;
  let users = parseUsers(usersText);
  let policyText = accessFile ? await readFile(accessFile, 'utf8') : undefined;
  let policy = parsePolicy(policyText);

  /**
   * Reads `path` and parses it if its text changed. A bad version is remembered without a
   * value, so it is logged once, not at every poll.
   */
  async function refresh<T>(
    path: string,
    current: string | undefined,
    parse: (text: string) => T,
    what: string,
  ): Promise<{ text: string; value?: T } | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      text = MISSING;
    }
    if (text === current) return undefined;
    if (text === MISSING) {
      logger.error({ path }, `${what} is gone; the previous version stays in force`);
      return { text };
    }
    try {
      return { text, value: parse(text) };
    } catch (error) {
      logger.error({ path, err: error }, `${what} is invalid; the previous version stays in force`);
      return { text };
    }
  }

  let running: Promise<boolean> | undefined;
  async function reloadOnce(): Promise<boolean> {
    let changed = false;
    if (htpasswdFile) {
      const next = await refresh(htpasswdFile, usersText, parseUsers, 'htpasswd file');
      if (next) {
        usersText = next.text;
        if (next.value !== undefined) {
          users = next.value;
          changed = true;
          logger.info({ path: htpasswdFile }, 'htpasswd file reloaded');
        }
      }
    }
    if (accessFile) {
      const next = await refresh(accessFile, policyText, parsePolicy, 'access file');
      if (next) {
        policyText = next.text;
        if (next.value !== undefined) {
          policy = next.value;
          changed = true;
          logger.info({ path: accessFile }, 'access file reloaded');
        }
      }
    }
    if (changed) options.onChange?.();
    return changed;
  }
  const reload = (): Promise<boolean> =>
    (running ??= reloadOnce().finally(() => (running = undefined)));

  const timer =
    options.reloadIntervalMs > 0 && (htpasswdFile || accessFile)
      ? setInterval(() => void reload(), options.reloadIntervalMs)
      : undefined;
  timer?.unref();

  return {
    users: { verify: (user, password) => users.verify(user, password) },
    policy: {
      get anonymousPull() {
        return policy.anonymousPull;
      },
      allows: (user, repository, action) => policy.allows(user, repository, action),
    },
    reload,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

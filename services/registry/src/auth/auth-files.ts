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

/** One configured file (or none) and the value parsed from its text in force. */
interface WatchedFile<T> {
  readonly value: T;
  /** Re-reads the file; true when a new version was parsed and is now in force. */
  refresh(): Promise<boolean>;
}

async function watchFile<T>(
  path: string | undefined,
  parse: (text: string | undefined) => T,
  what: string,
  logger: Logger,
): Promise<WatchedFile<T>> {
  // The text last seen, good or bad: a bad version is logged once, not at every poll.
  let seen = path === undefined ? undefined : await readFile(path, 'utf8');
  let value = parse(seen);
  return {
    get value() {
      return value;
    },
    async refresh() {
      if (path === undefined) return false;
      const text = await readFile(path, 'utf8').catch(() => MISSING);
      if (text === seen) return false;
      seen = text;
      if (text === MISSING) {
        logger.error({ path }, `${what} is gone; the previous version stays in force`);
        return false;
      }
      try {
        value = parse(text);
      } catch (error) {
        logger.error(
          { path, err: error },
          `${what} is invalid; the previous version stays in force`,
        );
        return false;
      }
      logger.info({ path }, `${what} reloaded`);
      return true;
    },
  };
}

export async function loadAuthFiles(options: AuthFilesOptions): Promise<AuthFiles> {
  const { htpasswdFile, accessFile, logger } = options;
  const users = await watchFile(
    htpasswdFile,
    (text) =>
      createUserDirectory({
        ...(text !== undefined ? { htpasswd: parseHtpasswd(text) } : {}),
        ...(options.adminPassword ? { adminPassword: options.adminPassword } : {}),
      }),
    'htpasswd file',
    logger,
  );
  const policy = await watchFile(
    accessFile,
    (text) =>
      createAccessPolicy({
        anonymousPull: options.anonymousPull,
        ...(text !== undefined ? { accessFile: accessFileSchema.parse(JSON.parse(text)) } : {}),
      }),
    'access file',
    logger,
  );

  let running: Promise<boolean> | undefined;
  async function reloadOnce(): Promise<boolean> {
    const changed = [await users.refresh(), await policy.refresh()].includes(true);
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
    users: { verify: (user, password) => users.value.verify(user, password) },
    policy: {
      get anonymousPull() {
        return policy.value.anonymousPull;
      },
      allows: (user, repository, action) => policy.value.allows(user, repository, action),
    },
    reload,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

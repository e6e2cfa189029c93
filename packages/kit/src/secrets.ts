/**
 * Generated secrets for all-in-one mode: `<dataDir>/secrets/<fileName>`, one secret per
 * file, mode 0600 in a 0700 directory. An environment value always wins; an existing file
 * is never overwritten (the file appears atomically by hard link, so two processes
 * starting at once agree on one value).
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Where a secret came from. `created: true` narrows `path` to a string. */
export type LoadedSecret =
  | { value: string; path: undefined; created: false; source: 'env' }
  | {
      value: string;
      /** The file it was read from or written to. */
      path: string;
      /** True when this call generated the secret. */
      created: boolean;
      source: 'file';
    };

const SECRET_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The secrets directory under a data dir. */
export function secretsDir(dataDir: string): string {
  return join(dataDir, 'secrets');
}

export async function loadOrCreateSecret(
  dataDir: string,
  fileName: string,
  options: { env?: string | undefined } = {},
): Promise<LoadedSecret> {
  const fromEnv = options.env?.trim();
  if (fromEnv) return { value: fromEnv, path: undefined, created: false, source: 'env' };
  if (!SECRET_FILE_NAME.test(fileName))
    throw new Error(`invalid secret file name ${JSON.stringify(fileName)}`);

  const dir = secretsDir(dataDir);
  const path = join(dir, fileName);
  const existing = await readSecret(path);
  if (existing !== undefined) return { value: existing, path, created: false, source: 'file' };

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const value = randomBytes(32).toString('base64url');
  const temp = join(dir, `.${fileName}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(value);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temp, 0o600);
    await link(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Someone else created it between our read and our link: theirs wins.
    const winner = await readSecret(path);
    if (winner === undefined) throw err;
    return { value: winner, path, created: false, source: 'file' };
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  return { value, path, created: true, source: 'file' };
}

async function readSecret(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const value = text.trim();
  if (value === '')
    throw new Error(`secret file ${path} is empty; delete it to generate a new secret`);
  return value;
}

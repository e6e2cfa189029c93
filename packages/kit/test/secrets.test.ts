import { mkdtemp, readFile, rm, stat, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSecret } from '../src/index.js';

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'flotilla-kit-secrets-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('loadOrCreateSecret', () => {
  it('creates a 0600 file in a 0700 directory with 32 random bytes base64url', async () => {
    const s = await loadOrCreateSecret(dataDir, 'api-token');
    expect(s.created).toBe(true);
    expect(s.source).toBe('file');
    expect(s.path).toBe(join(dataDir, 'secrets', 'api-token'));
    expect(s.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await readFile(join(dataDir, 'secrets', 'api-token'), 'utf8')).toBe(s.value);
    expect((await stat(join(dataDir, 'secrets', 'api-token'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dataDir, 'secrets'))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dataDir, 'secrets'))).toEqual(['api-token']);
  });

  it('returns the same value on later calls and never overwrites', async () => {
    const first = await loadOrCreateSecret(dataDir, 'admin-password');
    const second = await loadOrCreateSecret(dataDir, 'admin-password');
    expect(second).toEqual({ ...first, created: false });
    const other = await loadOrCreateSecret(dataDir, 'webhook-secret');
    expect(other.value).not.toBe(first.value);
  });

  it('agrees on one value when called concurrently', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateSecret(dataDir, 'webhook-secret')),
    );
    expect(new Set(results.map((r) => r.value)).size).toBe(1);
    expect(results.filter((r) => r.created).length).toBeLessThanOrEqual(1);
    expect(await readdir(join(dataDir, 'secrets'))).toEqual(['webhook-secret']);
  });

  it('lets the environment win without touching the disk', async () => {
    const s = await loadOrCreateSecret(dataDir, 'api-token', { env: 'from-env' });
    expect(s).toEqual({ value: 'from-env', path: undefined, created: false, source: 'env' });
    await expect(stat(join(dataDir, 'secrets'))).rejects.toMatchObject({ code: 'ENOENT' });
    const blank = await loadOrCreateSecret(dataDir, 'api-token', { env: '' });
    expect(blank.source).toBe('file');
  });

  it('reads an operator-written file, trimming the newline', async () => {
    await mkdir(join(dataDir, 'secrets'), { recursive: true });
    await writeFile(join(dataDir, 'secrets', 'api-token'), 'chosen-by-hand\n', { mode: 0o600 });
    expect((await loadOrCreateSecret(dataDir, 'api-token')).value).toBe('chosen-by-hand');
  });

  it('refuses file names that could escape the directory', async () => {
    await expect(loadOrCreateSecret(dataDir, '../etc')).rejects.toThrow('invalid secret file name');
  });
});

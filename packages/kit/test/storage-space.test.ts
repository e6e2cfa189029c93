import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  createMetrics,
  createStorageSpace,
  freeBytesOf,
  isStorageFullError,
  loadConfig,
  parseSizeBytes,
  Readiness,
  renderError,
  sizeBytes,
  StorageFullError,
  toStorageFullError,
} from '../src/index.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: no space left on device, write`), {
    code,
    errno: -28,
    syscall: 'write',
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kit-storage-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sizes', () => {
  it('parses bytes, decimal and binary units in any case', () => {
    expect(parseSizeBytes('0')).toBe(0);
    expect(parseSizeBytes('1048576')).toBe(1048576);
    expect(parseSizeBytes('64MiB')).toBe(64 * 1024 * 1024);
    expect(parseSizeBytes('1.5 gib')).toBe(1.5 * 1024 ** 3);
    expect(parseSizeBytes('500MB')).toBe(500e6);
    expect(parseSizeBytes('12b')).toBe(12);
    for (const bad of ['', '-1', '64 furlongs', 'MiB', '1e9'])
      expect(parseSizeBytes(bad), bad).toBeUndefined();
  });

  it('sizeBytes() names the variable and the expected form', () => {
    const schema = z.object({ FLOTILLA_X_MIN_FREE_BYTES: sizeBytes().default(64 * 1024 * 1024) });
    expect(loadConfig(schema, {}).FLOTILLA_X_MIN_FREE_BYTES).toBe(64 * 1024 * 1024);
    expect(
      loadConfig(schema, { FLOTILLA_X_MIN_FREE_BYTES: '1GiB' }).FLOTILLA_X_MIN_FREE_BYTES,
    ).toBe(1024 ** 3);
    expect(() => loadConfig(schema, { FLOTILLA_X_MIN_FREE_BYTES: 'lots' })).toThrow(ConfigError);
    expect(() => loadConfig(schema, { FLOTILLA_X_MIN_FREE_BYTES: 'lots' })).toThrow(
      /FLOTILLA_X_MIN_FREE_BYTES must be a size/,
    );
  });
});

describe('full-disk errors', () => {
  it('recognises ENOSPC and EDQUOT, also as a cause, and nothing else', () => {
    expect(isStorageFullError(errno('ENOSPC'))).toBe(true);
    expect(isStorageFullError(errno('EDQUOT'))).toBe(true);
    expect(isStorageFullError(new Error('wrapped', { cause: errno('ENOSPC') }))).toBe(true);
    expect(isStorageFullError(new StorageFullError())).toBe(true);
    expect(isStorageFullError(errno('EIO'))).toBe(false);
    expect(isStorageFullError(errno('ENOENT'))).toBe(false);
    expect(isStorageFullError(undefined)).toBe(false);
    expect(isStorageFullError('ENOSPC')).toBe(false);
  });

  it('renders a bare ENOSPC and a StorageFullError as 507 in both formats, never a 500', () => {
    for (const err of [
      errno('ENOSPC'),
      toStorageFullError(errno('EDQUOT')),
      new StorageFullError('storage is full: no room for the upload'),
    ]) {
      const oci = renderError(err, { format: 'oci', requestId: 'r1' });
      expect(oci.status).toBe(507);
      expect(oci.unexpected).toBe(false);
      const body = JSON.parse(oci.body) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]?.message).toMatch(/^storage is full/);
      const problem = renderError(err, { format: 'problem', requestId: 'r1' });
      expect(problem.status).toBe(507);
      expect(problem.headers['Content-Type']).toBe('application/problem+json');
      expect(JSON.parse(problem.body)).toMatchObject({
        status: 507,
        title: 'Insufficient Storage',
        detail: expect.stringMatching(/^storage is full/),
      });
    }
    expect(renderError(errno('EIO'), { format: 'oci' }).status).toBe(500);
  });
});

describe('createStorageSpace', () => {
  it('measures the filesystem of a directory that does not exist yet', async () => {
    const free = await freeBytesOf(join(dir, 'not', 'yet'));
    expect(free).toBeGreaterThan(0);
  });

  it('refuses early, warns in /readyz and exports the gauges below the reserve', async () => {
    const metrics = createMetrics('space-test', { defaultMetrics: false });
    const roomy = createStorageSpace({ directory: dir, reserveBytes: 0, volume: 'roomy', metrics });
    const starved = createStorageSpace({
      directory: dir,
      reserveBytes: Number.MAX_SAFE_INTEGER,
      volume: 'starved',
      metrics,
    });
    await expect(roomy.ensureWritable()).resolves.toBeUndefined();
    const refused = await starved.ensureWritable().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(StorageFullError);
    expect(renderError(refused, { format: 'oci' }).status).toBe(507);

    const readiness = new Readiness({
      roomy: () => roomy.readinessCheck(),
      starved: () => starved.readinessCheck(),
    });
    const report = await readiness.run();
    expect(report.status).toBe('ok');
    expect(report.checks.roomy?.status).toBe('ok');
    expect(report.checks.starved).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/^storage low: \d+ bytes free on the starved volume/),
    });

    const text = await metrics.registry.metrics();
    const free = await freeBytesOf(dir);
    const scraped = /flotilla_storage_free_bytes\{volume="roomy",service="space-test"\} (\d+)/.exec(
      text,
    );
    expect(scraped, text).not.toBeNull();
    // the filesystem is shared with everything else on the machine: the scrape is close to now
    expect(Math.abs(Number(scraped?.[1]) - free)).toBeLessThan(1024 ** 3);
    expect(text).toMatch(
      /flotilla_storage_reserve_bytes\{volume="starved",service="space-test"\} 9007199254740991/,
    );
  });
});

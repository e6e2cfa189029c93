/**
 * The mirrors service below its free-space reserve: admin writes are refused early with problem
 * JSON 507, reads keep working, `/readyz` warns "storage low" and `/metrics` gauges the free
 * bytes of the data directory's volume. With the reserve met, the same write succeeds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchRaw, startMirrors, TEST_TOKEN, type Harness } from './support/mirrors.js';

const auth = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };
const mirror = (name: string) =>
  JSON.stringify({ name, baseUrl: `http://${name}.test/containers`, country: 'DE' });

describe('mirrors storage reserve', () => {
  let harness: Harness | undefined;
  let work: string | undefined;
  afterEach(async () => {
    await harness?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    harness = undefined;
  });

  it('refuses admin writes below the reserve with 507, warns in /readyz, gauges free bytes', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mirrors-reserve-'));
    // more than any disk here holds: every write is below the reserve
    harness = await startMirrors({
      publishDir: work,
      env: { FLOTILLA_MIRRORS_MIN_FREE_BYTES: '1000TiB' },
    });
    const post = await fetchRaw(`${harness.url}/api/v1/mirrors`, {
      method: 'POST',
      headers: auth,
      body: mirror('m1'),
    });
    expect(post.status).toBe(507);
    expect(post.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(JSON.parse(post.text).detail).toMatch(/storage is full/);
    // nothing was written, reads work
    const list = await fetchRaw(`${harness.url}/api/v1/mirrors`, { headers: auth });
    expect(list.status).toBe(200);
    expect(JSON.parse(list.text)).toEqual([]);
    const ready = await fetchRaw(`${harness.url}/readyz`);
    expect(JSON.parse(ready.text).checks.storage).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/^storage low/),
    });
    const metrics = await fetchRaw(`${harness.url}/metrics`);
    expect(metrics.text).toMatch(/flotilla_storage_free_bytes\{volume="mirrors"[^}]*\} [1-9]\d*/);
    expect(metrics.text).toMatch(
      /flotilla_storage_reserve_bytes\{volume="mirrors"[^}]*\} 1099511627776000\b/,
    );
  });

  it('takes the same write with the reserve met', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mirrors-reserve-'));
    harness = await startMirrors({
      publishDir: work,
      env: { FLOTILLA_MIRRORS_MIN_FREE_BYTES: '0' },
    });
    const post = await fetchRaw(`${harness.url}/api/v1/mirrors`, {
      method: 'POST',
      headers: auth,
      body: mirror('m1'),
    });
    expect(post.status, post.text).toBe(201);
    const ready = await fetchRaw(`${harness.url}/readyz`);
    expect(JSON.parse(ready.text).checks.storage.status).not.toBe('warn');
  });
});

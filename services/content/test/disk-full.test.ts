/**
 * Content on real small disks (tmpfs): a sync whose blobs do not fit in the content store, and
 * a publish whose blobs do not fit in the published tree, each fail that one task with the
 * reason "storage is full", leave no temporary file behind, keep what was there, and the same
 * task succeeds once the disk has room, with no restart. Below the free-space reserve the
 * writes are refused early and /readyz and /metrics say so.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '@flotilla/kit';
import { isSignatureTag, signatureTag } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  MiB,
  mountTmpfs,
  tmpfsUnavailableReason,
  type Tmpfs,
} from '../../../test/support/tmpfs.js';
import { FakeRegistry } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

const run = promisify(execFile);
const unavailable = tmpfsUnavailableReason();
if (unavailable) process.stdout.write(`skipping content disk-full tests: ${unavailable}\n`);

/** Gives a full tmpfs more room (the same as freeing space on it). */
async function grow(disk: Tmpfs, size: number): Promise<void> {
  await run('mount', ['-o', `remount,size=${size}`, disk.dir]);
}

async function files(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch(() => []);
}

describe.skipIf(unavailable !== undefined)('content on a full disk', () => {
  let dataDir: string;
  let disk: Tmpfs;
  let store: Store;
  let upstream: FakeRegistry;
  let content: ContentHarness | undefined;

  beforeEach(async () => {
    // the data dir (and the embedded store in it) is an ordinary directory; only the volume
    // under test is small
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-full-'));
    store = createEmbeddedStore({
      dir: path.join(dataDir, 'db'),
      logger: createLogger({ name: 'test', level: 'silent' }),
    });
    upstream = await new FakeRegistry().start();
  });
  afterEach(async () => {
    try {
      await content?.stop();
      content = undefined;
      await store.close();
      await upstream.stop();
    } finally {
      await disk?.unmount();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  async function start(env: Record<string, string>): Promise<ContentHarness> {
    content = await startContent(
      { FLOTILLA_REGISTRY_URL: upstream.url, FLOTILLA_DATA_DIR: dataDir, ...env },
      { dir: dataDir, store },
    );
    return content;
  }

  it('a sync that does not fit fails with "storage is full", removes its temporary files, and succeeds once there is room', async () => {
    disk = await mountTmpfs('content-store', 8 * MiB);
    await fs.mkdir(path.join(dataDir, 'content'), { recursive: true });
    await run('mount', ['--bind', disk.dir, path.join(dataDir, 'content')]);
    try {
      const c = await start({ FLOTILLA_CONTENT_MIN_FREE_BYTES: '0' });
      const image = upstream.addImage('full/app', '1', { layers: 2, layerSize: 6 * MiB });

      const first = await c.api('POST', '/api/v1/syncs', { repository: 'full/app' });
      const failed = await c.waitTask(first.body.task.id, 60_000);
      expect(failed.state).toBe('failed');
      expect(failed.error.message).toMatch(/storage is full/);
      expect(failed.error.code).toBe('STORAGE_FULL');
      expect(await files(path.join(disk.dir, 'tmp'))).toEqual([]);
      const before = await c.api('GET', '/api/v1/repositories/full/app?channel=candidate');
      expect(before.body.channels?.[0]?.tags ?? {}).toEqual({});

      await grow(disk, 64 * MiB);
      const second = await c.api('POST', '/api/v1/syncs', { repository: 'full/app' });
      const done = await c.waitTask(second.body.task.id, 60_000);
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      const after = await c.api('GET', '/api/v1/repositories/full/app?channel=candidate');
      expect(after.body.channels[0].tags).toEqual({ '1': image.digest });
      expect(await files(path.join(disk.dir, 'tmp'))).toEqual([]);
    } finally {
      await content?.stop();
      content = undefined;
      await run('umount', [path.join(dataDir, 'content')]).catch(() => undefined);
    }
  });

  it('a publish that does not fit fails with "storage is full", leaves the tree without it, and succeeds once there is room', async () => {
    disk = await mountTmpfs('content-publish', 4 * MiB);
    const c = await start({ FLOTILLA_PUBLISH_DIR: disk.dir, FLOTILLA_CONTENT_MIN_FREE_BYTES: '0' });
    const image = upstream.addImage('full/pub', '1', { layers: 2, layerSize: 3 * MiB });
    const sync = await c.api('POST', '/api/v1/syncs', { repository: 'full/pub' });
    expect((await c.waitTask(sync.body.task.id, 60_000)).state).toBe('completed');
    for (const [from, to] of [
      ['candidate', 'testing'],
      ['testing', 'stable'],
    ]) {
      expect(
        (
          await c.api('POST', '/api/v1/promotions', {
            repository: 'full/pub',
            tags: ['1'],
            from,
            to,
          })
        ).status,
      ).toBe(201);
    }

    const first = await c.api('POST', '/api/v1/publications', { channel: 'stable' });
    const failed = await c.waitTask(first.body.task.id, 60_000);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatchObject({
      code: 'STORAGE_FULL',
      message: expect.stringMatching(/^storage is full/),
    });
    expect(await files(path.join(disk.dir, '.staging'))).toEqual([]);
    expect(await files(disk.dir)).not.toContain('PUBLICATION');

    await grow(disk, 64 * MiB);
    const second = await c.api('POST', '/api/v1/publications', { channel: 'stable' });
    const done = await c.waitTask(second.body.task.id, 60_000);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect((await fs.readFile(path.join(disk.dir, 'PUBLICATION'), 'utf8')).trim()).toBe(
      String(done.result.publication),
    );
    const meta = JSON.parse(
      await fs.readFile(path.join(disk.dir, 'channels/stable/repositories/full/pub.json'), 'utf8'),
    ) as { tags: Record<string, string> };
    // the image, and the signature promotion into stable made for it
    expect(Object.keys(meta.tags).sort()).toEqual(['1', signatureTag(image.digest)]);
    expect(
      Object.fromEntries(Object.entries(meta.tags).filter(([t]) => !isSignatureTag(t))),
    ).toEqual({
      '1': image.digest,
    });
    expect(await files(path.join(disk.dir, '.staging'))).toEqual([]);
  });

  it('below the reserve a publish is refused before it writes, /readyz warns and /metrics has the free bytes', async () => {
    disk = await mountTmpfs('content-reserve', 4 * MiB);
    const c = await start({
      FLOTILLA_PUBLISH_DIR: disk.dir,
      FLOTILLA_CONTENT_MIN_FREE_BYTES: '8MiB',
    });
    upstream.addImage('full/low', '1', { layers: 1, layerSize: 1024 });
    const sync = await c.api('POST', '/api/v1/syncs', { repository: 'full/low' });
    expect((await c.waitTask(sync.body.task.id, 60_000)).state).toBe('completed');
    for (const [from, to] of [
      ['candidate', 'testing'],
      ['testing', 'stable'],
    ]) {
      expect(
        (
          await c.api('POST', '/api/v1/promotions', {
            repository: 'full/low',
            tags: ['1'],
            from,
            to,
          })
        ).status,
      ).toBe(201);
    }

    const ready = await c.api('GET', '/readyz', undefined, { token: null });
    expect(ready.status).toBe(200);
    expect(ready.body.checks['publish-storage']).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/^storage low: \d+ bytes free on the publish volume/),
    });
    expect(ready.body.checks['content-storage'].status).toBe('ok');
    const metrics = await c.api('GET', '/metrics', undefined, { token: null });
    expect(String(metrics.body)).toMatch(
      /flotilla_storage_free_bytes\{volume="publish",service="content"\} \d+/,
    );
    expect(String(metrics.body)).toMatch(
      /flotilla_storage_reserve_bytes\{volume="publish",service="content"\} 8388608/,
    );

    const refused = await c.waitTask(
      (await c.api('POST', '/api/v1/publications', { channel: 'stable' })).body.task.id,
      60_000,
    );
    expect(refused.state).toBe('failed');
    expect(refused.error).toMatchObject({
      code: 'STORAGE_FULL',
      message: expect.stringMatching(/below the reserve/),
    });
    expect(await files(disk.dir)).not.toContain('PUBLICATION');

    await grow(disk, 64 * MiB);
    expect(
      (await c.api('GET', '/readyz', undefined, { token: null })).body.checks['publish-storage']
        .status,
    ).toBe('ok');
    const done = await c.waitTask(
      (await c.api('POST', '/api/v1/publications', { channel: 'stable' })).body.task.id,
      60_000,
    );
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
  });
});

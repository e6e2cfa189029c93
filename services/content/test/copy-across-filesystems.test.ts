import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRegistry } from './fake-registry.js';
import { startContent } from './harness.js';

/** /dev/shm is tmpfs on Linux: a publish dir there cannot hard-link from a content store in /tmp. */
async function otherFilesystemDir(): Promise<string | undefined> {
  try {
    const [a, b] = await Promise.all([fs.stat(os.tmpdir()), fs.stat('/dev/shm')]);
    if (a.dev === b.dev) return undefined;
    return await fs.mkdtemp('/dev/shm/flotilla-content-publish-');
  } catch {
    return undefined;
  }
}

describe('publishing across filesystems', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('copies (and verifies) blobs when the tree is on another filesystem', async (ctx) => {
    const publishDir = await otherFilesystemDir();
    if (!publishDir) {
      console.warn('skipping: no second filesystem (/dev/shm) next to the temp dir');
      ctx.skip();
      return;
    }
    cleanups.push(() => fs.rm(publishDir, { recursive: true, force: true }));
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_PUBLISH_DIR: publishDir,
      FLOTILLA_CONTENT_POLICY: '{}',
    });
    cleanups.push(() => content.stop());

    const img = upstream.addImage('app', 'v1', { layers: 2, layerSize: 200_000 });
    const sync = await content.waitTask(
      (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
    );
    expect(sync.progress).toMatchObject({
      bytesTotal: sync.result.bytesFetched,
      bytesDone: sync.result.bytesFetched,
    });
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'app',
          tags: ['v1'],
          from: 'candidate',
          to: 'stable',
        })
      ).status,
    ).toBe(201);
    const pub = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', {})).body.task.id,
    );
    expect(pub.state, JSON.stringify(pub.error)).toBe('completed');
    for (const d of [img.digest, ...img.blobs.map((b) => b.digest)]) {
      const file = path.join(publishDir, 'blobs/sha256', d.slice(7, 9), d.slice(7));
      const st = await fs.stat(file);
      expect(st.nlink).toBe(1); // a copy, not a link into the content store
      expect(
        `sha256:${createHash('sha256')
          .update(await fs.readFile(file))
          .digest('hex')}`,
      ).toBe(d);
    }
  });
});

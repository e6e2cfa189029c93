import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRegistry } from './fake-registry.js';
import { startContent } from './harness.js';

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );

describe('publication retention', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('keeps the last K publications and removes unreferenced blobs only after the grace period', async () => {
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_CONTENT_RETAIN_PUBLICATIONS: '2',
      FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: '3600',
      FLOTILLA_CONTENT_POLICY: '{}',
      // Counts the images' own files; a moved tag's signatures leave with it (signing.test.ts).
      FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
    });
    cleanups.push(() => content.stop());
    const root = content.service.parts.config.publishDir;
    const blobPath = (d: string) => path.join(root, 'blobs/sha256', d.slice(7, 9), d.slice(7));

    const images = ['v1', 'v2', 'v3'].map((t) => upstream.addImage('app', t, { layers: 1 }));
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');

    const publishOnly = async (tag: string, n: number) => {
      const r = await content.api('POST', '/api/v1/rollbacks', {
        repository: 'app',
        channel: 'candidate',
        version: 1,
      });
      expect(r.status).toBe(201);
      const promo = await content.api('POST', '/api/v1/promotions', {
        repository: 'app',
        tags: [tag],
        targetTags: ['latest'],
        from: 'candidate',
        to: 'stable',
      });
      expect(promo.status, JSON.stringify(promo.body)).toBe(201);
      const task = await content.waitTask(
        (await content.api('POST', '/api/v1/publications', {})).body.task.id,
      );
      expect(task.state, JSON.stringify(task.error)).toBe('completed');
      expect(task.result.publication).toBe(n);
      return task.result;
    };
    await publishOnly('v1', 1);
    await publishOnly('v2', 2);
    const third = await publishOnly('v3', 3);
    // retention runs as its own task, so a publish costs only what changed
    expect(third.retentionQueued).toBe(true);
    const [retentionTask] = (await content.api('GET', '/api/v1/tasks?kind=retention')).body.tasks;
    const retention = (await content.waitTask(retentionTask.id)).result;
    expect(retention.prunedPublications).toEqual([1]);
    // the record stays: it is the redirector's log of which publication introduced each blob
    expect(await exists(path.join(root, 'publications/1.json'))).toBe(true);
    expect(await exists(path.join(root, 'publications/2.json'))).toBe(true);
    // v1's blobs are unreferenced by publications 2 and 3 but still inside the grace period
    expect(retention.markedUnreferenced).toBe(3);
    for (const b of [images[0]!.digest, ...images[0]!.blobs.map((x) => x.digest)])
      expect(await exists(blobPath(b))).toBe(true);

    // after the grace period they go; what publication 2 and 3 need stays
    const later = await content.service.parts.publisher.applyRetention(
      new Date(Date.now() + 3601_000),
    );
    expect(later.removedBlobs).toBe(3);
    for (const b of [images[0]!.digest, ...images[0]!.blobs.map((x) => x.digest)])
      expect(await exists(blobPath(b))).toBe(false);
    for (const img of images.slice(1)) {
      for (const b of [img.digest, ...img.blobs.map((x) => x.digest)])
        expect(await exists(blobPath(b))).toBe(true);
    }

    // v1 comes back: its blobs are written again and listed as new
    const again = await publishOnly('v1', 4);
    expect(again.newBlobs).toBe(3);
    for (const b of [images[0]!.digest, ...images[0]!.blobs.map((x) => x.digest)])
      expect(await exists(blobPath(b))).toBe(true);
  });
});

/**
 * Content store garbage collection: versions beyond the policy go, then manifests and files
 * nothing kept references; dry runs report the same and remove nothing; a sync running
 * meanwhile keeps every file it wrote; unchanged re-syncs cost no storage.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRegistry, sha256 } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

/** Every file under `dir` → its size. */
async function files(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), (await fs.stat(p)).size);
    }
  };
  await walk(dir);
  return out;
}
const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

describe('content store gc', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const setup = async (env: Record<string, string> = {}) => {
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({ FLOTILLA_REGISTRY_URL: upstream.url, ...env });
    cleanups.push(() => content.stop());
    return { upstream, content, contentDir: content.service.parts.config.contentDir };
  };
  const syncNow = async (content: ContentHarness, repository: string) => {
    const r = await content.api('POST', '/api/v1/syncs', { repository });
    const task = await content.waitTask(r.body.task.id);
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    return task;
  };
  const gcNow = async (content: ContentHarness, dryRun: boolean) => {
    const r = await content.api('POST', '/api/v1/gc', dryRun ? { dryRun } : {});
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const task = await content.waitTask(r.body.task.id);
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    return task.result;
  };

  it('N syncs of unchanged content make no version and no byte of storage', async () => {
    const { upstream, content, contentDir } = await setup();
    upstream.addImage('app', 'a', { layers: 2 });
    upstream.addIndex('app', 'multi');
    await syncNow(content, 'app');
    const before = await files(contentDir);
    const versions = (await content.api('GET', '/api/v1/repositories/app?channel=candidate')).body
      .versions;
    for (let i = 0; i < 5; i++) expect((await syncNow(content, 'app')).result.changed).toBe(false);
    const after = await files(contentDir);
    expect(total(after)).toBe(total(before));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect(
      (await content.api('GET', '/api/v1/repositories/app?channel=candidate')).body.versions,
    ).toEqual(versions);
  });

  it('removes versions beyond the policy and only what nothing kept references; a dry run reports the same and removes nothing', async () => {
    const { upstream, content, contentDir } = await setup({
      FLOTILLA_CONTENT_KEEP_VERSIONS: '2',
      FLOTILLA_CONTENT_GC_GRACE: '0',
    });
    const images = [];
    const promote = async (from: string, to: string) =>
      expect(
        (
          await content.api('POST', '/api/v1/promotions', {
            repository: 'app',
            tags: ['a'],
            from,
            to,
          })
        ).status,
      ).toBe(201);
    for (let i = 0; i < 4; i++) {
      images.push(upstream.addImage('app', 'a', { layers: 1, layerSize: 1000 + i }));
      await syncNow(content, 'app');
      if (i === 0) {
        // A0 goes to stable and is published: the tree's version is kept whatever the policy
        await promote('candidate', 'testing');
        await promote('testing', 'stable');
        const pub = await content.waitTask(
          (await content.api('POST', '/api/v1/publications', {})).body.task.id,
        );
        expect(pub.state, JSON.stringify(pub.error)).toBe('completed');
      }
      if (i === 2) {
        await promote('candidate', 'testing');
        await promote('testing', 'stable');
        await content.api('POST', '/api/v1/untags', {
          repository: 'app',
          channel: 'stable',
          tags: ['a'],
        });
      }
    }
    // candidate v1..v4 = A0..A3; testing v1 A0, v2 A2; stable v1 A0 (published), v2 A2, v3 empty.
    // A1 is only in candidate v2, which the policy (keep 2) drops.
    // an unrecorded file (a sync died between writing and recording) and a recorded orphan
    const orphanBytes = Buffer.from('left by a dead sync');
    await content.service.parts.contentStore.writeBytes(sha256(orphanBytes), orphanBytes);
    const recordedBytes = Buffer.from('recorded, never referenced');
    await content.service.parts.contentStore.writeBytes(sha256(recordedBytes), recordedBytes);
    await content.service.parts.catalog.recordBlob(
      sha256(recordedBytes),
      recordedBytes.length,
      'blob',
    );
    await new Promise((r) => setTimeout(r, 20)); // grace 0: everything written so far is older than "now"

    const before = await files(contentDir);
    const dry = await gcNow(content, true);
    expect(await files(contentDir)).toEqual(before);
    expect(
      (await content.api('GET', '/api/v1/repositories/app?channel=candidate')).body.versions.length,
    ).toBe(4);

    const real = await gcNow(content, false);
    const { dryRun: _d, cutoff: _c, ...dryCounts } = dry;
    const { dryRun: _r, cutoff: _c2, ...realCounts } = real;
    expect(realCounts).toEqual(dryCounts);
    expect(real.versions).toBe(2);
    const versions = async (channel: string) =>
      (await content.api('GET', `/api/v1/repositories/app?channel=${channel}`)).body.versions.map(
        (v: { number: number }) => v.number,
      );
    expect(await versions('candidate')).toEqual([4, 3]);
    expect(await versions('testing')).toEqual([2, 1]);
    expect(await versions('stable')).toEqual([3, 2, 1]); // v1 is what the tree holds
    expect(
      (
        await content.api('POST', '/api/v1/rollbacks', {
          repository: 'app',
          channel: 'candidate',
          version: 1,
        })
      ).status,
    ).toBe(404);

    // images[1] is referenced by nothing kept any more (candidate v2 and testing v1 went)
    const store = content.service.parts.contentStore;
    const gone = [
      images[1]!.digest,
      ...images[1]!.blobs.map((b) => b.digest),
      sha256(orphanBytes),
      sha256(recordedBytes),
    ];
    for (const d of gone) expect(await store.size(d), d).toBeUndefined();
    expect(real.manifests).toBe(1);
    expect(real.blobs).toBe(gone.length);
    expect(real.bytes).toBe(
      images[1]!.bytes.length +
        images[1]!.blobs.reduce((a, b) => a + b.size, 0) +
        orphanBytes.length +
        recordedBytes.length,
    );
    expect(total(before) - total(await files(contentDir))).toBe(real.bytes);
    for (const image of [images[0]!, images[2]!, images[3]!]) {
      for (const d of [image.digest, ...image.blobs.map((b) => b.digest)])
        expect(await store.size(d), d).toBeDefined();
    }
    expect(await content.service.parts.catalog.manifest(images[1]!.digest)).toBeNull();

    // nothing left to do: a second gc removes nothing
    expect(await gcNow(content, false)).toMatchObject({
      versions: 0,
      manifests: 0,
      blobs: 0,
      bytes: 0,
    });
  });

  it('keeps every version a channel view serves, whichever channel was published last', async () => {
    const { upstream, content, contentDir } = await setup({
      FLOTILLA_CONTENT_KEEP_VERSIONS: '1',
      FLOTILLA_CONTENT_GC_GRACE: '0',
      FLOTILLA_CONTENT_RETAIN_PUBLICATIONS: '1',
      FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: '0',
    });
    const root = content.service.parts.config.publishDir;
    const promote = async (from: string, to: string) => {
      const r = await content.api('POST', '/api/v1/promotions', {
        repository: 'app',
        tags: ['a'],
        from,
        to,
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    };
    const publish = async (channel: string) => {
      const r = await content.api('POST', '/api/v1/publications', { channel });
      const task = await content.waitTask(r.body.task.id);
      expect(task.state, JSON.stringify(task.error)).toBe('completed');
    };
    const images = [];
    for (let i = 0; i < 4; i++) {
      images.push(upstream.addImage('app', 'a', { layers: 1, layerSize: 2000 + i }));
      await syncNow(content, 'app');
      if (i === 0) {
        await promote('candidate', 'testing');
        await promote('testing', 'stable');
      }
      if (i === 1) {
        await promote('candidate', 'testing');
        await publish('testing'); // testing's view: testing v2 (A1)
      }
      if (i === 2) {
        await publish('stable'); // stable's view: stable v1 (A0), and the newest publication
        await promote('candidate', 'testing');
        await promote('testing', 'stable');
      }
      if (i === 3) await promote('candidate', 'testing');
    }
    // candidate v1..v4 = A0..A3; testing v1..v4 = A0..A3 (view: v2); stable v1 A0 (view), v2 A2
    await new Promise((r) => setTimeout(r, 20)); // grace 0: everything so far is older than now
    await gcNow(content, false);

    const versions = async (channel: string) =>
      (await content.api('GET', `/api/v1/repositories/app?channel=${channel}`)).body.versions.map(
        (v: { number: number }) => v.number,
      );
    expect(await versions('candidate')).toEqual([4]);
    expect(await versions('testing')).toEqual([4, 3, 2]);
    expect(await versions('stable')).toEqual([2, 1]);
    const store = content.service.parts.contentStore;
    for (const image of [images[0]!, images[1]!, images[2]!, images[3]!]) {
      expect(
        await content.service.parts.catalog.manifest(image.digest),
        image.digest,
      ).not.toBeNull();
      for (const d of [image.digest, ...image.blobs.map((b) => b.digest)])
        expect(await store.size(d), d).toBeDefined();
    }
    // retention (which reads every served version) still works, and each view stays whole
    await content.service.parts.publisher.applyRetention();
    await content.service.parts.publisher.applyRetention(new Date(Date.now() + 1000));
    const treeFile = (d: string) => path.join(root, 'blobs/sha256', d.slice(7, 9), d.slice(7));
    for (const [channel, image] of [
      ['testing', images[1]!],
      ['stable', images[0]!],
    ] as const) {
      const meta = JSON.parse(
        await fs.readFile(path.join(root, `channels/${channel}/repositories/app.json`), 'utf8'),
      );
      expect(meta.tags.a).toBe(image.digest);
      for (const d of [image.digest, ...image.blobs.map((b) => b.digest)])
        expect((await fs.stat(treeFile(d))).size, `${channel} ${d}`).toBeGreaterThan(0);
    }
    // a served version can still be rolled back to, and publishing it again changes nothing
    const rollback = await content.api('POST', '/api/v1/rollbacks', {
      repository: 'app',
      channel: 'testing',
      version: 2,
    });
    expect(rollback.status, JSON.stringify(rollback.body)).toBe(201);
    expect(total(await files(contentDir))).toBeGreaterThan(0);
  });

  it('a sync running while gc runs completes with every file it wrote', async () => {
    const { upstream, content } = await setup({ FLOTILLA_CONTENT_GC_GRACE: '0' });
    const image = upstream.addImage('app', 'a', { layers: 6, layerSize: 4096 });
    const last = image.blobs[image.blobs.length - 1]!.digest;
    const open = upstream.gate(last);
    const r = await content.api('POST', '/api/v1/syncs', { repository: 'app' });
    const store = content.service.parts.contentStore;
    // wait until every file but the held one is in the store, referenced by no version yet
    let written = 0;
    for (let i = 0; i < 500 && written < image.blobs.length - 1; i++) {
      written = (await Promise.all(image.blobs.map((b) => store.size(b.digest)))).filter(
        (s) => s !== undefined,
      ).length;
      if (written < image.blobs.length - 1) await new Promise((res) => setTimeout(res, 10));
    }
    expect(written).toBe(image.blobs.length - 1);
    await new Promise((res) => setTimeout(res, 20));
    const report = await gcNow(content, false);
    expect(report.blobs).toBe(0);
    open();
    const task = await content.waitTask(r.body.task.id);
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    for (const d of [image.digest, ...image.blobs.map((b) => b.digest)])
      expect(await store.size(d), d).toBeDefined();
    expect(await gcNow(content, false)).toMatchObject({ blobs: 0, manifests: 0 });
  });

  it('a sync relying on a recorded manifest marks its closure, so gc keeps it', async () => {
    const { upstream, content } = await setup({
      FLOTILLA_CONTENT_GC_GRACE: '0',
      FLOTILLA_CONTENT_KEEP_VERSIONS: '1',
    });
    const image = upstream.addImage('app', 'a');
    await syncNow(content, 'app');
    // the manifest leaves every channel: nothing references it
    await content.api('POST', '/api/v1/untags', {
      repository: 'app',
      channel: 'candidate',
      tags: ['a'],
    });
    await new Promise((res) => setTimeout(res, 20));
    const catalog = content.service.parts.catalog;
    // gc's "now" is taken before the use, so the use is newer than the cutoff however slow the run
    const gcNowAt = new Date();
    expect(await catalog.useManifest(image.digest)).not.toBeNull();
    // what a sync just relied on is "used now": newer than gc's cutoff
    const gc = content.service.parts.gc;
    const noProgress = {
      update: () => undefined,
      flush: async () => undefined,
      value: {},
    } as never;
    const report = await gc.run(
      { dryRun: false },
      noProgress,
      new AbortController().signal,
      gcNowAt,
    );
    expect(report.manifests).toBe(0);
    expect(await catalog.manifest(image.digest)).not.toBeNull();
    // later (the grace period has passed), it goes
    await new Promise((res) => setTimeout(res, 20));
    const later = await gc.run({ dryRun: false }, noProgress, new AbortController().signal);
    expect(later.manifests).toBe(1);
    expect(await catalog.useManifest(image.digest)).toBeNull();
  });

  it('runs on its schedule, and the settings refuse a bad duration naming the variable', async () => {
    const { content } = await setup({ FLOTILLA_CONTENT_GC_INTERVAL: '200ms' });
    let scheduled: { state: string; params: { dryRun: boolean } } | undefined;
    for (let i = 0; i < 100 && scheduled?.state !== 'completed'; i++) {
      [scheduled] = (await content.api('GET', '/api/v1/tasks?kind=gc')).body.tasks;
      if (scheduled?.state !== 'completed') await new Promise((r) => setTimeout(r, 50));
    }
    expect(scheduled).toMatchObject({ state: 'completed', params: { dryRun: false } });
    const { loadContentConfig } = await import('../src/config.js');
    expect(() => loadContentConfig({ FLOTILLA_CONTENT_GC_GRACE: 'soon' })).toThrow(
      /FLOTILLA_CONTENT_GC_GRACE/,
    );
    expect(() => loadContentConfig({ FLOTILLA_CONTENT_KEEP_VERSIONS: '0' })).toThrow(
      /FLOTILLA_CONTENT_KEEP_VERSIONS/,
    );
    expect(
      loadContentConfig({ FLOTILLA_CONTENT_RECONCILE_INTERVAL: '5m' }).reconcileIntervalMs,
    ).toBe(300_000);
  });

  it('POST /api/v1/gc is admin only, validated and documented', async () => {
    const { content } = await setup();
    expect((await content.api('POST', '/api/v1/gc', { dryRun: 'yes' })).status).toBe(400);
    expect(
      (await content.api('POST', '/api/v1/gc', {}, { token: 'read-token-for-tests' })).status,
    ).toBe(403);
    const doc = await content.api('GET', '/api/v1/openapi.json');
    expect(doc.body.paths['/gc'].post).toBeDefined();
  });
});

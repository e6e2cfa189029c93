import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePublicationMarker, parseRepositoryMetadata } from '@flotilla/protocol';
import { FakeRegistry } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function publish(content: ContentHarness, channel: string) {
  const r = await content.api('POST', '/api/v1/publications', { channel });
  expect(r.status).toBe(202);
  const task = await content.waitTask(r.body.task.id);
  expect(task.state, JSON.stringify(task.error)).toBe('completed');
  return task.result as { publication: number; newBlobs: number; changed: boolean };
}

async function promote(content: ContentHarness, tags: string[], from: string, to: string) {
  const r = await content.api('POST', '/api/v1/promotions', { repository: 'app', tags, from, to });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
}

describe('per-channel views of the published tree', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(env: Record<string, string> = {}) {
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_CONTENT_POLICY: '{}',
      // Views and counts of the images' own files; what signing adds to stable is signing.test.ts's.
      FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
      ...env,
    });
    cleanups.push(() => content.stop());
    return { upstream, content, root: content.service.parts.config.publishDir };
  }

  it('publishing one channel never changes another channel’s view; blobs are stored once', async () => {
    const { upstream, content, root } = await setup();
    const v1 = upstream.addImage('app', 'v1', { layers: 2 });
    const v2 = upstream.addImage('app', 'v2', { layers: 2 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');

    // testing gets v1 and v2, stable only v1
    await promote(content, ['v1', 'v2'], 'candidate', 'testing');
    expect((await publish(content, 'testing')).publication).toBe(1);
    await promote(content, ['v1'], 'testing', 'stable');
    const stablePub = await publish(content, 'stable');
    expect(stablePub.publication).toBe(2);
    // v1's files were placed by publication 1: stable adds nothing new to the tree
    expect(stablePub.newBlobs).toBe(0);

    const stableFile = path.join(root, 'channels/stable/repositories/app.json');
    const testingFile = path.join(root, 'channels/testing/repositories/app.json');
    const stable = parseRepositoryMetadata(await fs.readFile(stableFile));
    const testing = parseRepositoryMetadata(await fs.readFile(testingFile));
    expect(Object.keys(stable.tags)).toEqual(['v1']);
    expect(Object.keys(testing.tags).sort()).toEqual(['v1', 'v2']);
    expect(
      parsePublicationMarker(await fs.readFile(path.join(root, 'channels/testing/PUBLICATION'))),
    ).toBe(1);
    expect(
      parsePublicationMarker(await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'))),
    ).toBe(2);
    expect(parsePublicationMarker(await fs.readFile(path.join(root, 'PUBLICATION')))).toBe(2);
    expect(await exists(path.join(root, 'repositories'))).toBe(false);

    // each blob once, under blobs/, however many channels reference it
    const blobFiles: string[] = [];
    for (const d of await fs.readdir(path.join(root, 'blobs/sha256'))) {
      for (const f of await fs.readdir(path.join(root, 'blobs/sha256', d))) blobFiles.push(f);
    }
    const expected = new Set(
      [v1, v2]
        .flatMap((img) => [img.digest, ...img.blobs.map((b) => b.digest)])
        .map((d) => d.slice(7)),
    );
    expect(blobFiles.sort()).toEqual([...expected].sort());

    // testing moves on (v3): stable's view is byte for byte what it was
    const stableBefore = await fs.readFile(stableFile);
    const stableMarkerBefore = await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'));
    upstream.addImage('app', 'v3', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    await promote(content, ['v3'], 'candidate', 'testing');
    expect((await publish(content, 'testing')).publication).toBe(3);
    expect(sha(await fs.readFile(stableFile))).toBe(sha(stableBefore));
    expect(
      (await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'))).equals(
        stableMarkerBefore,
      ),
    ).toBe(true);
    expect(
      Object.keys(parseRepositoryMetadata(await fs.readFile(testingFile)).tags).sort(),
    ).toEqual(['v1', 'v2', 'v3']);
    expect(parsePublicationMarker(await fs.readFile(path.join(root, 'PUBLICATION')))).toBe(3);

    // nothing changed for stable: no publication
    expect((await publish(content, 'stable')).changed).toBe(false);
  });

  it('a publish that fails mid-way leaves the previous publication served and no staged file', async () => {
    const { upstream, content, root } = await setup();
    upstream.addImage('a', '1', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'a' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    let r = await content.api('POST', '/api/v1/promotions', {
      repository: 'a',
      tags: ['1'],
      from: 'candidate',
      to: 'stable',
    });
    expect(r.status).toBe(201);
    expect((await publish(content, 'stable')).publication).toBe(1);
    const aFile = path.join(root, 'channels/stable/repositories/a.json');
    const aBefore = await fs.readFile(aFile);

    // a changes and b is new; one of b's layers is unreadable, so the publish fails after a's
    // metadata was staged
    upstream.addImage('a', '2', { layers: 1 });
    const b = upstream.addImage('b', '1', { layers: 1 });
    for (const repository of ['a', 'b']) {
      expect(
        (
          await content.waitTask(
            (await content.api('POST', '/api/v1/syncs', { repository })).body.task.id,
          )
        ).state,
      ).toBe('completed');
    }
    r = await content.api('POST', '/api/v1/promotions', {
      repository: 'a',
      tags: ['2'],
      from: 'candidate',
      to: 'stable',
    });
    expect(r.status).toBe(201);
    r = await content.api('POST', '/api/v1/promotions', {
      repository: 'b',
      tags: ['1'],
      from: 'candidate',
      to: 'stable',
    });
    expect(r.status).toBe(201);
    const layer = content.service.parts.contentStore.filePath(
      b.blobs.find((x) => x.size === 512)!.digest,
    );
    await fs.rename(layer, `${layer}.aside`);
    const failed = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', {})).body.task.id,
    );
    expect(failed.state).toBe('failed');
    expect(parsePublicationMarker(await fs.readFile(path.join(root, 'PUBLICATION')))).toBe(1);
    expect(
      parsePublicationMarker(await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'))),
    ).toBe(1);
    expect((await fs.readFile(aFile)).equals(aBefore)).toBe(true);
    expect(await exists(path.join(root, 'channels/stable/repositories/b.json'))).toBe(false);
    expect(await fs.readdir(path.join(root, '.staging'))).toEqual([]);

    // the fault gone, the next publish makes publication 2 with both
    await fs.rename(`${layer}.aside`, layer);
    expect((await publish(content, 'stable')).publication).toBe(2);
    expect(Object.keys(parseRepositoryMetadata(await fs.readFile(aFile)).tags).sort()).toEqual([
      '1',
      '2',
    ]);
    expect(await exists(path.join(root, 'channels/stable/repositories/b.json'))).toBe(true);
  });

  it('a record that cannot be written puts the renamed view files back', async () => {
    const { upstream, content, root } = await setup();
    upstream.addImage('a', '1', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'a' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'a',
          tags: ['1'],
          from: 'candidate',
          to: 'stable',
        })
      ).status,
    ).toBe(201);
    expect((await publish(content, 'stable')).publication).toBe(1);
    const aFile = path.join(root, 'channels/stable/repositories/a.json');
    const aBefore = await fs.readFile(aFile);

    upstream.addImage('a', '2', { layers: 1 });
    upstream.addImage('b', '1', { layers: 1 });
    for (const repository of ['a', 'b']) {
      expect(
        (
          await content.waitTask(
            (await content.api('POST', '/api/v1/syncs', { repository })).body.task.id,
          )
        ).state,
      ).toBe('completed');
      expect(
        (
          await content.api('POST', '/api/v1/promotions', {
            repository,
            tags: [repository === 'a' ? '2' : '1'],
            from: 'candidate',
            to: 'stable',
          })
        ).status,
      ).toBe(201);
    }
    // a directory where the record goes: renaming the record into place fails
    await fs.mkdir(path.join(root, 'publications/2.json'));
    const failed = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', {})).body.task.id,
    );
    expect(failed.state).toBe('failed');
    expect((await fs.readFile(aFile)).equals(aBefore)).toBe(true);
    expect(await exists(path.join(root, 'channels/stable/repositories/b.json'))).toBe(false);
    expect(
      parsePublicationMarker(await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'))),
    ).toBe(1);
    expect(await fs.readdir(path.join(root, '.staging'))).toEqual([]);

    await fs.rmdir(path.join(root, 'publications/2.json'));
    expect((await publish(content, 'stable')).publication).toBe(2);
    expect(Object.keys(parseRepositoryMetadata(await fs.readFile(aFile)).tags).sort()).toEqual([
      '1',
      '2',
    ]);
  });

  it('a tree and store written before channels: the root view’s blobs stay while crane may read it', async () => {
    const { upstream, content, root } = await setup({
      FLOTILLA_CONTENT_RETAIN_PUBLICATIONS: '1',
      FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: '0',
    });
    const blobPath = (d: string) => path.join(root, 'blobs/sha256', d.slice(7, 9), d.slice(7));
    const old = upstream.addImage('app', 'old', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    await promote(content, ['old'], 'candidate', 'stable');
    // publication 1 as the single-view publisher left it: the root view and a document with lists
    const files = [old.digest, ...old.blobs.map((b) => b.digest)];
    for (const d of files) {
      await fs.mkdir(path.dirname(blobPath(d)), { recursive: true });
      await fs.link(content.service.parts.contentStore.filePath(d), blobPath(d));
    }
    await fs.mkdir(path.join(root, 'repositories'), { recursive: true });
    await fs.writeFile(path.join(root, 'repositories/app.json'), '{}');
    await fs.writeFile(path.join(root, 'PUBLICATION'), '1\n');
    await content.store
      .collection('blobs')
      .updateMany({ _id: { $in: files } }, { $set: { published: true, publishedIn: 1 } });
    await content.store
      .collection('repositories')
      .updateOne(
        { _id: 'app' },
        { $set: { published: { channel: 'stable', version: 1, publication: 1 } } },
      );
    await content.store.collection('publications').insertOne({
      _id: '1',
      number: 1,
      channel: 'stable',
      state: 'complete',
      time: new Date().toISOString(),
      repositories: ['app'],
      newBlobs: [...files].sort(),
      snapshot: [{ repository: 'app', channel: 'stable', version: 1 }],
    });
    const listed = await content.api('GET', '/api/v1/publications');
    expect(listed.body.publications[0]).toMatchObject({
      number: 1,
      repositoryCount: 1,
      newBlobCount: 3,
    });
    expect(listed.body.publications[0].newBlobs).toBeUndefined();
    expect((await content.api('GET', '/api/v1/publications/1')).body).toMatchObject({
      repositories: ['app'],
      newBlobs: [...files].sort(),
    });

    // testing publishes twice: publication 1 falls out of the window of one
    upstream.addImage('other', 't', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'other' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    let r = await content.api('POST', '/api/v1/promotions', {
      repository: 'other',
      tags: ['t'],
      from: 'candidate',
      to: 'testing',
    });
    expect(r.status).toBe(201);
    expect((await publish(content, 'testing')).publication).toBe(2);
    r = await content.api('POST', '/api/v1/promotions', {
      repository: 'other',
      tags: ['t'],
      targetTags: ['u'],
      from: 'candidate',
      to: 'testing',
    });
    expect(r.status).toBe(201);
    expect((await publish(content, 'testing')).publication).toBe(3);
    for (const task of (await content.api('GET', '/api/v1/tasks?kind=retention')).body.tasks) {
      expect((await content.waitTask(task.id)).state).toBe('completed');
    }
    const publisher = content.service.parts.publisher;
    await publisher.applyRetention();
    await publisher.applyRetention(new Date(Date.now() + 1000));
    expect((await content.api('GET', '/api/v1/publications/1')).body.state).toBe('pruned');
    // the stable crane still serves the root view: its blobs stay
    for (const d of files) expect(await exists(blobPath(d))).toBe(true);

    // stable's first own publication writes the repository into its view (the root view is not
    // written again)
    expect((await publish(content, 'stable')).publication).toBe(4);
    expect(
      Object.keys(
        parseRepositoryMetadata(
          await fs.readFile(path.join(root, 'channels/stable/repositories/app.json')),
        ).tags,
      ),
    ).toEqual(['old']);
    expect(await fs.readFile(path.join(root, 'repositories/app.json'), 'utf8')).toBe('{}');
  });

  it('retention keeps every blob another channel’s current view references', async () => {
    const { upstream, content, root } = await setup({
      FLOTILLA_CONTENT_RETAIN_PUBLICATIONS: '1',
      FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: '0',
    });
    const blobPath = (d: string) => path.join(root, 'blobs/sha256', d.slice(7, 9), d.slice(7));
    const old = upstream.addImage('app', 'old', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    await promote(content, ['old'], 'candidate', 'stable');
    expect((await publish(content, 'stable')).publication).toBe(1);

    // testing publishes twice more: stable's publication 1 falls out of the window of one
    const t1 = upstream.addImage('app', 't1', { layers: 1 });
    const t2 = upstream.addImage('app', 't2', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    await promote(content, ['t1'], 'candidate', 'testing');
    await publish(content, 'testing');
    const r = await content.api('POST', '/api/v1/untags', {
      repository: 'app',
      channel: 'testing',
      tags: ['t1'],
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    await promote(content, ['t2'], 'candidate', 'testing');
    expect((await publish(content, 'testing')).publication).toBe(3);

    // let the retention tasks the publishes queued finish, then mark and sweep once more
    for (const task of (await content.api('GET', '/api/v1/tasks?kind=retention')).body.tasks) {
      expect((await content.waitTask(task.id)).state).toBe('completed');
    }
    const publisher = content.service.parts.publisher;
    await publisher.applyRetention();
    await publisher.applyRetention(new Date(Date.now() + 1000));
    const pruned = await content.api('GET', '/api/v1/publications');
    expect(
      pruned.body.publications.map((p: { number: number; state: string }) => [p.number, p.state]),
    ).toEqual([
      [3, 'complete'],
      [2, 'pruned'],
      [1, 'pruned'],
    ]);
    // t1 left testing's view and publication 2 is out of the window: its blobs go
    for (const d of [t1.digest, ...t1.blobs.map((b) => b.digest)])
      expect(await exists(blobPath(d))).toBe(false);
    // stable still serves "old" though its publication is long out of the window
    for (const d of [old.digest, ...old.blobs.map((b) => b.digest)])
      expect(await exists(blobPath(d))).toBe(true);
    for (const d of [t2.digest, ...t2.blobs.map((b) => b.digest)])
      expect(await exists(blobPath(d))).toBe(true);
  });
});

describe('publication documents stay bounded', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('keeps the lists in the tree; the API pages through what a publication added', async () => {
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_CONTENT_POLICY: '{}',
      // Counts the images' own files (42), not the signatures promotion to stable adds.
      FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
    });
    cleanups.push(() => content.stop());
    const root = content.service.parts.config.publishDir;

    // a real publication of 42 new files: no store document lists them
    upstream.addImage('app', 'big', { layers: 40, layerSize: 16 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).state,
    ).toBe('completed');
    await promote(content, ['big'], 'candidate', 'stable');
    expect((await publish(content, 'stable')).newBlobs).toBe(42);
    for (const name of ['publications', 'publication_entries', 'repositories']) {
      for (const doc of await content.store.collection(name).find({})) {
        expect(JSON.stringify(doc).length, `${name} ${JSON.stringify(doc)}`).toBeLessThan(600);
      }
    }
    const one = await content.api('GET', '/api/v1/publications/1?limit=40');
    expect(one.body).toMatchObject({
      number: 1,
      channel: 'stable',
      state: 'complete',
      repositories: ['app'],
      newBlobCount: 42,
    });
    expect(one.body.newBlobs).toHaveLength(40);
    expect(one.headers.link).toBe(
      `</api/v1/publications/1?after=${encodeURIComponent(one.body.next)}&limit=40>; rel="next"`,
    );
    const rest = await content.api('GET', `/api/v1/publications/1?after=${one.body.next}&limit=40`);
    expect(rest.body.newBlobs).toHaveLength(2);
    expect(rest.body.next).toBeUndefined();
    expect(rest.headers.link).toBeUndefined();
    const record = JSON.parse(
      await fs.readFile(path.join(root, 'publications/1.json'), 'utf8'),
    ) as { newBlobs: string[] };
    expect([...one.body.newBlobs, ...rest.body.newBlobs]).toEqual([...record.newBlobs].sort());

    // a publication of 250,000 new blobs (more than a 16 MB document could list), made directly
    const count = 250_000;
    const digests = Array.from(
      { length: count },
      (_, i) => `sha256:${sha(Buffer.from(String(i)))}`,
    ).sort();
    await fs.writeFile(
      path.join(root, 'publications/2.json'),
      JSON.stringify({
        schemaVersion: 1,
        publication: 2,
        channel: 'stable',
        time: new Date().toISOString(),
        repositories: ['app'],
        newBlobs: digests,
      }),
    );
    await content.store.collection('publications').insertOne({
      _id: '2',
      number: 2,
      channel: 'stable',
      state: 'complete',
      time: new Date().toISOString(),
      repositoryCount: 1,
      newBlobCount: count,
    });
    const list = await content.api('GET', '/api/v1/publications');
    expect(list.body.publications[0]).toMatchObject({ number: 2, newBlobCount: count });
    expect(list.body.publications[0].newBlobs).toBeUndefined();
    const first = await content.api('GET', '/api/v1/publications/2?limit=10000');
    expect(first.body.newBlobCount).toBe(count);
    expect(first.body.newBlobs).toEqual(digests.slice(0, 10_000));
    expect(first.body.next).toBe(digests[9_999]);
    const last = await content.api(
      'GET',
      `/api/v1/publications/2?limit=10000&after=${digests[count - 5]}`,
    );
    expect(last.body.newBlobs).toEqual(digests.slice(count - 4));
    expect(last.body.next).toBeUndefined();
    expect((await content.api('GET', '/api/v1/publications/2?limit=0')).status).toBe(400);
  });
});

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  parsePublicationRecord,
  parseRepositoryMetadata,
  repositoryMetadataSchema,
} from '@flotilla/protocol';
import { FakeRegistry } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

describe('sync → candidate → promote → publish', () => {
  let upstream: FakeRegistry;
  let content: ContentHarness;

  beforeEach(async () => {
    upstream = await new FakeRegistry().start();
    // Counts tags and files of the images alone; signing on promotion is covered by signing.test.ts.
    content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
    });
  });
  afterEach(async () => {
    await content.stop();
    await upstream.stop();
  });

  it('syncs tags, promotes to stable through testing and publishes a tree that validates', async () => {
    const index = upstream.addIndex('fedora/httpd', '39');
    const image = upstream.addImage('fedora/httpd', 'latest', { layers: 3 });
    upstream.addImage('fedora/httpd', '38');

    const sync = await content.api('POST', '/api/v1/syncs', { repository: 'fedora/httpd' });
    expect(sync.status).toBe(202);
    const done = await content.waitTask(sync.body.task.id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.result.tags).toBe(3);
    expect(done.progress.done).toBe(3);

    const repo = await content.api('GET', '/api/v1/repositories/fedora/httpd?channel=candidate');
    expect(repo.status).toBe(200);
    expect(repo.body.channels[0]).toMatchObject({ name: 'candidate', version: 1 });
    expect(repo.body.channels[0].tags).toEqual({
      '39': index.digest,
      latest: image.digest,
      '38': expect.any(String),
    });

    // stable requires testing: refused, nothing written
    const refused = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39'],
      from: 'candidate',
      to: 'stable',
    });
    expect(refused.status).toBe(409);
    expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(refused.body.detail).toMatch(/requires/);
    const stable0 = await content.api('GET', '/api/v1/repositories/fedora/httpd?channel=stable');
    expect(stable0.body.channels[0].version).toBe(0);

    for (const [from, to] of [
      ['candidate', 'testing'],
      ['testing', 'stable'],
    ]) {
      const p = await content.api('POST', '/api/v1/promotions', {
        repository: 'fedora/httpd',
        tags: ['39', 'latest'],
        from,
        to,
        reason: 'tested',
      });
      expect(p.status, JSON.stringify(p.body)).toBe(201);
      expect(p.body.version).toBe(1);
    }

    const pub = await content.api('POST', '/api/v1/publications', {});
    expect(pub.status).toBe(202);
    const published = await content.waitTask(pub.body.task.id);
    expect(published.state, JSON.stringify(published.error)).toBe('completed');
    expect(published.result.publication).toBe(1);

    const root = content.service.parts.config.publishDir;
    expect((await fs.readFile(path.join(root, 'PUBLICATION'), 'utf8')).trim()).toBe('1');
    const meta = parseRepositoryMetadata(
      await fs.readFile(path.join(root, 'channels/stable/repositories/fedora/httpd.json')),
    );
    expect(repositoryMetadataSchema.safeParse(meta).success).toBe(true);
    expect(meta.tags).toEqual({ '39': index.digest, latest: image.digest });
    // index children are in manifests, with exact bytes
    const manifestDigests = [
      index.digest,
      ...index.children.map((c) => c.digest),
      image.digest,
    ].sort();
    expect(Object.keys(meta.manifests).sort()).toEqual(manifestDigests);
    expect(Buffer.from(meta.manifests[index.digest]!.data, 'base64').equals(index.bytes)).toBe(
      true,
    );
    expect(meta.manifests[index.digest]!.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    // blobs = layers + configs → size
    const expectedBlobs = Object.fromEntries(
      [...index.children.flatMap((c) => c.blobs), ...image.blobs].map((b) => [b.digest, b.size]),
    );
    expect(meta.blobs).toEqual(expectedBlobs);

    // every blob file hashes to its name; the tree holds exactly manifests + blobs
    const files = await walk(path.join(root, 'blobs'));
    for (const file of files) {
      const hex = path.basename(file);
      expect(path.basename(path.dirname(file))).toBe(hex.slice(0, 2));
      expect(
        createHash('sha256')
          .update(await fs.readFile(file))
          .digest('hex'),
      ).toBe(hex);
      expect((await fs.stat(file)).nlink, 'hard-linked from the content store').toBe(2);
    }
    expect(files.map((f) => `sha256:${path.basename(f)}`).sort()).toEqual(
      [...manifestDigests, ...Object.keys(expectedBlobs)].sort(),
    );

    const record = parsePublicationRecord(
      await fs.readFile(path.join(root, 'publications/1.json')),
    );
    expect(record).toMatchObject({
      publication: 1,
      channel: 'stable',
      repositories: ['fedora/httpd'],
    });
    expect(record.newBlobs.length).toBe(files.length);
    // nothing left in staging
    expect(await fs.readdir(path.join(root, '.staging'))).toEqual([]);

    const metrics = await content.api('GET', '/metrics', undefined, { token: null });
    expect(metrics.body).toMatch(
      /flotilla_content_tasks_total\{[^}]*kind="sync"[^}]*state="completed"[^}]*\} 1/,
    );
    expect(metrics.body).toMatch(/flotilla_content_publication\{[^}]*\} 1/);
  });

  it('re-sync HEADs only; a second publish writes only the new blobs', async () => {
    upstream.addImage('app', 'v1', { layers: 2 });
    const first = await content.waitTask(
      (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
    );
    expect(first.state).toBe('completed');
    const blobGets = upstream.count('GET', '/blobs/');
    const manifestGets = upstream.count('GET', '/manifests/');

    const again = await content.waitTask(
      (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
    );
    expect(again.state).toBe('completed');
    expect(again.result).toMatchObject({
      changed: false,
      unchanged: 1,
      blobsFetched: 0,
      manifestsFetched: 0,
    });
    expect(upstream.count('GET', '/blobs/')).toBe(blobGets);
    expect(upstream.count('GET', '/manifests/')).toBe(manifestGets);

    const promoteAll = async (tag: string) => {
      for (const [from, to] of [
        ['candidate', 'testing'],
        ['testing', 'stable'],
      ]) {
        const r = await content.api('POST', '/api/v1/promotions', {
          repository: 'app',
          tags: [tag],
          from,
          to,
        });
        expect(r.status).toBe(201);
      }
    };
    await promoteAll('v1');
    const p1 = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', { channel: 'stable' })).body.task.id,
    );
    expect(p1.result.newBlobs).toBe(4); // manifest + config + 2 layers

    const v2 = upstream.addImage('app', 'v2', { layers: 1 });
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'app' })).body.task.id,
        )
      ).result.blobsFetched,
    ).toBe(2);
    await promoteAll('v2');
    const p2 = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', { channel: 'stable' })).body.task.id,
    );
    expect(p2.state).toBe('completed');
    expect(p2.result.publication).toBe(2);
    expect(p2.result.newBlobs).toBe(3);
    const record = parsePublicationRecord(
      await fs.readFile(path.join(content.service.parts.config.publishDir, 'publications/2.json')),
    );
    expect(record.newBlobs.sort()).toEqual([v2.digest, ...v2.blobs.map((b) => b.digest)].sort());

    // nothing changed: no new publication
    const p3 = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', { channel: 'stable' })).body.task.id,
    );
    expect(p3.result).toMatchObject({ changed: false, publication: 2 });
  });
});

import { rm } from 'node:fs/promises';
import path from 'node:path';
import { createLocalBus } from '@flotilla/bus';
import { createEvent } from '@flotilla/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { startStaticServer } from '../../../test/support/static-server.js';
import {
  writePublicationMarker,
  writePublishedTree,
  writeRawRepositoryMetadata,
} from '../../../test/support/tree.js';
import { ALL_MANIFESTS, removeDir, startCrane, tempDir, type Crane } from './harness.js';
import { createHttpSource } from '../src/index.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(
  env: Record<string, string> = {},
  extra: Parameters<typeof startCrane>[2] = {},
) {
  const root = await tempDir();
  cleanups.push(() => removeDir(root));
  return { root, start: async () => track(await startCrane(root, env, extra)) };
}

function track(crane: Crane): Crane {
  cleanups.push(() => crane.close());
  return crane;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('loading', () => {
  it('serves an empty catalog and fails /readyz until the first publication', async () => {
    const { root, start } = await setup();
    const crane = await start();
    expect((await crane.get('/readyz')).status).toBe(503);
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: [] });
    expect((await crane.get('/v2/')).status).toBe(200);
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    await crane.service.reload();
    expect((await crane.get('/readyz')).status).toBe(200);
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b'] });
  });

  it('does not read a publication whose marker has not moved', async () => {
    const { root, start } = await setup();
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const crane = await start();
    await writePublishedTree(root, {
      publication: 2,
      withoutMarker: true,
      repositories: [{ name: 'a/c', tags: { y: { kind: 'image' } } }],
    });
    await crane.service.reload();
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b'] });
  });

  it('never serves metadata written for a publication whose marker has not moved', async () => {
    const { root, start } = await setup();
    const first = await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const crane = await start();
    const second = await writePublishedTree(root, {
      publication: 2,
      withoutMarker: true,
      repositories: [
        { name: 'a/b', tags: { x: { kind: 'image' } } },
        { name: 'a/c', tags: { y: { kind: 'image' } } },
      ],
    });
    await crane.service.reload({ full: true });
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b'] });
    const before = await crane.get('/v2/a/b/manifests/x', { accept: ALL_MANIFESTS });
    expect(before.headers['docker-content-digest']).toBe(first.repositories['a/b']!.tags.x);
    await writePublicationMarker(root, 2);
    await crane.service.reload();
    const after = await crane.get('/v2/a/b/manifests/x', { accept: ALL_MANIFESTS });
    expect(after.headers['docker-content-digest']).toBe(second.repositories['a/b']!.tags.x);
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b', 'a/c'] });
  });

  it('reloads on poll', async () => {
    const { root, start } = await setup({ FLOTILLA_CRANE_POLL_INTERVAL: '50ms' });
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const crane = await start();
    const second = await writePublishedTree(root, {
      publication: 2,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' }, y: { kind: 'image' } } }],
    });
    await until(
      async () =>
        (await crane.get('/v2/a/b/tags/list')).json<{ tags: string[] }>().tags.length === 2,
      'poll',
    );
    const r = await crane.get('/v2/a/b/manifests/x', { accept: ALL_MANIFESTS });
    expect(r.headers['docker-content-digest']).toBe(second.repositories['a/b']!.tags.x);
    expect(crane.service.catalog().publication).toBe(2);
  });

  it('reloads on content.published from the bus', async () => {
    const bus = createLocalBus();
    cleanups.push(() => bus.close());
    const { root, start } = await setup({}, { bus });
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const crane = await start();
    await writePublishedTree(root, {
      publication: 2,
      repositories: [{ name: 'c/d', tags: { z: { kind: 'image' } } }],
    });
    await bus.publish(
      createEvent('content.published', 'content', {
        channel: 'stable',
        publication: 2,
        repositories: ['c/d'],
        newBlobs: 4,
      }),
    );
    await until(async () => (await crane.get('/v2/c/d/tags/list')).status === 200, 'event reload');
    // incremental: a/b was not in publication 2 and is still served
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b', 'c/d'] });
  });

  it('keeps the previous good copy of a repository whose metadata is corrupt, and counts it', async () => {
    const { root, start } = await setup();
    const first = await writePublishedTree(root, {
      publication: 1,
      repositories: [
        { name: 'a/b', tags: { x: { kind: 'image' } } },
        { name: 'a/c', tags: { x: { kind: 'image' } } },
      ],
    });
    const crane = await start();
    const second = await writePublishedTree(root, {
      publication: 2,
      repositories: [
        { name: 'a/b', tags: { x: { kind: 'image' } } },
        { name: 'a/c', tags: { x: { kind: 'image' } } },
      ],
    });
    await writeRawRepositoryMetadata(
      root,
      'a/b',
      '{"schemaVersion":1, "repository": "a/b", "tags": {',
    );
    await crane.service.reload();
    const b = await crane.get('/v2/a/b/manifests/x', { accept: ALL_MANIFESTS });
    expect(b.status).toBe(200);
    expect(b.headers['docker-content-digest']).toBe(first.repositories['a/b']!.tags.x);
    const c = await crane.get('/v2/a/c/manifests/x', { accept: ALL_MANIFESTS });
    expect(c.headers['docker-content-digest']).toBe(second.repositories['a/c']!.tags.x);
    expect((await crane.get('/metrics')).body.toString()).toMatch(
      /flotilla_crane_metadata_errors_total\{[^}]*kind="repository"[^}]*\} 1/,
    );

    // bytes that do not hash to their digest are refused the same way
    const tampered = structuredClone(second.repositories['a/c']!.metadata);
    const digest = tampered.tags.x!;
    tampered.manifests[digest]!.data = Buffer.from(
      ' '.repeat(tampered.manifests[digest]!.size),
    ).toString('base64');
    await writeRawRepositoryMetadata(root, 'a/c', JSON.stringify(tampered));
    await crane.service.reload({ full: true });
    const c2 = await crane.get('/v2/a/c/manifests/x', { accept: ALL_MANIFESTS });
    expect(c2.body.equals(second.repositories['a/c']!.manifests[digest]!.bytes)).toBe(true);
  });

  it('drops a repository whose metadata file is gone', async () => {
    const { root, start } = await setup();
    await writePublishedTree(root, {
      publication: 1,
      repositories: [
        { name: 'a/b', tags: { x: { kind: 'image' } } },
        { name: 'a/c', tags: { x: { kind: 'image' } } },
      ],
    });
    const crane = await start();
    await rm(path.join(root, 'repositories', 'a', 'c.json'));
    await writePublishedTree(root, {
      publication: 2,
      repositories: [{ name: 'a/b', tags: { y: { kind: 'image' } } }],
    });
    await crane.service.reload({ full: true });
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b'] });
  });

  it('loads over HTTP from the master copy, learning names from publication records', async () => {
    const root = await tempDir();
    cleanups.push(() => removeDir(root));
    const master = await startStaticServer(root);
    cleanups.push(() => master.stop());
    const t1 = await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: {} } }],
    });
    const crane = track(await startCrane(root, {}, { source: createHttpSource(`${master.url}/`) }));
    expect(
      (await crane.get('/v2/a/b/manifests/x', { accept: ALL_MANIFESTS })).headers[
        'docker-content-digest'
      ],
    ).toBe(t1.repositories['a/b']!.tags.x);
    await writePublishedTree(root, {
      publication: 2,
      repositories: [{ name: 'e/f', tags: { y: { kind: 'image' } } }],
    });
    await crane.service.reload();
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: ['a/b', 'e/f'] });
    expect(master.requests).toContain('GET /publications/2.json');
  });

  it('keeps serving the last catalog when the HTTP source fails', async () => {
    const root = await tempDir();
    cleanups.push(() => removeDir(root));
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const master = await startStaticServer(root);
    cleanups.push(() => master.stop());
    const crane = track(await startCrane(root, {}, { source: createHttpSource(master.url) }));
    master.setDown('reset');
    await expect(crane.service.reload({ full: true })).rejects.toThrow();
    expect((await crane.get('/v2/a/b/tags/list')).status).toBe(200);
    expect((await crane.get('/readyz')).status).toBe(200);
    expect((await crane.get('/metrics')).body.toString()).toMatch(
      /flotilla_crane_reloads_total\{[^}]*result="failed"[^}]*\} 1/,
    );
  });
});

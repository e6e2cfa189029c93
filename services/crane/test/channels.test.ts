import { createLocalBus } from '@flotilla/bus';
import { createEvent } from '@flotilla/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { startStaticServer } from '../../../test/support/static-server.js';
import { writePublishedTree } from '../../../test/support/tree.js';
import { ALL_MANIFESTS, removeDir, startCrane, tempDir, type Crane } from './harness.js';
import { createHttpSource, loadCraneConfig } from '../src/index.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function track(crane: Crane): Crane {
  cleanups.push(() => crane.close());
  return crane;
}

async function root(): Promise<string> {
  const dir = await tempDir();
  cleanups.push(() => removeDir(dir));
  return dir;
}

const tags = async (crane: Crane, name = 'app') =>
  (await crane.get(`/v2/${name}/tags/list`)).json<{ tags: string[] }>().tags;

describe('one crane per channel view', () => {
  it('serves stable by default and testing only where asked; another channel’s publication changes nothing', async () => {
    const dir = await root();
    const testing1 = await writePublishedTree(dir, {
      publication: 1,
      channel: 'testing',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { next: { kind: 'image' }, shared: { kind: 'image' } } }],
    });
    const stable2 = await writePublishedTree(dir, {
      publication: 2,
      channel: 'stable',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { current: {} } }],
    });
    const stable = track(await startCrane(dir));
    const testing = track(await startCrane(dir, { FLOTILLA_CRANE_CHANNEL: 'testing' }));

    expect(stable.service.catalog().publication).toBe(2);
    expect(await tags(stable)).toEqual(['current']);
    expect((await stable.get('/v2/app/manifests/next', { accept: ALL_MANIFESTS })).status).toBe(
      404,
    );
    const testingDigest = testing1.repositories.app!.tags.next!;
    expect(
      (await stable.get(`/v2/app/manifests/${testingDigest}`, { accept: ALL_MANIFESTS })).status,
    ).toBe(404);
    expect(testing.service.catalog().publication).toBe(1);
    expect(await tags(testing)).toEqual(['next', 'shared']);
    expect((await testing.get('/v2/app/manifests/current', { accept: ALL_MANIFESTS })).status).toBe(
      404,
    );

    const before = await stable.get('/v2/app/manifests/current', { accept: ALL_MANIFESTS });
    expect(before.headers['docker-content-digest']).toBe(stable2.repositories.app!.tags.current);

    // testing publishes again (publication 3, also a new repository)
    await writePublishedTree(dir, {
      publication: 3,
      channel: 'testing',
      layout: 'channels',
      repositories: [
        { name: 'app', tags: { newer: { kind: 'image' } } },
        { name: 'only/testing', tags: { x: { kind: 'image' } } },
      ],
    });
    await stable.service.reload();
    await testing.service.reload();
    const after = await stable.get('/v2/app/manifests/current', { accept: ALL_MANIFESTS });
    expect(after.body.equals(before.body)).toBe(true);
    expect(after.headers['docker-content-digest']).toBe(before.headers['docker-content-digest']);
    expect(stable.service.catalog().publication).toBe(2);
    expect((await stable.get('/v2/_catalog')).json()).toEqual({ repositories: ['app'] });
    expect(await tags(testing)).toEqual(['newer']);
    expect((await testing.get('/v2/_catalog')).json()).toEqual({
      repositories: ['app', 'only/testing'],
    });
    // a full re-read of the stable view still shows only stable
    await stable.service.reload({ full: true });
    expect(
      (await stable.get('/v2/app/manifests/current', { accept: ALL_MANIFESTS })).body.equals(
        before.body,
      ),
    ).toBe(true);
    expect((await stable.get('/v2/_catalog')).json()).toEqual({ repositories: ['app'] });
  });

  it('reads one channel view over HTTP, learning its names from that channel’s records only', async () => {
    const dir = await root();
    const master = await startStaticServer(dir);
    cleanups.push(() => master.stop());
    await writePublishedTree(dir, {
      publication: 1,
      channel: 'testing',
      layout: 'channels',
      repositories: [{ name: 't/repo', tags: { a: { kind: 'image' } } }],
    });
    await writePublishedTree(dir, {
      publication: 2,
      channel: 'stable',
      layout: 'channels',
      repositories: [{ name: 's/repo', tags: { b: { kind: 'image' } } }],
    });
    const stable = track(await startCrane(dir, {}, { source: createHttpSource(master.url) }));
    expect((await stable.get('/v2/_catalog')).json()).toEqual({ repositories: ['s/repo'] });
    expect(master.requests).not.toContain('GET /channels/stable/repositories/t/repo.json');
    const testing = track(
      await startCrane(
        dir,
        { FLOTILLA_CRANE_CHANNEL: 'testing' },
        { source: createHttpSource(master.url) },
      ),
    );
    expect((await testing.get('/v2/_catalog')).json()).toEqual({ repositories: ['t/repo'] });
  });

  it('still serves a tree written before channels, until the default channel has a view of its own', async () => {
    const dir = await root();
    const old = await writePublishedTree(dir, {
      publication: 1,
      repositories: [{ name: 'app', tags: { old: { kind: 'image' } } }],
    });
    const stable = track(await startCrane(dir));
    const testing = track(await startCrane(dir, { FLOTILLA_CRANE_CHANNEL: 'testing' }));
    expect(await tags(stable)).toEqual(['old']);
    expect((await stable.get('/readyz')).status).toBe(200);
    // an older tree has no testing view: that crane waits for one
    expect((await testing.get('/readyz')).status).toBe(503);
    expect((await testing.get('/v2/_catalog')).json()).toEqual({ repositories: [] });

    // content (upgraded) publishes testing: stable users still get the old view
    await writePublishedTree(dir, {
      publication: 2,
      channel: 'testing',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { t: { kind: 'image' } } }],
    });
    await stable.service.reload();
    await testing.service.reload();
    expect(await tags(stable)).toEqual(['old']);
    expect(
      (await stable.get('/v2/app/manifests/old', { accept: ALL_MANIFESTS })).headers[
        'docker-content-digest'
      ],
    ).toBe(old.repositories.app!.tags.old);
    expect(await tags(testing)).toEqual(['t']);

    // then stable: its own view replaces the old one whole
    await writePublishedTree(dir, {
      publication: 3,
      channel: 'stable',
      layout: 'channels',
      repositories: [{ name: 'new', tags: { s: { kind: 'image' } } }],
    });
    await stable.service.reload();
    expect(stable.service.catalog().publication).toBe(3);
    expect((await stable.get('/v2/_catalog')).json()).toEqual({ repositories: ['new'] });
  });

  it('reloads on its own channel’s content.published only', async () => {
    const dir = await root();
    await writePublishedTree(dir, {
      publication: 1,
      channel: 'stable',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { a: { kind: 'image' } } }],
    });
    const bus = createLocalBus({});
    cleanups.push(() => bus.close());
    const stable = track(await startCrane(dir, {}, { bus }));
    await writePublishedTree(dir, {
      publication: 2,
      channel: 'testing',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { t: { kind: 'image' } } }],
    });
    // an event of another channel: acknowledged without a reload (a reload would not fail either)
    await bus.publish(
      createEvent('content.published', 'content', {
        channel: 'testing',
        publication: 2,
        repositories: ['app'],
        newBlobs: 1,
      }),
    );
    await writePublishedTree(dir, {
      publication: 3,
      channel: 'stable',
      layout: 'channels',
      repositories: [{ name: 'app', tags: { b: { kind: 'image' } } }],
    });
    await bus.publish(
      createEvent('content.published', 'content', {
        channel: 'stable',
        publication: 3,
        repositories: ['app'],
        newBlobs: 1,
      }),
    );
    for (let i = 0; i < 200 && stable.service.catalog().publication !== 3; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await tags(stable)).toEqual(['b']);
    // the start-up load and the stable event's: the testing event read nothing
    const metrics = (await stable.get('/metrics')).body.toString();
    expect(metrics).toMatch(/flotilla_crane_reloads_total\{[^}]*result="loaded"[^}]*\} 2/);
    expect(metrics).not.toMatch(
      /flotilla_crane_reloads_total\{[^}]*result="(unchanged|failed)"[^}]*\} [1-9]/,
    );
  });

  it('refuses a channel name that is not one', () => {
    expect(() => loadCraneConfig({ FLOTILLA_CRANE_CHANNEL: '../stable' })).toThrow(
      /FLOTILLA_CRANE_CHANNEL/,
    );
    expect(loadCraneConfig({}).channel).toBe('stable');
  });
});

/**
 * Crane replicas over one published tree: two instances (each its own instance id, so each its
 * own reload queue on the shared bus) serve identical bytes, and both move to a new
 * publication, whether it is announced on the bus or found by the poll.
 */
import { createLocalBus } from '@flotilla/bus';
import { createEvent } from '@flotilla/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { writePublishedTree, type TreeSpec } from '../../../test/support/tree.js';
import { ALL_MANIFESTS, removeDir, startCrane, tempDir, type Crane } from './harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** What one crane serves: catalog, and per repository its tags and each tag's digest and bytes. */
async function served(crane: Crane): Promise<unknown> {
  const { repositories } = (await crane.get('/v2/_catalog')).json<{ repositories: string[] }>();
  const view: Record<string, unknown> = {};
  for (const name of repositories) {
    const { tags } = (await crane.get(`/v2/${name}/tags/list`)).json<{ tags: string[] }>();
    const manifests: Record<string, unknown> = {};
    for (const tag of tags) {
      const res = await crane.get(`/v2/${name}/manifests/${tag}`, { accept: ALL_MANIFESTS });
      manifests[tag] = {
        status: res.status,
        digest: res.headers['docker-content-digest'],
        bytes: res.body.toString('base64'),
      };
    }
    view[name] = { tags, manifests };
  }
  return { repositories, view };
}

function publication(n: number, extraTag: string): TreeSpec {
  return {
    publication: n,
    repositories: [
      { name: 'fedora/httpd', tags: { latest: { kind: 'image' }, [extraTag]: { kind: 'image' } } },
      { name: 'fedora/base', tags: { '40': { kind: 'image' } } },
    ],
  };
}

describe('crane replicas over one published tree', () => {
  async function twoCranes(
    root: string,
    env: Record<string, string>,
    extra: Parameters<typeof startCrane>[2] = {},
  ): Promise<Crane[]> {
    const cranes: Crane[] = [];
    for (let i = 0; i < 2; i++) {
      const crane = await startCrane(root, env, extra);
      cleanups.push(() => crane.close());
      cranes.push(crane);
    }
    return cranes;
  }

  it('serve the same bytes and both move to a new publication announced on the bus', async () => {
    const root = await tempDir('crane-replicas-');
    cleanups.push(() => removeDir(root));
    const bus = createLocalBus();
    cleanups.push(() => bus.close());
    const first = await writePublishedTree(root, publication(1, 'v1'));
    const cranes = await twoCranes(root, { FLOTILLA_CRANE_POLL_INTERVAL: '0' }, { bus });
    const [a, b] = cranes as [Crane, Crane];

    const view1 = await served(a);
    expect(await served(b)).toEqual(view1);
    expect(
      (view1 as { view: Record<string, { manifests: Record<string, { digest: string }> }> }).view[
        'fedora/httpd'
      ]?.manifests['v1']?.digest,
    ).toBe(first.repositories['fedora/httpd']!.tags['v1']);

    // announced on the bus: each replica has its own queue, so both reload
    const second = await writePublishedTree(root, publication(2, 'v2'));
    await bus.publish(
      createEvent('content.published', 'content', {
        channel: 'stable',
        publication: 2,
        repositories: ['fedora/httpd'],
        newBlobs: 2,
      }),
    );
    for (const crane of cranes)
      await until(async () => crane.service.catalog().publication === 2, 'publication 2');
    const view2 = await served(a);
    expect(await served(b)).toEqual(view2);
    const tags2 = (await b.get('/v2/fedora/httpd/tags/list')).json<{ tags: string[] }>().tags;
    expect(tags2.sort()).toEqual(Object.keys(second.repositories['fedora/httpd']!.tags).sort());
    const latest = await b.get('/v2/fedora/httpd/manifests/latest', { accept: ALL_MANIFESTS });
    expect(latest.headers['docker-content-digest']).toBe(
      second.repositories['fedora/httpd']!.tags['latest'],
    );
  });

  it('both find a new publication by their poll when no event announces it', async () => {
    const root = await tempDir('crane-replicas-');
    cleanups.push(() => removeDir(root));
    await writePublishedTree(root, publication(1, 'v1'));
    const cranes = await twoCranes(root, { FLOTILLA_CRANE_POLL_INTERVAL: '50ms' });
    const [a, b] = cranes as [Crane, Crane];
    expect(await served(b)).toEqual(await served(a));
    const third = await writePublishedTree(root, publication(3, 'v3'));
    for (const crane of cranes)
      await until(async () => crane.service.catalog().publication === 3, 'publication 3');
    const view3 = await served(a);
    expect(await served(b)).toEqual(view3);
    const v3 = await a.get('/v2/fedora/httpd/manifests/v3', { accept: ALL_MANIFESTS });
    expect(v3.headers['docker-content-digest']).toBe(
      third.repositories['fedora/httpd']!.tags['v3'],
    );
  });
});

/**
 * A sync whose upstream misbehaves fails as a whole: the task names the upstream URL, repository,
 * status and what was being fetched, and the channel keeps its version (all or nothing).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRegistry, sha256 } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

describe('sync failure semantics', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** An upstream with `up/app` tagged a and b, already synced once into `mirror/app`. */
  const setup = async () => {
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({ FLOTILLA_REGISTRY_URL: upstream.url });
    cleanups.push(() => content.stop());
    upstream.addImage('up/app', 'a', { layers: 1 });
    upstream.addImage('up/app', 'b', { layers: 1 });
    const first = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(first.state, JSON.stringify(first.error)).toBe('completed');
    return { upstream, content, before: await candidate(content) };
  };
  const sync = async (content: ContentHarness, body: Record<string, unknown>) => {
    const r = await content.api('POST', '/api/v1/syncs', { repository: 'mirror/app', ...body });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return content.waitTask(r.body.task.id, 30_000);
  };
  const candidate = async (content: ContentHarness) => {
    const repo = await content.api('GET', '/api/v1/repositories/mirror/app?channel=candidate');
    expect(repo.status).toBe(200);
    return {
      version: repo.body.channels[0].version as number,
      tags: repo.body.channels[0].tags as Record<string, string>,
    };
  };
  const expectUnchanged = async (
    content: ContentHarness,
    before: { version: number; tags: Record<string, string> },
  ) => {
    expect(await candidate(content)).toEqual(before);
  };

  it('404 NAME_UNKNOWN on the tag list (a typo) fails, names the upstream, and removes nothing in mirror mode', async () => {
    const { upstream, content, before } = await setup();
    for (const mirror of [true, false]) {
      const task = await sync(content, {
        upstream: { url: upstream.url, repository: 'up/ap' },
        mirror,
      });
      expect(task.state).toBe('failed');
      expect(task.error.code).toBe('upstream-failed');
      expect(task.error.message).toContain(`${upstream.url}/v2/up/ap/tags/list`);
      expect(task.error.message).toMatch(/up\/ap.*404 NAME_UNKNOWN/);
      expect(task.error.details.upstream).toMatchObject({
        repository: 'up/ap',
        status: 404,
        errorCode: 'NAME_UNKNOWN',
        fetching: 'tags',
      });
      await expectUnchanged(content, before);
    }
    // a repository content has never had: failed, and no repository appears
    const fresh = await content.api('POST', '/api/v1/syncs', {
      repository: 'never/seen',
      upstream: { url: upstream.url, repository: 'up/ap' },
    });
    expect((await content.waitTask(fresh.body.task.id)).state).toBe('failed');
    expect((await content.api('GET', '/api/v1/repositories/never/seen')).status).toBe(404);
  });

  it('401 and 403 fail with the status', async () => {
    const { upstream, content, before } = await setup();
    upstream.failNext('/v2/up/app/tags/list', 403, 1);
    const forbidden = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
    });
    expect(forbidden.state).toBe('failed');
    expect(forbidden.error.message).toMatch(
      /tags of up\/app at http:\/\/127\.0\.0\.1:\d+\/v2\/up\/app\/tags\/list.*answered 403/,
    );
    expect(forbidden.error.details.upstream).toMatchObject({ status: 403 });
    upstream.intercept = (method, path, res) => {
      if (!path.includes('/manifests/b')) return false;
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return true;
    };
    const unauthorized = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(unauthorized.state).toBe('failed');
    expect(unauthorized.error.message).toMatch(
      /\/v2\/up\/app\/manifests\/b: upstream answered 401/,
    );
    await expectUnchanged(content, before);
  });

  it('5xx after retries on a blob fails; the channel gains no version and a later sync completes', async () => {
    const { upstream, content, before } = await setup();
    const next = upstream.addImage('up/app', 'a', { layers: 1 });
    const layer = next.blobs[1]!.digest; // [config, layer]
    upstream.failNext(`/v2/up/app/blobs/${layer}`, 503, 4);
    const task = await sync(content, { upstream: { url: upstream.url, repository: 'up/app' } });
    expect(task.state).toBe('failed');
    expect(task.error.message).toContain(`blob ${layer}`);
    expect(task.error.message).toMatch(/answered 503/);
    expect(task.error.details.upstream).toMatchObject({
      status: 503,
      repository: 'up/app',
      fetching: `blob ${layer}`,
    });
    expect(upstream.count('GET', `/blobs/${layer}`)).toBe(4); // first try and three retries
    await expectUnchanged(content, before);

    const healed = await sync(content, { upstream: { url: upstream.url, repository: 'up/app' } });
    expect(healed.state, JSON.stringify(healed.error)).toBe('completed');
    expect((await candidate(content)).tags.a).toBe(next.digest);
  });

  it('a connection dropped while a blob is sent is retried, and the sync completes', async () => {
    const { upstream, content } = await setup();
    const next = upstream.addImage('up/app', 'a', { layers: 1 });
    let dropped = 0;
    upstream.intercept = (_m, path, res) => {
      if (!path.includes('/blobs/') || dropped >= 2) return false;
      dropped++;
      // headers and a few bytes, then the connection dies
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '4096' });
      res.write(Buffer.alloc(16));
      setTimeout(() => res.socket?.destroy(), 10);
      return true;
    };
    const task = await sync(content, { upstream: { url: upstream.url, repository: 'up/app' } });
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    expect(dropped).toBe(2);
    expect((await candidate(content)).tags.a).toBe(next.digest);
  });

  it('a malformed tag list or manifest fails', async () => {
    const { upstream, content, before } = await setup();
    upstream.intercept = (_m, path, res) => {
      if (!path.endsWith('/tags/list')) return false;
      res.writeHead(200, { 'content-type': 'application/json' }).end('<html>proxy error</html>');
      return true;
    };
    const badList = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(badList.state).toBe('failed');
    expect(badList.error.message).toMatch(/tags of up\/app at .*malformed body/);
    upstream.intercept = undefined;

    const garbage = Buffer.from('{"schemaVersion":2,"layers":"not a list"}');
    upstream.putManifest('up/app', 'b', garbage, 'application/vnd.oci.image.manifest.v1+json', []);
    const badManifest = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(badManifest.state).toBe('failed');
    expect(badManifest.error.message).toContain(`manifest ${sha256(garbage)} (malformed)`);
    await expectUnchanged(content, before);
  });

  it('a tag the tag list names whose manifest answers 404 fails; mirror mode keeps both tags', async () => {
    const { upstream, content, before } = await setup();
    upstream.tag('up/app', 'b', sha256('nowhere'));
    upstream.untag('up/app', 'a');
    const task = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(task.state).toBe('failed');
    expect(task.error.message).toMatch(
      /manifest b of up\/app at http:.*\/v2\/up\/app\/manifests\/b: upstream answered 404/,
    );
    expect(task.error.details.upstream).toMatchObject({ status: 404, fetching: 'manifest b' });
    await expectUnchanged(content, before);
  });

  it('a mirror sync that would empty a channel is refused unless allowEmpty says so', async () => {
    const { upstream, content, before } = await setup();
    upstream.untag('up/app', 'a');
    upstream.untag('up/app', 'b');
    const refused = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    expect(refused.state).toBe('failed');
    expect(refused.error.code).toBe('sync-would-empty');
    expect(refused.error.message).toMatch(/allowEmpty/);
    await expectUnchanged(content, before);
    // additive mode never removes anything, so it just completes without a change
    const additive = await sync(content, { upstream: { url: upstream.url, repository: 'up/app' } });
    expect(additive.result).toMatchObject({ changed: false });
    const allowed = await sync(content, {
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
      allowEmpty: true,
    });
    expect(allowed.state, JSON.stringify(allowed.error)).toBe('completed');
    expect(await candidate(content)).toEqual({ version: before.version + 1, tags: {} });
    const schema = await content.api('GET', '/api/v1/openapi.json');
    expect(JSON.stringify(schema.body.paths['/syncs'])).toContain('allowEmpty');
  });

  it('an upstream killed in the middle of a sync leaves the channel at its whole old version and fails the task', async () => {
    const { upstream, content, before } = await setup();
    for (const tag of ['a', 'b'])
      upstream.addImage('up/app', tag, { layers: 3, layerSize: 64 * 1024 });
    upstream.blobDelayMs = 300;
    const r = await content.api('POST', '/api/v1/syncs', {
      repository: 'mirror/app',
      upstream: { url: upstream.url, repository: 'up/app' },
      mirror: true,
    });
    for (let i = 0; i < 200 && upstream.count('GET', '/blobs/') === 0; i++)
      await new Promise((res) => setTimeout(res, 20));
    expect(upstream.count('GET', '/blobs/')).toBeGreaterThan(0);
    await upstream.stop();
    const task = await content.waitTask(r.body.task.id, 30_000);
    expect(task.state).toBe('failed');
    expect(task.error.message).toContain(upstream.url);
    expect(task.error.message).toContain('up/app');
    await expectUnchanged(content, before);
    const versions = await content.api('GET', '/api/v1/repositories/mirror/app?channel=candidate');
    expect(versions.body.versions.map((v: { number: number }) => v.number)).toEqual([
      before.version,
    ]);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { FakeRegistry } from './fake-registry.js';
import { startContent, type ContentHarness } from './harness.js';

describe('sync from V2 registries', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const setup = async (
    options: ConstructorParameters<typeof FakeRegistry>[0] = {},
    env: Record<string, string> = {},
  ) => {
    const upstream = await new FakeRegistry(options).start();
    cleanups.push(() => upstream.stop());
    const content = await startContent({ FLOTILLA_REGISTRY_URL: upstream.url, ...env });
    cleanups.push(() => content.stop());
    return { upstream, content };
  };
  const syncNow = async (content: ContentHarness, body: Record<string, unknown>) => {
    const r = await content.api('POST', '/api/v1/syncs', body);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return content.waitTask(r.body.task.id);
  };

  it('answers a Bearer challenge with a token from the realm (credentials given per sync)', async () => {
    const { upstream, content } = await setup({
      auth: 'bearer',
      username: 'bob',
      password: 's3cret',
    });
    upstream.addImage('quay/thing', '1.0');
    const task = await syncNow(content, {
      repository: 'mirror/thing',
      upstream: {
        url: upstream.url,
        repository: 'quay/thing',
        username: 'bob',
        password: 's3cret',
      },
    });
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    expect(task.params.upstream.password).toBe('***');
    expect(upstream.count('GET', '/token')).toBeGreaterThan(0);
    const repo = await content.api('GET', '/api/v1/repositories/mirror/thing?channel=candidate');
    expect(Object.keys(repo.body.channels[0].tags)).toEqual(['1.0']);
  });

  it('uses Basic auth with the configured registry credentials; wrong ones fail the task', async () => {
    const { upstream, content } = await setup(
      { auth: 'basic', username: 'admin', password: 'pw' },
      { FLOTILLA_REGISTRY_PASSWORD: 'pw' },
    );
    upstream.addImage('app', 'a');
    expect((await syncNow(content, { repository: 'app' })).state).toBe('completed');
    const bad = await syncNow(content, {
      repository: 'app',
      upstream: { url: upstream.url, username: 'admin', password: 'wrong' },
    });
    expect(bad.state).toBe('failed');
    expect(bad.error.message).toMatch(/401|authentication/);
  });

  it('follows Link pagination, applies include/exclude globs, and mirror mode drops vanished tags', async () => {
    const { upstream, content } = await setup();
    for (const t of ['1.0', '1.1', '2.0', '2.0-debug', 'latest'])
      upstream.addImage('app', t, { layers: 1 });
    const filtered = await syncNow(content, {
      repository: 'app',
      includeTags: ['1.*', '2.*'],
      excludeTags: ['*-debug'],
    });
    expect(filtered.state).toBe('completed');
    expect(upstream.count('GET', 'last=')).toBeGreaterThan(0);
    let repo = await content.api('GET', '/api/v1/repositories/app?channel=candidate');
    expect(Object.keys(repo.body.channels[0].tags).sort()).toEqual(['1.0', '1.1', '2.0']);

    const all = await syncNow(content, { repository: 'app' });
    expect(all.result.tags).toBe(5);
    upstream.untag('app', '1.0');
    await syncNow(content, { repository: 'app' });
    repo = await content.api('GET', '/api/v1/repositories/app?channel=candidate');
    expect(repo.body.channels[0].tags['1.0']).toBeDefined(); // additive keeps it
    const mirrored = await syncNow(content, { repository: 'app', mirror: true });
    expect(mirrored.result.removed).toBe(1);
    repo = await content.api('GET', '/api/v1/repositories/app?channel=candidate');
    expect(repo.body.channels[0].tags['1.0']).toBeUndefined();
  });

  it('a re-sync checks every tag with a HEAD over kept-alive connections', async () => {
    const { upstream, content } = await setup();
    for (let i = 0; i < 12; i++) upstream.addImage('app', `t${i}`, { layers: 1 });
    expect((await syncNow(content, { repository: 'app' })).state).toBe('completed');
    // The first re-sync may still find idle connections from the downloads; the second shows
    // whether the HEADs kept theirs (undici closes a connection after each HEAD unless asked not to).
    expect((await syncNow(content, { repository: 'app' })).result.unchanged).toBe(12);
    const heads = upstream.count('HEAD', '/manifests/');
    const connections = upstream.connections;
    const again = await syncNow(content, { repository: 'app' });
    expect(again.result.unchanged).toBe(12);
    expect(upstream.count('HEAD', '/manifests/') - heads).toBe(12);
    expect(upstream.connections - connections).toBeLessThan(4);
  });

  it('retries transient upstream failures and verifies digests', async () => {
    const { upstream, content } = await setup();
    const img = upstream.addImage('app', 'v1', { layers: 2 });
    upstream.failNext('/v2/app/blobs/', 503, 2);
    upstream.failNext('/v2/app/tags/list', 502, 1);
    const ok = await syncNow(content, { repository: 'app' });
    expect(ok.state, JSON.stringify(ok.error)).toBe('completed');
    expect(ok.result.blobsFetched).toBe(3);
    expect(ok.result.failures).toEqual([]);

    // a manifest whose bytes do not match the digest the registry claims is refused
    const evil = await new FakeRegistry().start();
    cleanups.push(() => evil.stop());
    const real = evil.addImage('app', 'v1');
    // serve other bytes under the tag's digest
    (evil as unknown as { repos: Map<string, { manifests: Map<string, unknown> }> }).repos
      .get('app')!
      .manifests.set(real.digest, {
        bytes: Buffer.from(`${real.bytes.toString()} `),
        mediaType: real.mediaType,
      });
    const bad = await syncNow(content, {
      repository: 'evil',
      upstream: { url: evil.url, repository: 'app' },
    });
    expect(bad.state).toBe('failed');
    expect(bad.error.message).toMatch(/hashed to/);
    expect((await content.api('GET', '/api/v1/repositories/evil?channel=candidate')).status).toBe(
      404,
    );
    expect(img.digest).toMatch(/^sha256:/);
  });
});

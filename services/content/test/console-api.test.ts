import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeRegistry } from './fake-registry.js';
import { ADMIN, startContent, type ContentHarness } from './harness.js';

/**
 * What the web console needs from content: a searchable, paginated repository list (a thousand
 * repositories), manifest summaries beside tags, the pages under /console, and the narrow proxy
 * to the mirrors API (here a loopback stand-in that records what reaches it).
 */
describe('content for the console: repository pages, manifest summaries, /console and its mirrors proxy', () => {
  let upstream: FakeRegistry;
  let content: ContentHarness;
  let mirrorsApi: Server;
  const seen: Array<{ method: string; url: string; authorization?: string; body: string }> = [];

  beforeAll(async () => {
    mirrorsApi = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          body,
        });
        res
          .writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ forwarded: req.url }));
      });
    });
    await new Promise<void>((resolve) => mirrorsApi.listen(0, '127.0.0.1', resolve));
    upstream = await new FakeRegistry().start();
    content = await startContent({
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_MIRRORS_URL: `http://127.0.0.1:${(mirrorsApi.address() as AddressInfo).port}`,
    });
    upstream.addImage('fedora/app', 'v1', { arch: 'arm64', layers: 2, layerSize: 1000 });
    upstream.addIndex('fedora/app', 'multi', ['amd64', 'ppc64le']);
    const task = await content.api('POST', '/api/v1/syncs', { repository: 'fedora/app' });
    expect((await content.waitTask(task.body.task.id)).state).toBe('completed');
    const channels = content.service.parts.channels;
    for (let i = 0; i < 1000; i += 1)
      await channels.ensureRepository(`load/repo-${String(i).padStart(4, '0')}`);
  }, 120_000);

  afterAll(async () => {
    await content?.stop();
    await upstream?.stop();
    await new Promise((resolve) => mirrorsApi?.close(resolve));
  });

  it('pages through a thousand repositories and searches them by name', async () => {
    const first = await content.api('GET', '/api/v1/repositories?limit=50');
    expect(first.status).toBe(200);
    expect(first.body.total).toBe(1001);
    expect(first.body.repositories).toHaveLength(50);
    expect(first.body.repositories[0].name).toBe('fedora/app');
    const later = await content.api('GET', '/api/v1/repositories?limit=50&offset=950');
    expect(later.body.repositories.map((r: { name: string }) => r.name)).toEqual(
      Array.from({ length: 50 }, (_, i) => `load/repo-${String(949 + i).padStart(4, '0')}`),
    );
    const search = await content.api('GET', '/api/v1/repositories?q=REPO-099&limit=50');
    expect(search.body.total).toBe(10);
    expect(
      search.body.repositories.every((r: { name: string }) => r.name.startsWith('load/repo-099')),
    ).toBe(true);
    // Regular-expression characters are text, not patterns.
    expect((await content.api('GET', '/api/v1/repositories?q=.*')).body.total).toBe(0);
    expect((await content.api('GET', '/api/v1/repositories')).body.repositories).toHaveLength(1001);
    expect((await content.api('GET', '/api/v1/repositories?limit=0')).status).toBe(400);
  });

  it('summarises each tagged manifest: size, platforms, created', async () => {
    const r = await content.api('GET', '/api/v1/repositories/fedora/app?details=true');
    expect(r.status).toBe(200);
    const tags = r.body.channels.find((c: { name: string }) => c.name === 'candidate')
      .tags as Record<string, string>;
    const image = r.body.manifests[tags.v1!];
    expect(image).toMatchObject({ kind: 'image', platforms: ['linux/arm64'] });
    expect(image.size).toBeGreaterThan(2000);
    const index = r.body.manifests[tags.multi!];
    expect(index).toMatchObject({ kind: 'index', platforms: ['linux/amd64', 'linux/ppc64le'] });
    expect(index.size).toBeGreaterThan(0);
    expect(
      (await content.api('GET', '/api/v1/repositories/fedora/app')).body.manifests,
    ).toBeUndefined();
  });

  it('serves the console pages with a strict policy', async () => {
    const page = await fetch(`${content.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('app/main.js');
    const bare = await fetch(`${content.url}/console`, { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/console/');
    expect(
      (await fetch(`${content.url}/console/static/console.css`)).headers.get('content-type'),
    ).toMatch(/text\/css/);
    // Missing files and escapes are the service's own 404 problem, never a 500.
    for (const path of [
      '/console/static/../../package.json',
      '/console/app/nope.js',
      '/console/static/%2e%2e/%2e%2e/package.json',
      '/console/app/',
    ]) {
      const r = await fetch(`${content.url}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.headers.get('content-type'), path).toMatch(/problem\+json/);
    }
  });

  it('forwards the mirrors admin API with the caller’s token, and nothing else', async () => {
    const post = await fetch(`${content.url}/console/mirrors-api/api/v1/mirrors`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{"name":"m"}',
    });
    expect(post.status).toBe(201);
    expect(seen.at(-1)).toEqual({
      method: 'POST',
      url: '/api/v1/mirrors',
      authorization: `Bearer ${ADMIN}`,
      body: '{"name":"m"}',
    });
    const crawl = await fetch(
      `${content.url}/console/mirrors-api/api/v1/mirrors/abc/crawls?limit=5`,
    );
    expect(crawl.status).toBe(200);
    expect(seen.at(-1)?.url).toBe('/api/v1/mirrors/abc/crawls?limit=5');
    const count = seen.length;
    for (const [method, path] of [
      ['GET', '/metrics'],
      ['GET', '/master/PUBLICATION'],
      ['DELETE', '/api/v1/mirrors'],
      ['GET', '/api/v1/mirrors/a/b/c'],
    ] as const) {
      const r = await fetch(`${content.url}/console/mirrors-api${path}`, { method });
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(404);
      expect(r.headers.get('content-type')).toMatch(/problem\+json/);
    }
    expect(seen.length).toBe(count);
  });
});

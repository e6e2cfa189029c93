/**
 * `flotilla serve mirrors` as a real process: the redirect thread owns the public port, answers
 * blob paths from the state the service pushes to it, and passes everything else through to
 * the service (services/mirrors/src/redirect-thread.ts). Checks that what changes in the
 * service (a mirror crawled, a new publication) reaches the thread, that the thread's counts
 * reach the service's metrics, that proxied requests keep their answers, and a clean stop.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flotillaEnv, freeServicePorts, startFlotilla, waitFor, type FlotillaProcess } from './support/flotilla.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { blobPath, writePublishedTree, type WrittenTree } from './support/tree.js';

const TOKEN = 'redirect-thread-token-0123456789';
const MIRROR_CLIENT = '198.51.100.7'; // documentation address, in the mirror's netblock (header only)

describe('mirrors redirect thread (serve mirrors)', () => {
  let work: string;
  let master: string;
  let first: WrittenTree;
  let mirror: StaticServer;
  let proc: FlotillaProcess;
  let base: string;

  const redirect = (digest: string, xff?: string) =>
    fetch(`${base}/pub/containers/${blobPath(digest)}`, { redirect: 'manual', headers: xff ? { 'x-forwarded-for': xff } : {} });
  const admin = (route: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${route}`, {
      ...init,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    });

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-redirect-thread-'));
    master = path.join(work, 'master');
    first = await writePublishedTree(master, { publication: 1, repositories: [{ name: 'fedora/httpd', tags: { '39': { kind: 'image' } } }] });
    await cp(master, path.join(work, 'mirror'), { recursive: true });
    mirror = await startStaticServer(path.join(work, 'mirror'));
    const ports = await freeServicePorts();
    base = `http://127.0.0.1:${ports.mirrors}`;
    const env = flotillaEnv({
      dataDir: path.join(work, 'data'),
      ports,
      extra: {
        FLOTILLA_PUBLISH_DIR: master,
        FLOTILLA_API_TOKEN: TOKEN,
        FLOTILLA_TRUSTED_PROXIES: '127.0.0.1',
        FLOTILLA_MIRRORS_CRAWL_INTERVAL: '0',
        FLOTILLA_MIRRORS_TREE_POLL_INTERVAL: '200ms',
      },
    });
    proc = await startFlotilla(['serve', 'mirrors'], env, ports);
  }, 90_000);

  afterAll(async () => {
    await proc?.stop();
    await mirror?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers blob paths itself and passes everything else to the service', async () => {
    const digest = first.newBlobs[0]!;
    const found = await redirect(digest);
    expect(found.status).toBe(302);
    expect(found.headers.get('x-flotilla-mirror')).toBe('master');
    expect(found.headers.get('location')).toBe(`${base}/master/${blobPath(digest)}`);

    const unknown = await redirect(`sha256:${'0'.repeat(64)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const malformed = await fetch(`${base}/pub/containers/blobs/sha256/zz/nothex`);
    expect(malformed.status).toBe(400);

    // through the service
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', service: 'mirrors' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const unauthorised = await fetch(`${base}/api/v1/mirrors`);
    expect(unauthorised.status).toBe(401);
    expect(unauthorised.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(unauthorised.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const list = await fetch(`${base}/mirrors`, { headers: { accept: 'application/json' } });
    expect(list.status).toBe(200);
    const head = await fetch(`${base}/mirrors`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    // the master tree, streamed through
    const served = await fetch(`${base}/master/${blobPath(digest)}`);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).length).toBeGreaterThan(0);
  });

  it('streams large bodies both ways through the relay, byte for byte', async () => {
    // 8 MiB from the master tree: far more chunks than the relay lets go unacknowledged
    const big = randomBytes(8 * 1024 * 1024);
    const hex = createHash('sha256').update(big).digest('hex');
    await mkdir(path.join(master, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true });
    await writeFile(path.join(master, 'blobs', 'sha256', hex.slice(0, 2), hex), big);
    const served = await fetch(`${base}/master/blobs/sha256/${hex.slice(0, 2)}/${hex}`);
    expect(served.status).toBe(200);
    expect(createHash('sha256').update(Buffer.from(await served.arrayBuffer())).digest('hex')).toBe(hex);

    // a client that leaves in the middle does not disturb the next one
    const controller = new AbortController();
    const partial = await fetch(`${base}/master/blobs/sha256/${hex.slice(0, 2)}/${hex}`, { signal: controller.signal });
    const reader = partial.body!.getReader();
    await reader.read();
    controller.abort();
    const again = await fetch(`${base}/master/blobs/sha256/${hex.slice(0, 2)}/${hex}`);
    expect(createHash('sha256').update(Buffer.from(await again.arrayBuffer())).digest('hex')).toBe(hex);

    // 3 MiB of request body: the service refuses it whole, after reading it through the relay
    const huge = await admin('/mirrors', { method: 'POST', body: JSON.stringify({ name: 'x'.repeat(3 * 1024 * 1024) }) });
    expect(huge.status).toBe(413);
    expect(huge.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('keeps the service’s answers to bad request bodies', async () => {
    const garbage = await admin('/mirrors', { method: 'POST', body: '{"name": ' });
    expect(garbage.status).toBe(400);
    expect(garbage.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const invalid = await admin('/mirrors', { method: 'POST', body: JSON.stringify({ name: 'x', baseUrl: 'ftp://nope', country: 'ZZ' }) });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { status: number }).status).toBe(400);
  });

  it('sends clients to a mirror once the service has crawled it, and never for a newer blob', async () => {
    const created = await admin('/mirrors', {
      method: 'POST',
      body: JSON.stringify({ name: 'thread-mirror', baseUrl: mirror.url, country: 'US', netblocks: ['198.51.100.0/24'], bandwidth: 100 }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const crawled = await admin(`/mirrors/${id}/crawl`, { method: 'POST' });
    expect(crawled.status).toBeLessThan(300);

    const digest = first.newBlobs[0]!;
    const chosen = await waitFor('the thread to choose the crawled mirror', async () => {
      const res = await redirect(digest, MIRROR_CLIENT);
      return res.headers.get('x-flotilla-mirror') === 'thread-mirror' ? res : undefined;
    }, 20_000, 100);
    expect(chosen.status).toBe(302);
    expect(chosen.headers.get('location')).toBe(`${mirror.url}/${blobPath(digest)}`);

    // A new publication the mirror has not been seen holding: the thread learns of the blob
    // (the tree poll) and must send the same client to the master, not to the mirror.
    const second = await writePublishedTree(master, { publication: 2, repositories: [{ name: 'fedora/nginx', tags: { '1': { kind: 'image' } } }] });
    const fresh = second.newBlobs[0]!;
    const answered = await waitFor('the thread to learn the new publication', async () => {
      const res = await redirect(fresh, MIRROR_CLIENT);
      return res.status === 302 ? res : undefined;
    }, 20_000, 100);
    expect(answered.headers.get('x-flotilla-mirror')).toBe('master');
  });

  it('hands its redirect counts to the service’s metrics', async () => {
    const digest = first.newBlobs[0]!;
    for (let i = 0; i < 5; i++) expect((await redirect(digest, MIRROR_CLIENT)).status).toBe(302);
    const count = await waitFor('the thread’s counts in /metrics', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('flotilla_mirrors_redirects_total{') && l.includes('mirror="thread-mirror"'));
      const value = line ? Number(line.split(' ').at(-1)) : 0;
      return value >= 5 ? value : undefined;
    }, 20_000, 200);
    expect(count).toBeGreaterThanOrEqual(5);
    const summary = await admin('/statistics');
    expect(summary.status).toBe(200);
    const body = (await summary.json()) as { byMirror: Record<string, number> };
    expect(body.byMirror['thread-mirror']).toBeGreaterThanOrEqual(5);
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await proc.stop();
    expect(code).toBe(0);
    expect(proc.output()).not.toMatch(/"level":(50|60)/);
  });
});

/**
 * The crawler against real HTTP servers on loopback serving copies of a published tree:
 * one current, one a publication behind, one missing a blob it claims, one not answering,
 * and one answering on IPv6 only.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchRaw, startMirrors, type Harness } from './support/mirrors.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { blobPath, writePublishedTree, type WrittenTree } from './support/tree.js';

describe('mirrors crawler', () => {
  let work: string;
  let master: string;
  let trees: WrittenTree[];
  const servers: Record<string, StaticServer> = {};
  let harness: Harness;
  const events: EventEnvelope[] = [];
  let missingDigest: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-'));
    master = path.join(work, 'master');
    trees = [];
    trees.push(
      await writePublishedTree(master, {
        publication: 1,
        repositories: [{ name: 'fedora/httpd', tags: { '39': { kind: 'image' } } }],
      }),
    );
    trees.push(
      await writePublishedTree(master, {
        publication: 2,
        repositories: [{ name: 'fedora/nginx', tags: { '1': { kind: 'image' } } }],
      }),
    );
    await cp(master, path.join(work, 'behind'), { recursive: true });
    trees.push(
      await writePublishedTree(master, {
        publication: 3,
        repositories: [{ name: 'fedora/redis', tags: { '7': {} } }],
      }),
    );
    await cp(master, path.join(work, 'current'), { recursive: true });
    await cp(master, path.join(work, 'missing'), { recursive: true });
    // The "missing" mirror claims publication 3 but lacks one of the blobs it added.
    missingDigest = trees[2]!.newBlobs[0]!;
    await rm(path.join(work, 'missing', blobPath(missingDigest)));

    servers.current = await startStaticServer(path.join(work, 'current'));
    servers.behind = await startStaticServer(path.join(work, 'behind'));
    servers.missing = await startStaticServer(path.join(work, 'missing'));
    servers.down = await startStaticServer(path.join(work, 'current'));
    servers.down.setDown('reset');
    servers.v6 = await startStaticServer(path.join(work, 'current'), { families: ['ipv6'] });

    harness = await startMirrors({ publishDir: master });
    await harness.bus.subscribe(
      `test.crawled.${process.pid}.${Date.now()}`,
      ['mirrors.crawled'],
      async (event) => {
        events.push(event);
      },
    );
  });

  afterAll(async () => {
    await harness?.stop();
    await Promise.all(Object.values(servers).map((s) => s.stop()));
    await rm(work, { recursive: true, force: true });
  });

  async function register(name: string): Promise<string> {
    const mirror = await harness.client.add({
      name,
      baseUrl: servers[name]!.urls.ipv4 ?? servers[name]!.url,
      country: 'DE',
    });
    return mirror.id;
  }

  it('records the highest fully verified publication per mirror', async () => {
    expect(harness.service.index.marker).toBe(3);
    const ids: Record<string, string> = {};
    for (const name of ['current', 'behind', 'missing', 'down', 'v6'])
      ids[name] = await register(name);

    const current = await harness.client.crawl(ids.current!);
    expect(current.crawl).toMatchObject({
      status: 'ok',
      claimedPublication: 3,
      verifiedPublication: 3,
      families: ['ipv4'],
    });
    expect(current.mirror).toMatchObject({
      publication: 3,
      upToDate: true,
      consecutiveFailures: 0,
      autoDisabled: false,
    });
    const allBlobs = trees.flatMap((t) => t.newBlobs);
    expect(current.crawl.checked).toBe(allBlobs.length);
    for (const digest of allBlobs)
      expect(servers.current!.requests).toContain(`HEAD /${blobPath(digest)}`);

    const behind = await harness.client.crawl(ids.behind!);
    expect(behind.crawl).toMatchObject({
      status: 'ok',
      claimedPublication: 2,
      verifiedPublication: 2,
    });
    expect(behind.mirror).toMatchObject({ publication: 2, upToDate: false });

    const missing = await harness.client.crawl(ids.missing!);
    expect(missing.crawl).toMatchObject({
      status: 'incomplete',
      claimedPublication: 3,
      verifiedPublication: 2,
    });
    expect(missing.crawl.failures).toEqual([
      { publication: 3, digest: missingDigest, reason: 'HTTP 404' },
    ]);
    expect(missing.mirror).toMatchObject({
      publication: 2,
      consecutiveFailures: 1,
      lastCrawlStatus: 'incomplete',
    });

    const down = await harness.client.crawl(ids.down!);
    expect(down.crawl).toMatchObject({
      status: 'unreachable',
      verifiedPublication: null,
      claimedPublication: null,
    });
    expect(down.mirror).toMatchObject({
      publication: null,
      consecutiveFailures: 1,
      autoDisabled: false,
    });

    const v6 = await harness.client.crawl(ids.v6!);
    expect(v6.crawl).toMatchObject({ status: 'ok', verifiedPublication: 3, families: ['ipv6'] });
    expect(v6.mirror?.learnedFamilies).toEqual(['ipv6']);
  });

  it('verifies only publications newer than the recorded one on the next crawl', async () => {
    const [current] = (await harness.client.list()).filter((m) => m.name === 'current');
    const before = servers.current!.requests.length;
    const again = await harness.client.crawl(current!.id);
    expect(again.crawl).toMatchObject({
      status: 'ok',
      previousPublication: 3,
      verifiedPublication: 3,
      checked: 0,
    });
    expect(servers.current!.requests.slice(before)).toEqual(['GET /PUBLICATION']);
  });

  it('auto-disables after 4 consecutive failed crawls and re-enables after a good one', async () => {
    const down = (await harness.client.list()).find((m) => m.name === 'down')!;
    for (let i = 2; i <= 3; i += 1) {
      const r = await harness.client.crawl(down.id);
      expect(r.mirror).toMatchObject({ consecutiveFailures: i, autoDisabled: false });
    }
    const fourth = await harness.client.crawl(down.id);
    expect(fourth.mirror).toMatchObject({
      consecutiveFailures: 4,
      autoDisabled: true,
      enabled: true,
    });
    const fifth = await harness.client.crawl(down.id);
    expect(fifth.mirror).toMatchObject({ consecutiveFailures: 5, autoDisabled: true });

    servers.down!.setDown(false);
    const back = await harness.client.crawl(down.id);
    expect(back.crawl.status).toBe('ok');
    expect(back.mirror).toMatchObject({
      consecutiveFailures: 0,
      autoDisabled: false,
      publication: 3,
      upToDate: true,
    });

    const log = await harness.client.crawls(down.id, 10);
    expect(log.map((c) => c.status)).toEqual([
      'ok',
      'unreachable',
      'unreachable',
      'unreachable',
      'unreachable',
      'unreachable',
    ]);
  });

  it('emits mirrors.crawled through the outbox', async () => {
    for (
      let i = 0;
      i < 100 && !events.some((e) => (e.data as { mirror: string }).mirror === 'missing');
      i += 1
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const byMirror = new Map(events.map((e) => [(e.data as { mirror: string }).mirror, e.data]));
    expect(byMirror.get('current')).toEqual({ mirror: 'current', publication: 3, upToDate: true });
    expect(byMirror.get('missing')).toEqual({ mirror: 'missing', publication: 2, upToDate: false });
    expect(events.every((e) => e.source === 'mirrors' && e.type === 'mirrors.crawled')).toBe(true);
  });

  it('crawls every enabled mirror at once with crawlAll, and skips disabled ones', async () => {
    const behind = (await harness.client.list()).find((m) => m.name === 'behind')!;
    await harness.client.update(behind.id, { enabled: false });
    const records = await harness.service.crawler.crawlAll();
    expect(records.map((r) => r.mirror).sort()).toEqual(['current', 'down', 'missing', 'v6']);
  });
});

describe('mirrors crawler sampling', () => {
  it('checks a random sample of a large publication', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-sample-'));
    const master = path.join(work, 'master');
    const tree = await writePublishedTree(master, {
      publication: 1,
      repositories: [{ name: 'fedora/big', tags: { a: {}, b: {} } }],
    });
    const server = await startStaticServer(master);
    const harness = await startMirrors({
      publishDir: master,
      env: { FLOTILLA_MIRRORS_CRAWL_SAMPLE: '3' },
    });
    try {
      expect(tree.newBlobs.length).toBeGreaterThan(3);
      const mirror = await harness.client.add({ name: 'm', baseUrl: server.url, country: 'US' });
      const result = await harness.client.crawl(mirror.id);
      expect(result.crawl).toMatchObject({ status: 'ok', checked: 3, verifiedPublication: 1 });
      const heads = server.requests.filter((r) => r.startsWith('HEAD '));
      expect(heads).toHaveLength(3);
      expect(new Set(heads).size).toBe(3);
    } finally {
      await harness.stop();
      await server.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('checks the blobs of a publication over a few kept-alive connections', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-keepalive-'));
    const master = path.join(work, 'master');
    const tree = await writePublishedTree(master, {
      publication: 1,
      repositories: [{ name: 'fedora/many', tags: { a: {}, b: {}, c: {}, d: {}, e: {}, f: {} } }],
    });
    const server = await startStaticServer(master);
    const harness = await startMirrors({ publishDir: master });
    try {
      expect(tree.newBlobs.length).toBeGreaterThanOrEqual(12);
      const mirror = await harness.client.add({ name: 'm', baseUrl: server.url, country: 'US' });
      const result = await harness.client.crawl(mirror.id);
      expect(result.crawl).toMatchObject({
        status: 'ok',
        checked: tree.newBlobs.length,
        verifiedPublication: 1,
      });
      expect(server.requests.filter((r) => r.startsWith('HEAD '))).toHaveLength(
        tree.newBlobs.length,
      );
      // 4 checks at a time, plus the reads of PUBLICATION: without keep-alive, one per HEAD
      expect(server.connections).toBeLessThanOrEqual(8);
    } finally {
      await harness.stop();
      await server.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('mirrors on content.published and with a remote master', () => {
  it('refreshes the index and crawls when a publication is announced', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-event-'));
    const master = path.join(work, 'master');
    await writePublishedTree(master, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const server = await startStaticServer(master);
    const harness = await startMirrors({ publishDir: master });
    try {
      const mirror = await harness.client.add({ name: 'live', baseUrl: server.url, country: 'US' });
      expect((await harness.client.crawl(mirror.id)).crawl.verifiedPublication).toBe(1);
      const second = await writePublishedTree(master, {
        publication: 2,
        repositories: [{ name: 'a/c', tags: { y: { kind: 'image' } } }],
      });
      await harness.bus.publish(
        createEvent('content.published', 'content', {
          channel: 'stable',
          publication: 2,
          repositories: ['a/c'],
          newBlobs: second.newBlobs.length,
        }),
      );
      let view = await harness.client.get(mirror.id);
      for (let i = 0; i < 100 && view.publication !== 2; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        view = await harness.client.get(mirror.id);
      }
      expect(harness.service.index.marker).toBe(2);
      expect(view).toMatchObject({ publication: 2, upToDate: true });
      for (const digest of second.newBlobs)
        expect(server.requests).toContain(`HEAD /${blobPath(digest)}`);
    } finally {
      await harness.stop();
      await server.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('reads the tree and blob sizes from the master URL when told to', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-remote-'));
    const masterDir = path.join(work, 'master');
    await writePublishedTree(masterDir, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    await writePublishedTree(masterDir, {
      publication: 3,
      repositories: [{ name: 'a/c', tags: { x: { kind: 'image' } } }],
    });
    const masterServer = await startStaticServer(masterDir);
    const mirrorServer = await startStaticServer(masterDir);
    const harness = await startMirrors({
      publishDir: path.join(work, 'absent'),
      env: {
        FLOTILLA_MIRRORS_TREE_SOURCE: 'master-url',
        FLOTILLA_MIRRORS_MASTER_URL: masterServer.url,
        FLOTILLA_MIRRORS_SERVE_MASTER: 'false',
      },
    });
    try {
      expect(harness.service.index.marker).toBe(3);
      expect(masterServer.requests).toContain('HEAD /publications/2.json');
      const mirror = await harness.client.add({
        name: 'remote',
        baseUrl: mirrorServer.url,
        country: 'US',
      });
      const result = await harness.client.crawl(mirror.id);
      expect(result.crawl).toMatchObject({ status: 'ok', verifiedPublication: 3 });
      expect(masterServer.requests.some((r) => r.startsWith('HEAD /blobs/sha256/'))).toBe(true);
      const master = await fetchRaw(`${harness.url}/master/PUBLICATION`);
      expect(master.status).toBe(404);
    } finally {
      await harness.stop();
      await masterServer.stop();
      await mirrorServer.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('mirrors crawler timeouts', () => {
  it('gives up on a mirror that accepts connections but never answers', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-hang-'));
    await writePublishedTree(work, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const server = await startStaticServer(work);
    server.setDown('hang');
    const harness = await startMirrors({
      publishDir: work,
      env: { FLOTILLA_MIRRORS_CRAWL_TIMEOUT: '300ms' },
    });
    try {
      const mirror = await harness.client.add({
        name: 'hanging',
        baseUrl: server.url,
        country: 'US',
      });
      const result = await harness.client.crawl(mirror.id);
      expect(result.crawl.status).toBe('unreachable');
      expect(result.crawl.error).toMatch(/^ipv4: /);
      expect(server.requests).toEqual(['GET /PUBLICATION']);
    } finally {
      await harness.stop();
      await server.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

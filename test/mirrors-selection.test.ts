/**
 * Selection through the running redirector, with clients given by a trusted proxy's
 * X-Forwarded-For. Client addresses are documentation addresses (192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) in headers only; GeoIP is injected, since
 * no real database places them.
 */
import { mkdir, mkdtemp, rm, symlink, cp } from 'node:fs/promises';
import { Agent, get as httpGet } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GeoLookup } from '../services/redirector/src/geo.js';
import { createAddressSet, parseCidr, type ParsedAddress } from '@flotilla/kit';
import { fetchRaw, seeded, startMirrors, type Harness } from './support/mirrors.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { blobPath, writePublishedTree, type WrittenTree } from './support/tree.js';

const GEO: Array<[string, string, number | null]> = [
  ['192.0.2.0/25', 'DE', 64500],
  ['192.0.2.128/25', 'DE', null],
  ['198.51.100.0/24', 'FR', null],
  ['203.0.113.0/26', 'AR', null],
  ['203.0.113.64/26', 'MX', null],
  ['203.0.113.128/26', 'CA', null],
  ['203.0.113.192/26', 'KE', null],
  ['2001:db8::/32', 'DE', null],
];

const fakeGeo: GeoLookup = {
  lookup(address: ParsedAddress) {
    for (const [cidr, country, asn] of GEO) {
      if (createAddressSet([parseCidr(cidr)!]).contains(address)) return { country, asn };
    }
    return { country: null, asn: null };
  },
};

describe('mirror selection through trusted X-Forwarded-For', () => {
  let work: string;
  let master: string;
  let trees: WrittenTree[];
  let server: StaticServer;
  let harness: Harness;
  let blob1: string;
  let blob2: string;

  const both = ['ipv4', 'ipv6'] as Array<'ipv4' | 'ipv6'>;
  const mirrors = [
    {
      name: 'campus',
      netblocks: ['198.51.100.0/24'],
      country: 'FR',
      private: true,
      families: both,
    },
    {
      name: 'campus-lab',
      netblocks: ['198.51.100.128/25'],
      country: 'FR',
      private: true,
      families: both,
    },
    { name: 'isp', asn: 64500, country: 'DE', private: true, families: both },
    { name: 'de-big', country: 'DE', bandwidth: 300, families: both },
    { name: 'de-small', country: 'DE', bandwidth: 100, families: both },
    { name: 'de-v4', country: 'DE', bandwidth: 100, families: ['ipv4' as const] },
    { name: 'at', country: 'AT', families: both },
    { name: 'br', country: 'BR', families: both },
    { name: 'br-behind', country: 'BR', bandwidth: 10_000, families: both, tree: 'old' },
    { name: 'us-for-mx', country: 'US', countriesAllowed: ['MX'], families: both },
  ];

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-select-'));
    master = path.join(work, 'master');
    trees = [];
    trees.push(
      await writePublishedTree(master, {
        publication: 1,
        repositories: [{ name: 'fedora/a', tags: { '1': { kind: 'image' } } }],
      }),
    );
    await cp(master, path.join(work, 'old'), { recursive: true });
    trees.push(
      await writePublishedTree(master, {
        publication: 2,
        repositories: [{ name: 'fedora/b', tags: { '1': { kind: 'image' } } }],
      }),
    );
    blob1 = trees[0]!.newBlobs[0]!;
    blob2 = trees[1]!.newBlobs[0]!;
    // One static server carries every mirror, each under its own path.
    const root = path.join(work, 'served');
    await mkdir(root);
    for (const m of mirrors)
      await symlink(m.tree === 'old' ? path.join(work, 'old') : master, path.join(root, m.name));
    server = await startStaticServer(root);
    harness = await startMirrors({
      publishDir: master,
      geo: fakeGeo,
      random: seeded(7),
      env: { FLOTILLA_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8' },
    });
    for (const { tree: _tree, ...m } of mirrors) {
      const added = await harness.client.add({ ...m, baseUrl: `${server.url}/${m.name}` });
      const crawled = await harness.client.crawl(added.id);
      expect(crawled.crawl.status).toBe('ok');
    }
  });

  afterAll(async () => {
    await harness?.stop();
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  async function redirect(client: string, digest = blob2, method: 'GET' | 'HEAD' = 'GET') {
    const res = await fetchRaw(`${harness.url}/pub/containers/${blobPath(digest)}`, {
      method,
      headers: { 'x-forwarded-for': client },
    });
    expect(res.status).toBe(302);
    const mirror = String(res.headers['x-flotilla-mirror']);
    expect(res.headers.location).toBe(
      mirror === 'master'
        ? `http://master.test/master/${blobPath(digest)}`
        : `${server.url}/${mirror}/${blobPath(digest)}`,
    );
    return mirror;
  }

  async function tally(client: string, n: number, digest = blob2): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, () => redirect(client, digest)),
      );
      for (const name of batch) counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  }

  async function listFor(client: string, extra = '') {
    const res = await fetchRaw(`${harness.url}/mirrorlist?path=${blobPath(blob2)}${extra}`, {
      headers: { 'x-forwarded-for': client, accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    return JSON.parse(res.text) as {
      publication: number;
      client: { address: string; family: string; country: string | null };
      mirrors: Array<{ name: string; url: string; tier: string }>;
    };
  }

  it('netblock tier: the most specific block first, private mirrors included', async () => {
    expect(await redirect('198.51.100.200')).toBe('campus-lab');
    expect(await redirect('198.51.100.20')).toBe('campus');
    const list = await listFor('198.51.100.200');
    expect(list.mirrors.slice(0, 2)).toMatchObject([
      { name: 'campus-lab', tier: 'netblock' },
      { name: 'campus', tier: 'netblock' },
    ]);
    expect(list.mirrors.at(-1)).toMatchObject({ name: 'master', tier: 'master' });
  });

  it('takes the right-most untrusted X-Forwarded-For entry', async () => {
    expect(await redirect('192.0.2.10, 198.51.100.200')).toBe('campus-lab');
    expect(await redirect('198.51.100.200, 10.1.2.3')).toBe('campus-lab');
    expect((await listFor('203.0.113.5, 198.51.100.20, 10.9.9.9')).client.address).toBe(
      '198.51.100.20',
    );
    expect((await listFor('not-an-address')).client.address).toBe('127.0.0.1');
  });

  it('ASN tier, then country, continent, global and master', async () => {
    expect(await redirect('192.0.2.10')).toBe('isp');
    expect(['de-big', 'de-small', 'de-v4']).toContain(await redirect('192.0.2.200'));
    expect((await listFor('192.0.2.200')).mirrors[0]!.tier).toBe('country');
    // Argentina: no mirror in the country; Brazil is on the same continent.
    expect(await redirect('203.0.113.10')).toBe('br');
    expect((await listFor('203.0.113.10')).mirrors[0]).toMatchObject({
      name: 'br',
      tier: 'continent',
    });
    // Kenya: nothing in Africa, so every public unrestricted mirror.
    const kenya = await listFor('203.0.113.200');
    expect(kenya.mirrors[0]!.tier).toBe('global');
    expect(kenya.mirrors.map((m) => m.name).sort()).toEqual([
      'at',
      'br',
      'de-big',
      'de-small',
      'de-v4',
      'master',
    ]);
    // A blob from a publication no mirror has verified yet goes to the master.
    const third = await writePublishedTree(master, {
      publication: 3,
      repositories: [{ name: 'fedora/c', tags: { '1': { kind: 'image' } } }],
    });
    await harness.service.refresh();
    expect(await redirect('192.0.2.200', third.newBlobs[0]!)).toBe('master');
  });

  it('never sends a blob to a mirror that has not verified its publication', async () => {
    const brazil = await tally('203.0.113.10', 200, blob2);
    expect(brazil).toEqual({ br: 200 });
    // br-behind holds publication 1 and has 100× the bandwidth: it wins most of those.
    const older = await tally('203.0.113.10', 200, blob1);
    expect(older['br-behind']).toBeGreaterThan(180);
  });

  it('private mirrors serve only their own netblocks and ASN', async () => {
    const counts = await tally('2001:db8::5', 200);
    expect(Object.keys(counts).sort()).toEqual(['de-big', 'de-small']);
    const fr = await listFor('198.51.100.20');
    expect(fr.mirrors.filter((m) => m.name === 'isp')).toEqual([]);
    const de = await listFor('192.0.2.200');
    expect(de.mirrors.map((m) => m.name)).not.toContain('campus');
    expect(de.mirrors.map((m) => m.name)).not.toContain('isp');
  });

  it('respects countries allowed', async () => {
    expect((await listFor('203.0.113.70')).mirrors[0]).toMatchObject({
      name: 'us-for-mx',
      tier: 'continent',
    });
    const canada = await listFor('203.0.113.130');
    expect(canada.mirrors.map((m) => m.name)).not.toContain('us-for-mx');
    expect(canada.mirrors[0]!.tier).toBe('global');
    expect((await listFor('203.0.113.130', '&country=MX')).mirrors[0]!.name).toBe('us-for-mx');
  });

  it('never sends IPv6 clients to IPv4-only mirrors', async () => {
    const counts = await tally('2001:db8::1234', 300);
    expect(counts['de-v4']).toBeUndefined();
    const list = await listFor('2001:db8::1');
    expect(list.client.family).toBe('ipv6');
    expect(list.mirrors.map((m) => m.name)).not.toContain('de-v4');
    expect((await listFor('192.0.2.200')).mirrors.map((m) => m.name)).toContain('de-v4');
  });

  it('weights mirrors by bandwidth within a tier', async () => {
    // de-big 300, de-small 100, de-v4 100 → expected 60 %, 20 %, 20 %; binomial sd over 2000 ≈ 22 and 18.
    const counts = await tally('192.0.2.200', 2000);
    expect(Object.keys(counts).sort()).toEqual(['de-big', 'de-small', 'de-v4']);
    expect(counts['de-big']).toBeGreaterThan(1100);
    expect(counts['de-big']).toBeLessThan(1300);
    expect(counts['de-small']).toBeGreaterThan(300);
    expect(counts['de-small']).toBeLessThan(500);
    expect(counts['de-v4']).toBeGreaterThan(300);
    expect(counts['de-v4']).toBeLessThan(500);
  });

  it('answers HEAD and the text mirror list', async () => {
    expect(await redirect('198.51.100.200', blob2, 'HEAD')).toBe('campus-lab');
    const text = await fetchRaw(
      `${harness.url}/mirrorlist?path=/pub/containers/${blobPath(blob2)}`,
      {
        headers: { 'x-forwarded-for': '198.51.100.200' },
      },
    );
    expect(text.status).toBe(200);
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    const lines = text.text.trim().split('\n');
    expect(lines[0]).toMatch(
      /^# path=blobs\/sha256\/.* publication=2 client=198\.51\.100\.200 country=FR/,
    );
    expect(lines[1]).toBe(`${server.url}/campus-lab/${blobPath(blob2)}`);
    expect(lines.at(-1)).toBe(`http://master.test/master/${blobPath(blob2)}`);
  });

  it('counts redirects per mirror and country', async () => {
    const stats = await harness.client.statistics();
    expect(stats.redirects).toBeGreaterThan(2000);
    expect(stats.byMirror['campus-lab']).toBeGreaterThanOrEqual(4);
    expect(stats.byCountry.DE).toBeGreaterThan(2000);
    const metrics = await fetchRaw(`${harness.url}/metrics`);
    expect(metrics.text).toMatch(
      /flotilla_mirrors_redirects_total\{[^}]*mirror="campus-lab"[^}]*country="FR"[^}]*\} \d+/,
    );
  });

  it('on one keep-alive connection, follows each change of client, publication and mirrors', async () => {
    // The redirector reuses its tier decision across a connection's requests; it must notice
    // every change. One socket for all requests here, as a proxy or a busy client has.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const viaOneSocket = (client: string, digest: string) =>
      new Promise<string>((resolve, reject) => {
        const req = httpGet(
          `${harness.url}/pub/containers/${blobPath(digest)}`,
          { agent, headers: { 'x-forwarded-for': client } },
          (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () =>
              res.statusCode === 302
                ? resolve(String(res.headers['x-flotilla-mirror']))
                : reject(new Error(`status ${res.statusCode}`)),
            );
          },
        );
        req.on('error', reject);
      });
    try {
      expect(await viaOneSocket('192.0.2.10', blob2)).toBe('isp');
      expect(['de-big', 'de-small', 'de-v4']).toContain(await viaOneSocket('192.0.2.200', blob2));
      expect(await viaOneSocket('192.0.2.10', blob2)).toBe('isp');
      expect(await viaOneSocket('203.0.113.10', blob2)).toBe('br');
      const older: Record<string, number> = {};
      for (let i = 0; i < 50; i += 1) {
        const name = await viaOneSocket('203.0.113.10', blob1);
        older[name] = (older[name] ?? 0) + 1;
      }
      expect(older['br-behind']).toBeGreaterThan(40);
      expect(await viaOneSocket('203.0.113.10', blob2)).toBe('br');
      // A new snapshot: the ASN mirror disabled, then enabled again.
      const isp = (await harness.client.list()).find((m) => m.name === 'isp')!;
      await harness.client.update(isp.id, { enabled: false });
      expect(['de-big', 'de-small', 'de-v4']).toContain(await viaOneSocket('192.0.2.10', blob2));
      await harness.client.update(isp.id, { enabled: true });
      await harness.client.crawl(isp.id);
      expect(await viaOneSocket('192.0.2.10', blob2)).toBe('isp');
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});

describe('untrusted peers', () => {
  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-untrusted-'));
    const tree = await writePublishedTree(work, {
      publication: 1,
      repositories: [{ name: 'x/y', tags: { a: { kind: 'image' } } }],
    });
    const harness = await startMirrors({
      publishDir: work,
      geo: fakeGeo,
      env: { FLOTILLA_TRUSTED_PROXIES: '10.0.0.0/8' },
    });
    try {
      const res = await fetchRaw(`${harness.url}/mirrorlist?path=${blobPath(tree.newBlobs[0]!)}`, {
        headers: { 'x-forwarded-for': '198.51.100.200', accept: 'application/json' },
      });
      expect(JSON.parse(res.text).client.address).toBe('127.0.0.1');
    } finally {
      await harness.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

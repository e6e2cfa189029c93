/**
 * The mirrors admin API (validation, auth, problem JSON), the public list, the master tree,
 * bad redirect paths (400/404, never 500), and the real GeoIP database read offline.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledCountryDatabase, openGeoLookup } from '../services/redirector/src/geo.js';
import { escapeHtml } from '../services/mirrors/src/routes/public-list.js';
import { parseAddress } from '@flotilla/kit';
import { fetchRaw, startMirrors, TEST_TOKEN, type Harness } from './support/mirrors.js';
import { blobPath, writePublishedTree, type WrittenTree } from './support/tree.js';

describe('mirrors admin API and public endpoints', () => {
  let work: string;
  let harness: Harness;
  let tree: WrittenTree;
  const auth = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mirrors-api-'));
    tree = await writePublishedTree(work, {
      publication: 1,
      repositories: [{ name: 'fedora/httpd', tags: { '39': { kind: 'image' } } }],
    });
    harness = await startMirrors({ publishDir: work });
  });

  afterAll(async () => {
    await harness?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const post = (body: unknown, headers: Record<string, string> = auth) =>
    fetchRaw(`${harness.url}/api/v1/mirrors`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });

  it('requires the bearer token on every admin route', async () => {
    const cases: Array<[string, 'GET' | 'POST' | 'PATCH' | 'DELETE', Record<string, string>]> = [
      ['/api/v1/mirrors', 'GET', {}],
      ['/api/v1/mirrors', 'POST', { 'content-type': 'application/json' }],
      ['/api/v1/mirrors/x', 'DELETE', { authorization: 'Bearer wrong-token' }],
      ['/api/v1/mirrors/x/crawl', 'POST', { authorization: 'Basic YWRtaW46eA==' }],
      ['/api/v1/statistics', 'GET', { authorization: `Bearer ${TEST_TOKEN}x` }],
    ];
    for (const [url, method, headers] of cases) {
      const res = await fetchRaw(`${harness.url}${url}`, {
        method,
        headers,
        body: method === 'POST' ? '{}' : undefined,
      });
      expect(res.status, `${method} ${url}`).toBe(401);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('registers, reads, updates and deletes a mirror', async () => {
    const created = await post({
      name: 'mirror.example-1',
      baseUrl: 'https://mirror.example.org/pub/flotilla/',
      country: 'de',
      netblocks: ['192.0.2.77/24', '2001:DB8::/32'],
      asn: 64500,
      bandwidth: 1000,
      countriesAllowed: ['de', 'AT'],
    });
    expect(created.status).toBe(201);
    const mirror = JSON.parse(created.text);
    expect(mirror).toMatchObject({
      name: 'mirror.example-1',
      baseUrl: 'https://mirror.example.org/pub/flotilla',
      country: 'DE',
      continent: 'EU',
      netblocks: ['192.0.2.0/24', '2001:db8::/32'],
      asn: 64500,
      bandwidth: 1000,
      private: false,
      countriesAllowed: ['DE', 'AT'],
      enabled: true,
      autoDisabled: false,
      publication: null,
      upToDate: false,
    });
    expect(created.headers.location).toBe(`/api/v1/mirrors/${mirror.id}`);

    const one = await fetchRaw(`${harness.url}/api/v1/mirrors/${mirror.id}`, { headers: auth });
    expect(JSON.parse(one.text).id).toBe(mirror.id);

    const patched = await fetchRaw(`${harness.url}/api/v1/mirrors/${mirror.id}`, {
      method: 'PATCH',
      headers: auth,
      body: JSON.stringify({ country: 'br', private: true }),
    });
    expect(patched.status).toBe(200);
    expect(JSON.parse(patched.text)).toMatchObject({
      country: 'BR',
      continent: 'SA',
      private: true,
    });

    const duplicate = await post({
      name: 'mirror.example-1',
      baseUrl: 'http://other.example',
      country: 'US',
    });
    expect(duplicate.status).toBe(409);

    expect((await harness.client.list()).map((m) => m.name)).toContain('mirror.example-1');
    const removed = await fetchRaw(`${harness.url}/api/v1/mirrors/${mirror.id}`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(removed.status).toBe(204);
    const gone = await fetchRaw(`${harness.url}/api/v1/mirrors/${mirror.id}`, { headers: auth });
    expect(gone.status).toBe(404);
    expect(JSON.parse(gone.text)).toMatchObject({ status: 404, title: 'Not Found' });
  });

  it('rejects invalid mirrors with problem JSON naming the field', async () => {
    const valid = { name: 'ok', baseUrl: 'http://ok.example', country: 'US' };
    const invalid: Array<[unknown, string]> = [
      [{ ...valid, name: '' }, 'name'],
      [{ ...valid, name: '../etc' }, 'name'],
      [{ ...valid, baseUrl: 'ftp://ok.example' }, 'baseUrl'],
      [{ ...valid, baseUrl: 'not a url' }, 'baseUrl'],
      [{ ...valid, baseUrl: 'http://user:pw@ok.example' }, 'baseUrl'],
      [{ ...valid, country: 'USA' }, 'country'],
      [{ ...valid, country: 'ZZ' }, 'country'],
      [{ ...valid, netblocks: ['192.0.2.0/33'] }, 'netblocks[0]'],
      [{ ...valid, netblocks: ['example.org'] }, 'netblocks[0]'],
      [{ ...valid, asn: -1 }, 'asn'],
      [{ ...valid, bandwidth: 0 }, 'bandwidth'],
      [{ ...valid, bandwidth: 1.5 }, 'bandwidth'],
      [{ ...valid, private: 'yes' }, 'private'],
      [{ ...valid, countriesAllowed: ['XX'] }, 'countriesAllowed[0]'],
      [{ ...valid, families: ['ipv5'] }, 'families[0]'],
      [{ ...valid, extra: 1 }, '(root)'],
      [[valid], '(root)'],
    ];
    for (const [body, field] of invalid) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      const problem = JSON.parse(res.text);
      expect(
        problem.issues.map((i: { path: string }) => i.path),
        JSON.stringify(body),
      ).toContain(field);
    }
    const malformed = await fetchRaw(`${harness.url}/api/v1/mirrors`, {
      method: 'POST',
      headers: auth,
      body: '{"name":',
    });
    expect(malformed.status).toBe(400);
    const wrongType = await fetchRaw(`${harness.url}/api/v1/mirrors`, {
      method: 'POST',
      headers: { authorization: auth.authorization, 'content-type': 'text/plain' },
      body: 'name=x',
    });
    expect(wrongType.status).toBe(415);
    const emptyPatch = await fetchRaw(`${harness.url}/api/v1/mirrors/nope`, {
      method: 'PATCH',
      headers: auth,
      body: '{}',
    });
    expect(emptyPatch.status).toBe(404);
    const crawlUnknown = await fetchRaw(`${harness.url}/api/v1/mirrors/nope/crawl`, {
      method: 'POST',
      headers: auth,
    });
    expect(crawlUnknown.status).toBe(404);
    const badLimit = await harness.client.add({
      name: 'limits',
      baseUrl: 'http://127.0.0.1:9',
      country: 'US',
    });
    const res = await fetchRaw(`${harness.url}/api/v1/mirrors/${badLimit.id}/crawls?limit=abc`, {
      headers: auth,
    });
    expect(res.status).toBe(400);
    const nothing = await fetchRaw(`${harness.url}/api/v1/mirrors/${badLimit.id}`, {
      method: 'PATCH',
      headers: auth,
      body: '{}',
    });
    expect(nothing.status).toBe(400);
  });

  it('answers bad redirect paths and digests with 400 or 404, never 500', async () => {
    const digest = tree.newBlobs[0]!;
    const hex = digest.slice(7);
    const cases: Array<[string, number]> = [
      [`/pub/containers/${blobPath(digest)}`, 302],
      [`/pub/containers/${blobPath(digest)}?x=1`, 302],
      [`/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex.toUpperCase()}`, 400],
      [`/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex.slice(0, 63)}`, 400],
      [`/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex}0`, 400],
      [`/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex.slice(0, 63)}g`, 400],
      [`/pub/containers/blobs/sha256/zz/${hex}`, 400],
      [`/pub/containers/blobs/sha256/${hex.startsWith('00') ? '01' : '00'}/${hex}`, 404],
      [`/pub/containers/blobs/sha256/00/${'0'.repeat(64)}`, 404],
      // (the client resolves the dot segments; whatever arrives is 4xx)
      [`/pub/containers/blobs/sha256/${hex.slice(0, 2)}/../../../../etc/passwd`, 404],
      [`/pub/containers/blobs/sha256/`, 404],
      [`/pub/containers/blobs/sha512/${hex.slice(0, 2)}/${hex}`, 404],
      [`/pub/containers/blobs/sha256/%2e%2e/${hex}`, 404],
      [`/pub/containers/blobs/sha256/a/${hex}`, 400],
      ['/pub/containers/', 404],
      ['/pub/containers/PUBLICATION', 404],
      ['/mirrorlist', 400],
      ['/mirrorlist?path=', 400],
      ['/mirrorlist?path=blobs/sha256/zz/zz', 400],
      [`/mirrorlist?path=${blobPath(digest)}&country=XX`, 400],
      [`/mirrorlist?path=${blobPath(digest)}&country=de`, 200],
      [`/mirrorlist?path=${digest}`, 200],
      [`/mirrorlist?path=blobs/sha256/00/${'0'.repeat(64)}`, 404],
      ['/mirrorlist?path=%ZZ', 404],
      ['/nowhere', 404],
    ];
    for (const [url, status] of cases) {
      const res = await fetchRaw(`${harness.url}${url}`);
      expect(res.status, url).toBe(status);
      if (status >= 400) expect(res.headers['content-type'], url).toBe('application/problem+json');
    }
    const post = await fetchRaw(`${harness.url}/pub/containers/${blobPath(digest)}`, {
      method: 'POST',
      body: 'x',
    });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('serves the public mirror list as escaped HTML and as JSON', async () => {
    await harness.client
      .add({ name: 'public-one', baseUrl: 'http://public.example/a?b', country: 'FR' })
      .catch(() => undefined);
    await harness.client.add({
      name: 'public-two',
      baseUrl: 'http://public.example/"x"<y>',
      country: 'FR',
      bandwidth: 5,
    });
    await harness.client.add({
      name: 'hidden',
      baseUrl: 'http://hidden.example',
      country: 'FR',
      private: true,
    });
    const json = await fetchRaw(`${harness.url}/mirrors`, {
      headers: { accept: 'application/json' },
    });
    expect(json.status).toBe(200);
    const body = JSON.parse(json.text);
    expect(body.publication).toBe(1);
    const names = body.mirrors.map((m: { name: string }) => m.name);
    expect(names).toContain('public-two');
    expect(names).not.toContain('hidden');
    expect(body.mirrors.find((m: { name: string }) => m.name === 'public-two')).toMatchObject({
      country: 'FR',
      bandwidth: 5,
      publication: null,
      upToDate: false,
    });
    const html = await fetchRaw(`${harness.url}/mirrors`, { headers: { accept: 'text/html' } });
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.text).toContain('public-two');
    expect(html.text).not.toContain('hidden.example');
    expect(html.text).not.toMatch(/<y>/);
    expect(escapeHtml(`<script>"a" & 'b'</script>`)).toBe(
      '&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;',
    );
  });

  it('serves the published tree at /master/ with HEAD and Range, nothing outside it', async () => {
    const digest = tree.newBlobs[0]!;
    const blob = await fetchRaw(`${harness.url}/master/${blobPath(digest)}`);
    expect(blob.status).toBe(200);
    const marker = await fetchRaw(`${harness.url}/master/PUBLICATION`);
    expect(marker.text).toBe('1\n');
    const head = await fetchRaw(`${harness.url}/master/PUBLICATION`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('2');
    const range = await fetchRaw(`${harness.url}/master/PUBLICATION`, {
      headers: { range: 'bytes=0-0' },
    });
    expect(range.status).toBe(206);
    expect(range.text).toBe('1');
    await writeFile(path.join(work, '.secret'), 'no');
    for (const url of [
      '/master/../package.json',
      '/master/%2e%2e/package.json',
      '/master/..%2fpackage.json',
      '/master/.secret',
      '/master/blobs',
      '/master/',
      '/master/nope',
    ]) {
      const res = await fetchRaw(`${harness.url}${url}`);
      expect(res.status, url).toBe(404);
    }
  });
});

describe('GeoIP', () => {
  it('reads the bundled country database offline and answers for a known public address', async () => {
    const geo = await openGeoLookup({}, pino({ level: 'silent' }));
    expect(bundledCountryDatabase()).toMatch(/\.mmdb$/);
    expect(geo.lookup(parseAddress('8.8.8.8')!)).toEqual({ country: 'US', asn: null });
    expect(geo.lookup(parseAddress('2001:4860:4860::8888')!).country).toBe('US');
    expect(geo.lookup(parseAddress('192.0.2.1')!)).toEqual({ country: null, asn: null });
  });
});

/**
 * Every endpoint's headers and error codes beyond the conformance workflows: bad input (and
 * that it leaves storage unchanged), ranges, conditional requests, negotiation, catalog,
 * upload sessions (resume after a disconnect, expiry, wrong digest), concurrency, events.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuth, startTestRegistry, type TestRegistry } from './harness.js';
import {
  content,
  imageManifest,
  indexManifest,
  makeApi,
  OCI_INDEX,
  OCI_MANIFEST,
  raw,
} from './http.js';
import { runFsck } from '../src/ops/fsck.js';
import pino from 'pino';

let reg: TestRegistry;
const api = makeApi(() => reg.url);
const NAME = 'api/repo';
const logger = pino({ level: 'silent' });

beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

async function pushBlob(name: string, blob: { bytes: Buffer; digest: string }): Promise<void> {
  const res = await api('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
    body: blob.bytes,
  });
  expect(res.status).toBe(201);
}

async function pushImage(name: string, tag: string, layerBytes = 1024) {
  const config = content(
    JSON.stringify({ architecture: 'amd64', os: 'linux', salt: randomBytes(8).toString('hex') }),
  );
  const layer = content(randomBytes(layerBytes));
  await pushBlob(name, config);
  await pushBlob(name, layer);
  const manifest = imageManifest(config, [layer]);
  const res = await api('PUT', `/v2/${name}/manifests/${tag}`, {
    body: manifest.bytes,
    headers: { 'content-type': OCI_MANIFEST },
  });
  expect(res.status).toBe(201);
  return { config, layer, manifest };
}

/** Every file under the storage root except upload sessions' and the outbox's. */
async function snapshot(): Promise<string[]> {
  const root = join(reg.dir, 'registry');
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith('outbox'))
    .sort();
}

describe('the /v2 path grammar (protocol parseV2Path, shared with crane)', () => {
  it.each([
    '/v2/api/repo/manifests/%zz',
    '/v2/api/repo/blobs/sha256%3',
    '/v2/api/repo/blobs/uploads/%',
  ])('answers a malformed %% in %s with 400 NAME_INVALID', async (path) => {
    const res = await api('GET', path);
    expect(res.status).toBe(400);
    expect(res.errorCode()).toBe('NAME_INVALID');
  });
});

describe('headers', () => {
  it('sends Docker-Distribution-API-Version on every response, errors included', async () => {
    for (const [method, path] of [
      ['GET', '/v2/'],
      ['GET', `/v2/${NAME}/manifests/missing`],
      ['GET', '/v2/BAD/tags/list'],
      ['GET', '/v2/_catalog'],
    ] as const) {
      const res = await api(method, path);
      expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    }
  });

  it('GET /v2/ without credentials answers 401 with a Basic challenge; with them 200', async () => {
    const anon = await api('GET', '/v2/', { auth: false });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Basic realm="flotilla"');
    expect(anon.errorCode()).toBe('UNAUTHORIZED');
    expect((await api('GET', '/v2/')).status).toBe(200);
    // containers/image sends empty credentials when it has none: anonymous, allowed to pull
    expect(
      (await api('GET', '/v2/', { auth: `Basic ${Buffer.from(':').toString('base64')}` })).status,
    ).toBe(200);
  });

  it('manifests carry Content-Type as pushed, Docker-Content-Digest, ETag; If-None-Match gives 304', async () => {
    const { manifest } = await pushImage(NAME, 'etag');
    const res = await api('GET', `/v2/${NAME}/manifests/etag`, { auth: false });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(res.headers.get('etag')).toBe(`"${manifest.digest}"`);
    const again = await api('GET', `/v2/${NAME}/manifests/etag`, {
      headers: { 'if-none-match': `"${manifest.digest}"` },
    });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('negotiates like Distribution: an OCI manifest is not served to a client that does not accept it', async () => {
    const res = await api('GET', `/v2/${NAME}/manifests/etag`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(res.status).toBe(404);
    expect(res.errorCode()).toBe('MANIFEST_UNKNOWN');
    const ok = await api('GET', `/v2/${NAME}/manifests/etag`, {
      headers: { accept: `application/vnd.docker.distribution.manifest.v2+json, ${OCI_MANIFEST}` },
    });
    expect(ok.status).toBe(200);
  });

  it('a Docker manifest list asked for by tag by a client without list support gets the linux/amd64 image', async () => {
    const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
    const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
    const children = [];
    for (const arch of ['arm64', 'amd64']) {
      const config = content(JSON.stringify({ architecture: arch, os: 'linux' }));
      await pushBlob(NAME, config);
      const m = content(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: DOCKER_MANIFEST,
          config: {
            mediaType: 'application/vnd.docker.container.image.v1+json',
            digest: config.digest,
            size: config.size,
          },
          layers: [],
        }),
      );
      expect(
        (
          await api('PUT', `/v2/${NAME}/manifests/${m.digest}`, {
            body: m.bytes,
            headers: { 'content-type': DOCKER_MANIFEST },
          })
        ).status,
      ).toBe(201);
      children.push({ arch, m });
    }
    const list = content(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: children.map(({ arch, m }) => ({
          mediaType: DOCKER_MANIFEST,
          digest: m.digest,
          size: m.size,
          platform: { architecture: arch, os: 'linux' },
        })),
      }),
    );
    expect(
      (
        await api('PUT', `/v2/${NAME}/manifests/dockerlist`, {
          body: list.bytes,
          headers: { 'content-type': DOCKER_LIST },
        })
      ).status,
    ).toBe(201);
    const full = await api('GET', `/v2/${NAME}/manifests/dockerlist`, {
      headers: { accept: `${DOCKER_LIST}, ${DOCKER_MANIFEST}` },
    });
    expect(full.headers.get('docker-content-digest')).toBe(list.digest);
    const old = await api('GET', `/v2/${NAME}/manifests/dockerlist`, {
      headers: { accept: DOCKER_MANIFEST },
    });
    expect(old.status).toBe(200);
    expect(old.headers.get('content-type')).toBe(DOCKER_MANIFEST);
    expect(old.headers.get('docker-content-digest')).toBe(
      children.find((c) => c.arch === 'amd64')?.m.digest,
    );
  });

  it('blobs carry ETag, long-lived Cache-Control, Accept-Ranges; Range gives 206 / 416', async () => {
    const { layer } = await pushImage(NAME, 'ranges', 4096);
    const full = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`);
    expect(full.headers.get('etag')).toBe(`"${layer.digest}"`);
    expect(full.headers.get('cache-control')).toContain('max-age=31536000');
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    const part = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`, {
      headers: { range: 'bytes=100-199' },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${layer.size}`);
    expect(part.body.equals(layer.bytes.subarray(100, 200))).toBe(true);
    const suffix = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`, {
      headers: { range: 'bytes=-10' },
    });
    expect(suffix.body.equals(layer.bytes.subarray(layer.size - 10))).toBe(true);
    const open = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`, {
      headers: { range: 'bytes=4000-' },
    });
    expect(open.body.equals(layer.bytes.subarray(4000))).toBe(true);
    const bad = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`, {
      headers: { range: `bytes=${layer.size}-` },
    });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${layer.size}`);
    const notModified = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`, {
      headers: { 'if-none-match': `"${layer.digest}"` },
    });
    expect(notModified.status).toBe(304);
  });

  it('a client that goes away mid-download does not disturb the registry', async () => {
    const { layer } = await pushImage(NAME, 'abort', 8 * 1024 * 1024);
    const controller = new AbortController();
    const res = await fetch(`${reg.url}/v2/${NAME}/blobs/${layer.digest}`, {
      signal: controller.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    await reader?.cancel().catch(() => undefined);
    const again = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`);
    expect(again.status).toBe(200);
    expect(again.body.equals(layer.bytes)).toBe(true);
  });

  it('_catalog is sorted and paginated with n, last and Link', async () => {
    await pushImage('api/zz', 'a');
    await pushImage('api/aa', 'a');
    const all = await api('GET', '/v2/_catalog');
    const names = all.json<{ repositories: string[] }>().repositories;
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['api/aa', 'api/repo', 'api/zz']));
    const page = await api('GET', '/v2/_catalog?n=1');
    expect(page.json<{ repositories: string[] }>().repositories).toEqual([names[0]]);
    expect(page.headers.get('link')).toBe(
      `</v2/_catalog?n=1&last=${encodeURIComponent(names[0] as string)}>; rel="next"`,
    );
    const next = await api(
      'GET',
      `/v2/_catalog?n=1&last=${encodeURIComponent(names[0] as string)}`,
    );
    expect(next.json<{ repositories: string[] }>().repositories).toEqual([names[1]]);
  });

  it('an index needs its child manifests; a Docker manifest list is served as pushed', async () => {
    const a = await pushImage(NAME, 'child-a');
    const missing = imageManifest(content('{"never":"pushed"}'), []);
    const bad = indexManifest([a.manifest, missing]);
    const res = await api('PUT', `/v2/${NAME}/manifests/multi`, {
      body: bad.bytes,
      headers: { 'content-type': OCI_INDEX },
    });
    expect(res.status).toBe(400);
    expect(res.errorCode()).toBe('MANIFEST_BLOB_UNKNOWN');
    const good = indexManifest([a.manifest]);
    expect(
      (
        await api('PUT', `/v2/${NAME}/manifests/multi`, {
          body: good.bytes,
          headers: { 'content-type': OCI_INDEX },
        })
      ).status,
    ).toBe(201);
    const got = await api('GET', `/v2/${NAME}/manifests/multi`);
    expect(got.headers.get('content-type')).toBe(OCI_INDEX);
  });
});

describe('health and metrics', () => {
  it('answers /healthz, /readyz and /metrics (with /v2 route patterns, never raw URLs)', async () => {
    expect((await api('GET', '/healthz', { auth: false })).status).toBe(200);
    expect((await api('GET', '/readyz', { auth: false })).status).toBe(200);
    await api('GET', `/v2/${NAME}/manifests/stable`);
    const metrics = (await api('GET', '/metrics', { auth: false })).body.toString('utf8');
    expect(metrics).toContain('flotilla_http_request_duration_seconds');
    expect(metrics).toContain('route="/v2/:name/manifests/:reference"');
    expect(metrics).not.toContain(`/v2/${NAME}/`);
  });
});

describe('bad input leaves storage unchanged', () => {
  let before: string[];
  beforeAll(async () => {
    await pushImage(NAME, 'stable');
    before = await snapshot();
  });

  it('malformed digests: DIGEST_INVALID (400); unknown algorithms: UNSUPPORTED', async () => {
    for (const d of ['sha256:xyz', 'sha256:' + 'A'.repeat(64), 'nodigest']) {
      const res = await api('GET', `/v2/${NAME}/blobs/${d}`);
      expect(res.status).toBe(400);
      expect(res.errorCode()).toBe('DIGEST_INVALID');
    }
    const md5 = await api('GET', `/v2/${NAME}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e`);
    expect(md5.status).toBe(400);
    expect(md5.errorCode()).toBe('UNSUPPORTED');
    const put = await api('POST', `/v2/${NAME}/blobs/uploads/?digest=sha256:short`, { body: 'x' });
    expect(put.errorCode()).toBe('DIGEST_INVALID');
  });

  it('malformed names: upper case, .., %2e%2e, 256+ characters: NAME_INVALID (400)', async () => {
    const paths = [
      '/v2/Upper/case/tags/list',
      '/v2/a/../b/tags/list',
      '/v2/a/%2e%2e/b/tags/list',
      '/v2/%2e%2e/tags/list',
      `/v2/${'a'.repeat(256)}/tags/list`,
      `/v2/${'abcdefgh/'.repeat(29)}x/manifests/latest`,
      '/v2/a//b/tags/list',
      '/v2/_private/blobs/uploads/',
    ];
    for (const path of paths) {
      const res = await raw(reg.url, 'GET', path, { authorization: adminAuth });
      expect(res.status, path).toBe(400);
      expect(JSON.parse(res.body).errors[0].code, path).toBe('NAME_INVALID');
    }
  });

  it('garbage Content-Range: 416 BLOB_UPLOAD_INVALID with the resumable Range; missing Content-Length: SIZE_INVALID (400)', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const location = start.headers.get('location') as string;
    for (const range of ['garbage', '0-', '-5', 'bytes=a-b', '5-2']) {
      const res = await api('PATCH', location, {
        body: 'abc',
        headers: { 'content-range': range },
      });
      expect(res.status, range).toBe(416);
      expect(res.errorCode(), range).toBe('BLOB_UPLOAD_INVALID');
      expect(res.headers.get('range'), range).toBe('0-0');
    }
    const mismatch = await raw(
      reg.url,
      'PATCH',
      location,
      { authorization: adminAuth, 'content-range': '0-9', 'content-length': '3' },
      'abc',
    );
    expect(mismatch.status).toBe(400);
    expect(JSON.parse(mismatch.body).errors[0].code).toBe('SIZE_INVALID');
    const chunkedWithRange = await raw(
      reg.url,
      'PATCH',
      location,
      { authorization: adminAuth, 'content-range': '0-2', 'transfer-encoding': 'chunked' },
      'abc',
    );
    expect(chunkedWithRange.status).toBe(400);
    expect(JSON.parse(chunkedWithRange.body).errors[0].code).toBe('SIZE_INVALID');
    const monolithic = await raw(
      reg.url,
      'POST',
      `/v2/${NAME}/blobs/uploads/?digest=sha256:${'1'.repeat(64)}`,
      { authorization: adminAuth },
    );
    expect(monolithic.status).toBe(400);
    expect(JSON.parse(monolithic.body).errors[0].code).toBe('SIZE_INVALID');
    const status = await api('GET', location);
    expect(status.headers.get('range')).toBe('0-0');
    await api('DELETE', location);
  });

  it('oversized manifests: 413 SIZE_INVALID; malformed: MANIFEST_INVALID; schema 1: UNSUPPORTED', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    const tooBig = await api('PUT', `/v2/${NAME}/manifests/big`, {
      body: big,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.errorCode()).toBe('SIZE_INVALID');
    for (const body of [
      '{not json',
      '[]',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { digest: 'nope' },
        layers: [],
      }),
    ]) {
      const res = await api('PUT', `/v2/${NAME}/manifests/bad`, {
        body,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expect(res.status, body).toBe(400);
      expect(res.errorCode(), body).toBe('MANIFEST_INVALID');
    }
    const disagree = await api('PUT', `/v2/${NAME}/manifests/bad`, {
      body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }),
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(disagree.errorCode()).toBe('MANIFEST_INVALID');
    const schema1 = await api('PUT', `/v2/${NAME}/manifests/old`, {
      body: JSON.stringify({ schemaVersion: 1, name: NAME, tag: 'old', fsLayers: [] }),
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
    });
    expect(schema1.errorCode()).toBe('UNSUPPORTED');
    expect(schema1.status).toBeGreaterThanOrEqual(400);
    const badTag = await api('PUT', `/v2/${NAME}/manifests/-bad-tag`, {
      body: '{}',
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(badTag.status).toBe(400);
    const badDigestRef = await api('PUT', `/v2/${NAME}/manifests/sha256:${'2'.repeat(64)}`, {
      body: imageManifest(content('{}'), []).bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(badDigestRef.errorCode()).toBe('DIGEST_INVALID');
  });

  it('manifests naming missing blobs: MANIFEST_BLOB_UNKNOWN (400) with the missing digests', async () => {
    const ghost = content('ghost layer');
    const m = imageManifest(content('{"ghost":1}'), [ghost]);
    const res = await api('PUT', `/v2/${NAME}/manifests/ghost`, {
      body: m.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(res.status).toBe(400);
    expect(res.errorCode()).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(JSON.stringify(res.json())).toContain(ghost.digest);
  });

  it('a blob linked in another repository only does not satisfy a manifest', async () => {
    const { config, layer } = await pushImage('api/other', 'x');
    const m = imageManifest(config, [layer]);
    before = await snapshot();
    const res = await api('PUT', `/v2/${NAME}/manifests/borrowed`, {
      body: m.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(res.errorCode()).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('wrong credentials: 401 UNAUTHORIZED with the challenge, for pulls and pushes', async () => {
    const wrong = `Basic ${Buffer.from('admin:wrong').toString('base64')}`;
    for (const [method, path] of [
      ['GET', `/v2/${NAME}/manifests/stable`],
      ['POST', `/v2/${NAME}/blobs/uploads/`],
      ['PUT', `/v2/${NAME}/manifests/stable`],
      ['DELETE', `/v2/${NAME}/manifests/stable`],
    ] as const) {
      const res = await api(method, path, {
        auth: wrong,
        ...(method === 'PUT' ? { body: '{}' } : {}),
      });
      expect(res.status).toBe(401);
      expect(res.errorCode()).toBe('UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="flotilla"');
    }
    const anonymousPush = await api('POST', `/v2/${NAME}/blobs/uploads/`, { auth: false });
    expect(anonymousPush.status).toBe(401);
  });

  it('unknown endpoints and methods get OCI errors', async () => {
    const res = await api('GET', `/v2/${NAME}/nothing/here`);
    expect(res.status).toBe(404);
    expect(res.errorCode()).toBeDefined();
    const method = await api('POST', `/v2/${NAME}/manifests/stable`);
    expect(method.status).toBe(405);
    expect(method.errorCode()).toBe('UNSUPPORTED');
  });

  it('…and none of the above changed the storage', async () => {
    expect(await snapshot()).toEqual(before);
    const report = await runFsck({ storageDir: join(reg.dir, 'registry'), logger });
    expect(report.clean).toBe(true);
  });
});

describe('upload sessions', () => {
  it('a client that disconnects mid-upload leaves the session resumable', async () => {
    const blob = content(randomBytes(3 * 1024 * 1024));
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const location = start.headers.get('location') as string;
    const half = 1024 * 1024 + 17;
    await new Promise<void>((resolve) => {
      const target = new URL(location, reg.url);
      const req = httpRequest({
        host: target.hostname,
        port: target.port,
        method: 'PATCH',
        path: target.pathname,
        headers: { authorization: adminAuth, 'content-length': String(blob.size) },
      });
      req.on('error', () => resolve());
      req.write(blob.bytes.subarray(0, half), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 200);
      });
    });
    let offset = -1;
    for (let i = 0; i < 50 && offset < 0; i++) {
      const status = await api('GET', location);
      expect(status.status).toBe(204);
      const range = status.headers.get('range') as string;
      const end = Number(range.split('-')[1]);
      if (end > 0) offset = end + 1;
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(half);
    const rest = blob.bytes.subarray(offset);
    const patch = await api('PATCH', location, {
      body: rest,
      headers: { 'content-range': `${offset}-${blob.size - 1}` },
    });
    expect(patch.status).toBe(202);
    const put = await api('PUT', `${location}?digest=${blob.digest}`);
    expect(put.status).toBe(201);
    const got = await api('GET', `/v2/${NAME}/blobs/${blob.digest}`);
    expect(got.body.equals(blob.bytes)).toBe(true);
  });

  it('a wrong final digest answers DIGEST_INVALID and discards the session', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const location = start.headers.get('location') as string;
    const res = await api('PUT', `${location}?digest=sha256:${'3'.repeat(64)}`, {
      body: 'some bytes',
    });
    expect(res.status).toBe(400);
    expect(res.errorCode()).toBe('DIGEST_INVALID');
    const status = await api('GET', location);
    expect(status.status).toBe(404);
    expect(status.errorCode()).toBe('BLOB_UPLOAD_UNKNOWN');
    expect((await api('HEAD', `/v2/${NAME}/blobs/sha256:${'3'.repeat(64)}`)).status).toBe(404);
  });

  it('PUT without ?digest is DIGEST_INVALID; DELETE cancels (204) then 404; unknown uuids are BLOB_UPLOAD_UNKNOWN', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const location = start.headers.get('location') as string;
    expect((await api('PUT', location)).errorCode()).toBe('DIGEST_INVALID');
    expect((await api('DELETE', location)).status).toBe(204);
    expect((await api('GET', location)).status).toBe(404);
    const unknown = await api('PATCH', `/v2/${NAME}/blobs/uploads/not-a-uuid`, { body: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.errorCode()).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('stale sessions expire and are purged', async () => {
    const short = await startTestRegistry({ uploadTtlMs: 200 });
    try {
      const shortApi = makeApi(() => short.url);
      const start = await shortApi('POST', `/v2/${NAME}/blobs/uploads/`);
      const location = start.headers.get('location') as string;
      expect((await shortApi('GET', location)).status).toBe(204);
      await new Promise((r) => setTimeout(r, 300));
      expect((await shortApi('GET', location)).status).toBe(404);
      const second = await shortApi('POST', `/v2/${NAME}/blobs/uploads/`);
      expect(second.status).toBe(202);
      await new Promise((r) => setTimeout(r, 300));
      expect((await short.service.registry.uploads.purgeExpired()).sessions).toHaveLength(1);
      const uploads = await readdir(join(short.dir, 'registry', 'repositories', NAME, '_uploads'));
      expect(uploads).toEqual([]);
    } finally {
      await short.stop();
    }
  });

  it('concurrent uploads of the same blob and concurrent pushes of the same tag are safe', async () => {
    const blob = content(randomBytes(256 * 1024));
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        api('POST', `/v2/${NAME}/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(6).fill(201));
    const config = content('{"race":true}');
    await pushBlob(NAME, config);
    const manifests = Array.from({ length: 6 }, (_, i) =>
      imageManifest(config, [blob], { annotations: { n: String(i) } }),
    );
    const pushes = await Promise.all(
      manifests.map((m) =>
        api('PUT', `/v2/${NAME}/manifests/race`, {
          body: m.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        }),
      ),
    );
    expect(pushes.map((r) => r.status)).toEqual(Array(6).fill(201));
    const got = await api('GET', `/v2/${NAME}/manifests/race`);
    expect(manifests.map((m) => m.digest)).toContain(got.headers.get('docker-content-digest'));
    expect((await api('GET', `/v2/${NAME}/blobs/${blob.digest}`)).body.equals(blob.bytes)).toBe(
      true,
    );
    const report = await runFsck({ storageDir: join(reg.dir, 'registry'), logger });
    expect(report.clean).toBe(true);
  });
});

describe('events', () => {
  it('push, tag delete and manifest delete are announced after the change', async () => {
    reg.events.length = 0;
    const { manifest } = await pushImage('api/events', 'v1');
    expect(
      (
        await api('PUT', `/v2/api/events/manifests/v2`, {
          body: manifest.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        })
      ).status,
    ).toBe(201);
    expect((await api('DELETE', `/v2/api/events/manifests/v2`)).status).toBe(202);
    expect((await api('DELETE', `/v2/api/events/manifests/${manifest.digest}`)).status).toBe(202);
    for (let i = 0; i < 50 && reg.events.length < 4; i++) {
      await reg.service.flushEvents();
      await new Promise((r) => setTimeout(r, 20));
    }
    const seen = reg.events.map((e) => ({ type: e.type, data: e.data }));
    expect(seen).toEqual([
      {
        type: 'registry.manifest.pushed',
        data: {
          repository: 'api/events',
          digest: manifest.digest,
          mediaType: OCI_MANIFEST,
          size: manifest.size,
          tag: 'v1',
        },
      },
      {
        type: 'registry.manifest.pushed',
        data: {
          repository: 'api/events',
          digest: manifest.digest,
          mediaType: OCI_MANIFEST,
          size: manifest.size,
          tag: 'v2',
        },
      },
      {
        type: 'registry.manifest.deleted',
        data: { repository: 'api/events', digest: manifest.digest, tag: 'v2' },
      },
      {
        type: 'registry.manifest.deleted',
        data: { repository: 'api/events', digest: manifest.digest },
      },
    ]);
    expect(reg.events[0]?.source).toBe('registry');
  });

  it('a refused push emits nothing', async () => {
    reg.events.length = 0;
    const m = imageManifest(content('{"no":"blobs"}'), [content('missing')]);
    expect(
      (
        await api('PUT', `/v2/api/events/manifests/nope`, {
          body: m.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        })
      ).status,
    ).toBe(400);
    await reg.service.flushEvents();
    await new Promise((r) => setTimeout(r, 50));
    expect(reg.events).toEqual([]);
  });
});

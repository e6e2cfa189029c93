/**
 * A registry whose storage is a real 24 MiB disk (tmpfs): a push larger than the disk answers
 * 507 with OCI error JSON, gives its staged bytes back at once, leaves every read working, and
 * the next push succeeds as soon as there is room, with no restart. Below the free-space
 * reserve, writes are refused early and /readyz and /metrics say so.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MiB,
  mountTmpfs,
  tmpfsUnavailableReason,
  type Tmpfs,
} from '../../../test/support/tmpfs.js';
import { createFilesystemDriver } from '../src/storage/driver.js';
import { startTestRegistry, type TestRegistry } from './harness.js';
import { content, imageManifest, makeApi, OCI_MANIFEST, type Content } from './http.js';
import { adminAuth } from './harness.js';

const unavailable = tmpfsUnavailableReason();
if (unavailable) process.stdout.write(`skipping registry disk-full tests: ${unavailable}\n`);

const NAME = 'full/app';
// tmpfs counts whole pages and directory entries: "back to before" means within this slack
const SLACK = 256 * 1024;

let disk: Tmpfs;
let reg: TestRegistry;
const api = makeApi(() => reg.url);

interface StorageFullBody {
  errors: Array<{ code: string; message: string }>;
}

function expectStorageFull(res: Awaited<ReturnType<typeof api>>): void {
  expect(res.status, res.body.toString()).toBe(507);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = res.json<StorageFullBody>();
  expect(body.errors[0]?.message).toMatch(/^storage is full/);
}

async function pushImage(
  tag: string,
  layerBytes: number,
): Promise<{ layer: Content; manifest: Content }> {
  const config = content(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  const layer = content(randomBytes(layerBytes));
  for (const blob of [config, layer]) {
    expect(
      (await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes }))
        .status,
    ).toBe(201);
  }
  const manifest = imageManifest(config, [layer]);
  const put = await api('PUT', `/v2/${NAME}/manifests/${tag}`, {
    body: manifest.bytes,
    headers: { 'content-type': OCI_MANIFEST },
  });
  expect(put.status).toBe(201);
  return { layer, manifest };
}

async function expectPullable(
  image: { layer: Content; manifest: Content },
  tag: string,
): Promise<void> {
  const manifest = await api('GET', `/v2/${NAME}/manifests/${tag}`, {
    headers: { accept: OCI_MANIFEST },
  });
  expect(manifest.status).toBe(200);
  expect(manifest.body.equals(image.manifest.bytes)).toBe(true);
  const blob = await api('GET', `/v2/${NAME}/blobs/${image.layer.digest}`);
  expect(blob.status).toBe(200);
  expect(blob.body.equals(image.layer.bytes)).toBe(true);
}

/** A PATCH with `Transfer-Encoding: chunked` (no Content-Length), the body sent in 1 MiB pieces. */
function streamedPatch(url: URL, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'PATCH',
        headers: { authorization: adminAuth, 'content-type': 'application/octet-stream' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    for (let at = 0; at < body.length; at += MiB) req.write(body.subarray(at, at + MiB));
    req.end();
  });
}

async function uploadSessions(): Promise<string[]> {
  return readdir(join(disk.dir, 'registry', 'repositories', NAME, '_uploads')).catch(() => []);
}

describe.skipIf(unavailable !== undefined)('registry on a full disk', () => {
  beforeAll(async () => {
    disk = await mountTmpfs('registry-full', 24 * MiB);
    reg = await startTestRegistry({ storageDir: join(disk.dir, 'registry'), minFreeBytes: 0 });
  });
  afterAll(async () => {
    try {
      await reg?.stop();
    } finally {
      await disk?.unmount();
    }
  });

  let earlier: { layer: Content; manifest: Content };

  it('a monolithic push larger than the disk answers 507 and gives its bytes back at once', async () => {
    earlier = await pushImage('1', 1 * MiB);
    const before = await disk.free();
    const big = content(randomBytes(40 * MiB));
    const res = await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${big.digest}`, {
      body: big.bytes,
    });
    expectStorageFull(res);
    expect(await disk.free()).toBeGreaterThan(before - SLACK);
    expect(await uploadSessions()).toEqual([]);
    await expectPullable(earlier, '1');
  });

  it('a chunked upload that does not fit answers 507, its session and bytes are gone, the next session starts', async () => {
    const before = await disk.free();
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    expect(start.status).toBe(202);
    const location = start.headers.get('location') as string;
    const first = await api('PATCH', location, {
      body: randomBytes(4 * MiB),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(first.status).toBe(202);
    const second = await api('PATCH', location, {
      body: randomBytes(40 * MiB),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expectStorageFull(second);
    expect(await disk.free()).toBeGreaterThan(before - SLACK);
    expect(await uploadSessions()).toEqual([]);
    expect((await api('GET', location)).status).toBe(404);
    await expectPullable(earlier, '1');
    // not wedged: a new session starts and a push that fits succeeds, without a restart
    const again = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    expect(again.status).toBe(202);
    expect((await api('DELETE', again.headers.get('location') as string)).status).toBe(204);
    await expectPullable(await pushImage('2', 2 * MiB), '2');
  });

  it('a streamed PATCH and a PUT with the last chunk that do not fit answer 507 and give their bytes back', async () => {
    const before = await disk.free();
    const big = randomBytes(40 * MiB);
    const streamed = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const streamedPath = streamed.headers.get('location') as string;
    const patched = await streamedPatch(new URL(streamedPath, reg.url), big);
    expect(patched.status, patched.body).toBe(507);
    expect((JSON.parse(patched.body) as StorageFullBody).errors[0]?.message).toMatch(
      /^storage is full/,
    );
    expect((await api('GET', streamedPath)).status).toBe(404);

    const finished = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const put = await api(
      'PUT',
      `${finished.headers.get('location') as string}?digest=${content(big).digest}`,
      {
        body: big,
        headers: { 'content-type': 'application/octet-stream' },
      },
    );
    expectStorageFull(put);
    expect(await disk.free()).toBeGreaterThan(before - SLACK);
    expect(await uploadSessions()).toEqual([]);
    await expectPullable(earlier, '1');
  });

  it('a manifest put onto a full disk answers 507; once space is freed the same put succeeds', async () => {
    const config = content(JSON.stringify({ architecture: 'amd64', os: 'linux', tag: '3' }));
    const layer = content(randomBytes(64 * 1024));
    for (const blob of [config, layer]) {
      expect(
        (
          await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${blob.digest}`, {
            body: blob.bytes,
          })
        ).status,
      ).toBe(201);
    }
    const manifest = imageManifest(config, [layer]);
    const filler = await disk.fill();
    try {
      const put = await api('PUT', `/v2/${NAME}/manifests/3`, {
        body: manifest.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expectStorageFull(put);
      const session = await api('POST', `/v2/${NAME}/blobs/uploads/`);
      expectStorageFull(session);
      // a small write that does not fit leaves no temporary file behind
      const driver = createFilesystemDriver(join(disk.dir, 'registry'));
      await expect(
        driver.putContent('repositories/full/app/probe', randomBytes(256 * 1024)),
      ).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(
        (await readdir(join(disk.dir, 'registry', 'repositories', NAME))).filter((n) =>
          n.startsWith('probe'),
        ),
      ).toEqual([]);
      expect(await uploadSessions()).toEqual([]);
      await expectPullable(earlier, '1');
    } finally {
      await rm(filler);
    }
    const put = await api('PUT', `/v2/${NAME}/manifests/3`, {
      body: manifest.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(put.status).toBe(201);
    await expectPullable({ layer, manifest }, '3');
  });
});

describe.skipIf(unavailable !== undefined)('registry below its free-space reserve', () => {
  beforeAll(async () => {
    disk = await mountTmpfs('registry-reserve', 16 * MiB);
    reg = await startTestRegistry({
      storageDir: join(disk.dir, 'registry'),
      minFreeBytes: 8 * MiB,
    });
  });
  afterAll(async () => {
    try {
      await reg?.stop();
    } finally {
      await disk?.unmount();
    }
  });

  it('refuses writes early with 507, keeps reads, warns in /readyz and exports the free bytes', async () => {
    const image = await pushImage('1', 1 * MiB);
    const healthy = await api('GET', '/readyz', { auth: false });
    expect(healthy.status).toBe(200);
    expect(
      healthy.json<{ checks: Record<string, { status: string }> }>().checks.storage?.status,
    ).toBe('ok');

    // leave 4 MiB free: below the 8 MiB reserve, but room enough that nothing fails by itself
    await writeFile(join(disk.dir, 'ballast'), Buffer.alloc((await disk.free()) - 4 * MiB));
    expect(await disk.free()).toBeLessThan(8 * MiB);

    expectStorageFull(await api('POST', `/v2/${NAME}/blobs/uploads/`));
    const small = content(randomBytes(1024));
    expectStorageFull(
      await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${small.digest}`, { body: small.bytes }),
    );
    const put = await api('PUT', `/v2/${NAME}/manifests/again`, {
      body: image.manifest.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expectStorageFull(put);
    await expectPullable(image, '1');

    const ready = await api('GET', '/readyz', { auth: false });
    expect(ready.status).toBe(200);
    const storage = ready.json<{ checks: Record<string, { status: string; detail?: string }> }>()
      .checks.storage;
    expect(storage?.status).toBe('warn');
    expect(storage?.detail).toMatch(
      /^storage low: \d+ bytes free on the registry volume, below the reserve of 8388608/,
    );

    const metrics = (await api('GET', '/metrics', { auth: false })).body.toString();
    const free = /flotilla_storage_free_bytes\{volume="registry",service="registry"\} (\d+)/.exec(
      metrics,
    );
    expect(free, metrics).not.toBeNull();
    expect(Number(free?.[1])).toBeLessThan(8 * MiB);
    expect(metrics).toMatch(
      /flotilla_storage_reserve_bytes\{volume="registry",service="registry"\} 8388608/,
    );

    await rm(join(disk.dir, 'ballast'));
    expect(
      (
        await api('PUT', `/v2/${NAME}/manifests/again`, {
          body: image.manifest.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        })
      ).status,
    ).toBe(201);
  });
});

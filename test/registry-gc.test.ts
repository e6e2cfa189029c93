/**
 * `flotilla registry gc` (the real command, as a child process) against a registry that is
 * serving: it never races a push — layers uploaded within the grace period, or linked into a
 * repository with an open upload session, survive although no manifest names them yet, and
 * the manifest put that follows succeeds — while old unreferenced blobs are swept and expired
 * upload sessions are purged with their bytes. `--dry-run` reports the same and removes nothing.
 */
import { randomBytes } from 'node:crypto';
import { stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRegistry, type TestRegistry } from '../services/registry/test/harness.js';
import {
  content,
  imageManifest,
  makeApi,
  OCI_MANIFEST,
  type Content,
} from '../services/registry/test/http.js';
import { run } from './support/clients.js';
import { repoRoot } from './support/flotilla.js';

interface GcReport {
  dryRun: boolean;
  swept: Array<{ digest: string; size: number }>;
  recent: number;
  uploading: number;
  uploadsPurged: Array<{ repository: string; uuid: string; bytes: number }>;
  uploadBytesFreed: number;
}

let reg: TestRegistry;
const api = makeApi(() => reg.url);
const HOURS = 3_600_000;

async function gc(dryRun: boolean, env: Record<string, string> = {}): Promise<GcReport> {
  const args = [
    '--conditions=source',
    '--import',
    'tsx',
    'services/cli/src/main.ts',
    '--json',
    '--data-dir',
    reg.dir,
    'registry',
    'gc',
  ];
  const r = await run(process.execPath, dryRun ? [...args, '--dry-run'] : args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'silent', ...env },
    timeoutMs: 60_000,
  });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as GcReport;
}

async function upload(name: string, blob: Content): Promise<void> {
  expect(
    (await api('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes }))
      .status,
  ).toBe(201);
}

function blobPath(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(reg.dir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

async function backdate(path: string, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms);
  await utimes(path, then, then);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Layers of a build whose manifest is not pushed yet. */
async function startBuild(name: string, ageMs = 0): Promise<{ manifest: Content; layer: Content }> {
  const config = content(JSON.stringify({ architecture: 'amd64', os: 'linux', build: name }));
  const layer = content(randomBytes(32 * 1024));
  for (const blob of [config, layer]) {
    await upload(name, blob);
    if (ageMs > 0) {
      const hex = blob.digest.slice('sha256:'.length);
      await backdate(blobPath(blob.digest), ageMs);
      await backdate(
        join(reg.dir, 'registry', 'repositories', name, '_layers', 'sha256', hex, 'link'),
        ageMs,
      );
    }
  }
  return { manifest: imageManifest(config, [layer]), layer };
}

async function finishBuild(
  name: string,
  build: { manifest: Content; layer: Content },
): Promise<void> {
  const put = await api('PUT', `/v2/${name}/manifests/latest`, {
    body: build.manifest.bytes,
    headers: { 'content-type': OCI_MANIFEST },
  });
  expect(put.status, put.body.toString()).toBe(201);
  const pulled = await api('GET', `/v2/${name}/blobs/${build.layer.digest}`);
  expect(pulled.status).toBe(200);
  expect(pulled.body.equals(build.layer.bytes)).toBe(true);
}

describe('flotilla registry gc while builds push', () => {
  beforeAll(async () => {
    reg = await startTestRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('keeps what pushes in progress need, sweeps old orphans, purges expired uploads; --dry-run reports the same', async () => {
    // an orphan from long ago: swept
    const orphan = content(randomBytes(16 * 1024));
    await upload('gc/old', orphan);
    await backdate(blobPath(orphan.digest), 3 * HOURS);
    await backdate(
      join(
        reg.dir,
        'registry',
        'repositories',
        'gc/old',
        '_layers',
        'sha256',
        orphan.digest.slice(7),
        'link',
      ),
      3 * HOURS,
    );

    // an upload abandoned two days ago: purged with its bytes
    const stale = await api('POST', '/v2/gc/stale/blobs/uploads/');
    const staleLocation = stale.headers.get('location') as string;
    expect((await api('PATCH', staleLocation, { body: randomBytes(1000) })).status).toBe(202);
    const staleUuid = staleLocation.slice(staleLocation.lastIndexOf('/') + 1);
    const staleDir = join(reg.dir, 'registry', 'repositories', 'gc/stale', '_uploads', staleUuid);
    await writeFile(join(staleDir, 'startedat'), new Date(Date.now() - 48 * HOURS).toISOString());

    // a build that just uploaded its layers (within the grace period)
    const fresh = await startBuild('gc/fresh');
    // a slow build: layers older than the grace period, another upload still open
    const slow = await startBuild('gc/slow', 3 * HOURS);
    const open = await api('POST', '/v2/gc/slow/blobs/uploads/');
    expect(open.status).toBe(202);

    const preview = await gc(true);
    expect(preview.dryRun).toBe(true);
    expect(preview.swept.map((s) => s.digest)).toEqual([orphan.digest]);
    expect(preview.uploadsPurged).toEqual([
      { repository: 'gc/stale', uuid: staleUuid, bytes: 1000 },
    ]);
    expect(preview.recent).toBe(2);
    expect(preview.uploading).toBe(2);
    expect(await exists(blobPath(orphan.digest))).toBe(true);
    expect(await exists(staleDir)).toBe(true);

    const report = await gc(false);
    expect(report.dryRun).toBe(false);
    expect(report.swept).toEqual(preview.swept);
    expect(report.uploadsPurged).toEqual(preview.uploadsPurged);
    expect(report.uploadBytesFreed).toBe(1000);
    expect(await exists(blobPath(orphan.digest))).toBe(false);
    expect(await exists(staleDir)).toBe(false);
    expect((await api('GET', staleLocation)).status).toBe(404);

    // both builds finish after gc ran: their manifests find every layer
    await finishBuild('gc/fresh', fresh);
    await finishBuild('gc/slow', slow);
    expect((await api('DELETE', open.headers.get('location') as string)).status).toBe(204);
  });

  it('a zero grace period sweeps a finished upload nobody references (the guard is the grace period)', async () => {
    const build = await startBuild('gc/nograce');
    await new Promise((resolve) => setTimeout(resolve, 1100)); // past the mark's one-second slack
    const report = await gc(false, { FLOTILLA_REGISTRY_GC_GRACE: '0' });
    expect(report.swept.map((s) => s.digest)).toContain(build.layer.digest);
    const put = await api('PUT', '/v2/gc/nograce/manifests/latest', {
      body: build.manifest.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(put.status).toBe(400);
    expect(put.errorCode()).toBe('MANIFEST_BLOB_UNKNOWN');
  });
});

/**
 * Real clients against the registry: buildah builds from scratch and pushes with
 * credentials, skopeo copies both ways (a two-platform index with --all included), podman
 * pulls, skopeo copies between our registry and Docker Distribution with identical digests,
 * and wrong credentials are refused. Each client gets private storage under a temp dir.
 */
import { createLocalBus } from '@flotilla/bus';
import { listen } from '@flotilla/kit';
import { createRegistryService, type RegistryServiceInstance } from '@flotilla/registry';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildah, podman, requireBinaries, run, skopeo } from './support/clients.js';
import { startDistribution, type RunningDistribution } from './support/distribution.js';
import { makeImage, pushImage, writeOciLayout } from './support/images.js';

const PASSWORD = 'clients-admin-password';
const need = requireBinaries(['skopeo', 'podman', 'buildah', 'docker-registry']);

interface Running {
  url: string;
  host: string;
  service: RegistryServiceInstance;
  stop(): Promise<void>;
}

async function startRegistry(dir: string): Promise<Running> {
  const logger = pino({ level: 'silent' });
  const bus = createLocalBus({ logger });
  const service = await createRegistryService({
    config: {
      port: 0,
      host: '127.0.0.1',
      dataDir: dir,
      storageDir: join(dir, 'registry'),
      deleteEnabled: true,
      uploadTtlMs: 3_600_000,
      adminPassword: PASSWORD,
      anonymousPull: true,
      authReloadIntervalMs: 0,
    },
    logger,
    bus,
  });
  await service.start();
  const server = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  return {
    url: server.url,
    host: server.url.replace('http://', ''),
    service,
    async stop() {
      await server.close();
      await service.stop();
      await bus.close();
    },
  };
}

const sha256 = (bytes: string | Buffer): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe.skipIf(!need.ok)('registry with real clients', () => {
  let work: string;
  let reg: Running;
  let peer: RunningDistribution;
  const creds = `admin:${PASSWORD}`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-clients-'));
    reg = await startRegistry(join(work, 'data'));
    peer = await startDistribution();
  });
  afterAll(async () => {
    await reg?.stop();
    await peer?.stop();
    if (work) await run('rm', ['-rf', work]);
  });

  async function rawManifest(ref: string): Promise<string> {
    return (await skopeo(['inspect', '--raw', '--tls-verify=false', ref])).stdout;
  }

  it('buildah builds an image from scratch and pushes it with credentials', async () => {
    const root = await mkdtemp(join(work, 'buildah-'));
    const ctr = (await buildah(root, ['from', 'scratch'])).stdout.trim();
    await writeFile(join(root, 'hello.txt'), 'hello from flotilla\n');
    await buildah(root, ['copy', ctr, join(root, 'hello.txt'), '/hello.txt']);
    await buildah(root, ['config', '--cmd', '/hello.txt', ctr]);
    await buildah(root, ['commit', ctr, 'flotilla-scratch:latest']);
    await buildah(root, [
      'push',
      '--tls-verify=false',
      '--creds',
      creds,
      'flotilla-scratch:latest',
      `docker://${reg.host}/build/scratch:v1`,
    ]);
    const manifest = JSON.parse(await rawManifest(`docker://${reg.host}/build/scratch:v1`)) as {
      layers: Array<{ digest: string }>;
    };
    expect(manifest.layers).toHaveLength(1);
    const layer = await fetch(`${reg.url}/v2/build/scratch/blobs/${manifest.layers[0]?.digest}`);
    expect(layer.status).toBe(200);
    expect(sha256(Buffer.from(await layer.arrayBuffer()))).toBe(manifest.layers[0]?.digest);
  });

  it('refuses wrong credentials (buildah and skopeo) and stores nothing', async () => {
    const root = await mkdtemp(join(work, 'buildah-wrong-'));
    const ctr = (await buildah(root, ['from', 'scratch'])).stdout.trim();
    await buildah(root, ['commit', ctr, 'flotilla-empty:latest']);
    const pushed = await run('buildah', [
      '--root',
      join(root, 'root'),
      '--runroot',
      join(root, 'run'),
      '--storage-driver',
      'vfs',
      'push',
      '--tls-verify=false',
      '--creds',
      'admin:wrong',
      'flotilla-empty:latest',
      `docker://${reg.host}/build/denied:v1`,
    ]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr.toLowerCase()).toMatch(/unauthori[sz]ed|authentication required/);
    const layout = await writeOciLayout(join(work, 'oci-wrong'), makeImage(), 'v1');
    const copied = await run('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'admin:wrong',
      layout,
      `docker://${reg.host}/build/denied:v2`,
    ]);
    expect(copied.code).not.toBe(0);
    const tags = await fetch(`${reg.url}/v2/build/denied/tags/list`);
    expect(tags.status).toBe(404);
  });

  it('skopeo copies an OCI layout in and back out with identical digests', async () => {
    const image = makeImage({ layers: 2, layerBytes: 32 * 1024 });
    const layout = await writeOciLayout(join(work, 'oci-in'), image, 'v1');
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      layout,
      `docker://${reg.host}/skopeo/single:v1`,
    ]);
    const raw = await rawManifest(`docker://${reg.host}/skopeo/single:v1`);
    expect(sha256(raw)).toBe(image.top.digest);
    const out = join(work, 'oci-out');
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.host}/skopeo/single:v1`,
      `oci:${out}:v1`,
    ]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string }>;
    };
    expect(index.manifests[0]?.digest).toBe(image.top.digest);
    for (const layer of image.images[0]?.layers ?? []) {
      const bytes = await readFile(join(out, 'blobs', 'sha256', layer.digest.slice(7)));
      expect(sha256(bytes)).toBe(layer.digest);
    }
  });

  it('skopeo copy --all pushes and pulls a two-platform index', async () => {
    const image = makeImage({
      layers: 1,
      layerBytes: 16 * 1024,
      platforms: ['linux/amd64', 'linux/arm64'],
    });
    const layout = await writeOciLayout(join(work, 'oci-multi'), image, 'v1');
    await skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      layout,
      `docker://${reg.host}/skopeo/multi:v1`,
    ]);
    expect(sha256(await rawManifest(`docker://${reg.host}/skopeo/multi:v1`))).toBe(
      image.index?.digest,
    );
    for (const child of image.images) {
      const res = await fetch(`${reg.url}/v2/skopeo/multi/manifests/${child.manifest.digest}`);
      expect(res.status).toBe(200);
    }
    const out = join(work, 'oci-multi-out');
    await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${reg.host}/skopeo/multi:v1`,
      `oci:${out}:v1`,
    ]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string }>;
    };
    expect(index.manifests[0]?.digest).toBe(image.index?.digest);
    const arm = image.images[1];
    const armLayer = await readFile(
      join(out, 'blobs', 'sha256', (arm?.layers[0]?.digest ?? '').slice(7)),
    );
    expect(sha256(armLayer)).toBe(arm?.layers[0]?.digest);
  });

  it('podman pulls (anonymously) what was pushed', async () => {
    const pushed = await pushImage(reg.url, 'podman/app', 'v1', {
      layers: 2,
      layerBytes: 8 * 1024,
      auth: { username: 'admin', password: PASSWORD },
    });
    const root = await mkdtemp(join(work, 'podman-'));
    const pulled = await podman(root, ['pull', '--tls-verify=false', `${reg.host}/podman/app:v1`]);
    const imageId = pulled.stdout.trim().split('\n').pop() ?? '';
    expect(`sha256:${imageId}`).toBe(pushed.image.images[0]?.config.digest);
    const digests = await podman(root, ['images', '--digests', '--format', '{{.Digest}}']);
    expect(digests.stdout).toContain(pushed.digest);
  });

  it('skopeo copies between our registry and Docker Distribution both ways with identical digests', async () => {
    const image = makeImage({
      layers: 2,
      layerBytes: 16 * 1024,
      platforms: ['linux/amd64', 'linux/arm64'],
    });
    await pushImage(reg.url, 'peer/app', 'v1', {
      image,
      auth: { username: 'admin', password: PASSWORD },
    });
    await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${reg.host}/peer/app:v1`,
      `docker://${peer.host}/peer/app:v1`,
    ]);
    const theirs = await rawManifest(`docker://${peer.host}/peer/app:v1`);
    expect(sha256(theirs)).toBe(image.index?.digest);
    await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      `docker://${peer.host}/peer/app:v1`,
      `docker://${reg.host}/peer/back:v1`,
    ]);
    const back = await rawManifest(`docker://${reg.host}/peer/back:v1`);
    expect(back).toBe(theirs);
    for (const child of image.images) {
      const ours = await fetch(`${reg.url}/v2/peer/back/manifests/${child.manifest.digest}`, {
        method: 'HEAD',
      });
      expect(ours.headers.get('docker-content-digest')).toBe(child.manifest.digest);
    }
  });
});

/**
 * Crane against real clients: podman pull and skopeo copy through crane, with blob redirects
 * to a loopback static server over the same published tree; then the same image pushed to
 * Docker Distribution, and crane's manifest answers compared with Distribution's byte for byte.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { listen, type RunningServer } from '@flotilla/kit';
import { createCraneService, loadCraneConfig, type CraneService } from '@flotilla/crane';
import bcrypt from 'bcryptjs';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podman, requireBinaries, run, skopeo } from './support/clients.js';
import { startDistribution, type RunningDistribution } from './support/distribution.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { writePublishedTree, type WrittenTree } from './support/tree.js';

const REPO = 'fedora/httpd';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const ALL = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

// throws under CI=true when a binary is missing, else prints the reason and we skip
const binaries = requireBinaries(['skopeo', 'podman', 'docker-registry']);
const absent = binaries.ok ? [] : [binaries.reason];
const describeClients = binaries.ok ? describe : describe.skip;

let work: string;
let tree: WrittenTree;
let mirror: StaticServer;
let crane: CraneService;
let server: RunningServer;
let craneHost: string;

beforeAll(async () => {
  if (absent.length > 0) return;
  work = await mkdtemp(path.join(os.tmpdir(), 'crane-clients-'));
  const root = path.join(work, 'tree');
  tree = await writePublishedTree(root, {
    publication: 1,
    repositories: [
      {
        name: REPO,
        tags: {
          '39': {},
          docker: { flavour: 'docker' },
          single: { kind: 'image', flavour: 'docker', layers: 3 },
        },
      },
    ],
  });
  mirror = await startStaticServer(root);
  const logger = pino({ level: 'silent' });
  const config = loadCraneConfig({
    FLOTILLA_PUBLISH_DIR: root,
    FLOTILLA_CRANE_BLOB_BASE_URL: mirror.url,
    FLOTILLA_CRANE_POLL_INTERVAL: '0',
    FLOTILLA_CRANE_RATE_LIMIT: '0',
  });
  crane = await createCraneService({ config, logger });
  await crane.start();
  server = await listen(crane.handler, { port: 0, logger });
  craneHost = server.url.replace('http://', '');
}, 60_000);

afterAll(async () => {
  if (absent.length > 0) return;
  await server?.close();
  await crane?.stop();
  await mirror?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function manifestOf(base: string, ref: string, accept: string | undefined, method = 'GET') {
  const res = await request(`${base}/v2/${REPO}/manifests/${ref}`, {
    method: method as 'GET',
    headers: accept === undefined ? {} : { accept },
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    body,
    digest: res.headers['docker-content-digest'],
    type: res.headers['content-type'],
    length: res.headers['content-length'],
  };
}

describeClients('real clients through crane', () => {
  it('skopeo copies every platform, byte for byte, with blobs from the mirror', async () => {
    const dest = path.join(work, 'oci');
    await skopeo([
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      `docker://${craneHost}/${REPO}:39`,
      `oci:${dest}:39`,
    ]);
    const index = JSON.parse(await readFile(path.join(dest, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    const published = tree.repositories[REPO]!;
    expect(index.manifests[0]!.digest).toBe(published.tags['39']);
    for (const image of published.images['39']!) {
      for (const blob of [image.digest, image.config, ...image.layers]) {
        const bytes = await readFile(path.join(dest, 'blobs', 'sha256', blob.slice(7)));
        expect(bytes.equals(published.blobs[blob] ?? published.manifests[blob]!.bytes), blob).toBe(
          true,
        );
      }
    }
    // the layers came from the mirror through crane's redirects
    const layer = published.images['39']![0]!.layers[0]!;
    expect(mirror.requests.some((r) => r.endsWith(layer.slice(7)))).toBe(true);
  }, 120_000);

  it('podman pulls the index and unpacks the amd64 image', async () => {
    const storage = path.join(work, 'podman');
    const ref = `${craneHost}/${REPO}:39`;
    await podman(storage, ['pull', '--tls-verify=false', '--arch', 'amd64', ref], {
      timeoutMs: 150_000,
    });
    const { stdout } = await podman(storage, [
      'image',
      'inspect',
      '--format',
      '{{.Digest}} {{.Id}}',
      ref,
    ]);
    const [digest, id] = stdout.trim().split(' ');
    const published = tree.repositories[REPO]!;
    expect(digest).toBe(published.tags['39']);
    const amd64 = published.images['39']!.find((i) => i.platform.architecture === 'amd64')!;
    expect(`sha256:${id}`).toBe(amd64.config);
    await podman(storage, ['rmi', '--all', '--force']).catch(() => undefined);
  }, 180_000);
});

describeClients('real clients and protected repositories', () => {
  let protectedCrane: CraneService;
  let protectedServer: RunningServer;
  let host: string;

  beforeAll(async () => {
    const htpasswd = path.join(work, 'htpasswd');
    await writeFile(htpasswd, `puller:${bcrypt.hashSync('pull-secret', 6)}\n`);
    const logger = pino({ level: 'silent' });
    protectedCrane = await createCraneService({
      config: loadCraneConfig({
        FLOTILLA_PUBLISH_DIR: path.join(work, 'tree'),
        FLOTILLA_CRANE_BLOB_BASE_URL: mirror.url,
        FLOTILLA_CRANE_POLL_INTERVAL: '0',
        FLOTILLA_CRANE_RATE_LIMIT: '0',
        FLOTILLA_CRANE_PROTECTED: 'private/**',
        FLOTILLA_CRANE_HTPASSWD: htpasswd,
      }),
      logger,
    });
    await writePublishedTree(path.join(work, 'tree'), {
      publication: 2,
      repositories: [
        { name: 'private/app', tags: { v1: { kind: 'image', flavour: 'docker', layers: 1 } } },
      ],
    });
    await protectedCrane.start();
    protectedServer = await listen(protectedCrane.handler, { port: 0, logger });
    host = protectedServer.url.replace('http://', '');
  }, 60_000);

  afterAll(async () => {
    await protectedServer?.close();
    await protectedCrane?.stop();
  });

  it('anonymous skopeo still reads public repositories behind the Basic challenge', async () => {
    const { stdout } = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${host}/${REPO}:single`,
    ]);
    expect(
      Buffer.from(stdout).equals(
        tree.repositories[REPO]!.manifests[tree.repositories[REPO]!.tags.single!]!.bytes,
      ),
    ).toBe(true);
  }, 60_000);

  it('protected repositories: unknown without credentials, pulled with them', async () => {
    const without = await run('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${host}/private/app:v1`,
    ]);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/unknown|not found|manifest unknown|name unknown/i);
    const storage = path.join(work, 'podman-protected');
    await podman(
      storage,
      ['pull', '--tls-verify=false', '--creds', 'puller:pull-secret', `${host}/private/app:v1`],
      {
        timeoutMs: 150_000,
      },
    );
    await podman(storage, ['rmi', '--all', '--force']).catch(() => undefined);
  }, 180_000);
});

describeClients('crane answers like Docker Distribution', () => {
  let distribution: RunningDistribution | undefined;
  let distributionUrl: string;

  beforeAll(async () => {
    distribution = await startDistribution();
    distributionUrl = distribution.url;
    for (const tag of ['39', 'docker', 'single']) {
      await skopeo([
        'copy',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${craneHost}/${REPO}:${tag}`,
        `docker://${distribution.host}/${REPO}:${tag}`,
      ]);
    }
  }, 120_000);

  afterAll(async () => {
    await distribution?.stop();
  });

  const cases: Array<[string, (t: WrittenTree) => string, string | undefined, string]> = [
    ['OCI index by tag', () => '39', ALL, 'GET'],
    ['OCI index by tag, HEAD', () => '39', ALL, 'HEAD'],
    ['manifest list by tag', () => 'docker', ALL, 'GET'],
    [
      'manifest list by tag, schema2-only client (amd64 child)',
      () => 'docker',
      DOCKER_MANIFEST,
      'GET',
    ],
    [
      'manifest list by digest, schema2-only client',
      (t) => t.repositories[REPO]!.tags.docker!,
      DOCKER_MANIFEST,
      'GET',
    ],
    ['schema2 image by tag', () => 'single', ALL, 'GET'],
    ['schema2 image by digest', (t) => t.repositories[REPO]!.tags.single!, DOCKER_MANIFEST, 'GET'],
    [
      'OCI child by digest',
      (t) => t.repositories[REPO]!.images['39']![1]!.digest,
      OCI_MANIFEST,
      'GET',
    ],
  ];

  it.each(cases)('%s', async (_name, ref, accept, method) => {
    const reference = ref(tree);
    const ours = await manifestOf(server.url, reference, accept, method);
    const theirs = await manifestOf(distributionUrl, reference, accept, method);
    expect(theirs.status).toBe(200);
    expect(ours.status).toBe(theirs.status);
    expect(ours.digest).toBe(theirs.digest);
    expect(ours.type).toBe(theirs.type);
    expect(ours.length).toBe(theirs.length);
    expect(ours.body.equals(theirs.body)).toBe(true);
  });
});

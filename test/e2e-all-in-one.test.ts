/**
 * The whole proposal on one machine, as a newcomer runs it (`flotilla start`), driven by real
 * clients: buildah pushes, content syncs on its own, the CLI promotes, a signed Bodhi webhook
 * publishes, two loopback mirrors are crawled (one current, one a publication behind), and
 * podman and skopeo pull through crane → redirector → mirror. A testing-only tag published to
 * testing reaches the testers' crane and leaves stable's crane byte for byte as it was.
 */
import { createHash, createHmac } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSignatureTag, signatureTag } from '@flotilla/protocol';
import { buildah, podman, requireBinaries, skopeo } from './support/clients.js';
import {
  flotillaCli,
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { freePort } from './support/ports.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';

const need = requireBinaries(['buildah', 'podman', 'skopeo']);
if (!need.ok) console.log(`all-in-one end-to-end test skipped: ${need.reason}`);

/** Copies the published tree to a mirror the way the docs tell mirrors to: PUBLICATION last. */
async function syncMirror(publishDir: string, mirrorDir: string): Promise<void> {
  await mkdir(mirrorDir, { recursive: true });
  await cp(publishDir, mirrorDir, {
    recursive: true,
    filter: (src) => !src.endsWith('/PUBLICATION'),
  });
  await cp(join(publishDir, 'PUBLICATION'), join(mirrorDir, 'PUBLICATION'));
}

describe.skipIf(!need.ok)('all-in-one: push → sync → promote → publish → mirrors → pull', () => {
  let work: string;
  let ports: ServicePorts;
  let env: NodeJS.ProcessEnv;
  let flotilla: FlotillaProcess;
  let mirrorA: StaticServer;
  let mirrorB: StaticServer;
  let testingPort: number;
  const b = () => join(work, 'buildah');
  const registry = () => `127.0.0.1:${ports.registry}`;
  const crane = () => `127.0.0.1:${ports.crane}`;
  const craneTesting = () => `127.0.0.1:${testingPort}`;
  const secret = async (name: string) =>
    (await readFile(join(work, 'var', 'secrets', name), 'utf8')).trim();
  const cli = async (...args: string[]) => (await flotillaCli(env, args)).stdout;
  const cliJson = async <T>(...args: string[]) => JSON.parse(await cli('--json', ...args)) as T;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-e2e-'));
    ports = await freeServicePorts();
    testingPort = await freePort();
    env = flotillaEnv({
      dataDir: join(work, 'var'),
      ports,
      extra: { FLOTILLA_CRANE_TESTING_PORT: String(testingPort) },
    });
    flotilla = await startFlotilla(['start'], env, ports);
    await mkdir(join(work, 'mirror-a'));
    await mkdir(join(work, 'mirror-b'));
    mirrorA = await startStaticServer(join(work, 'mirror-a'));
    mirrorB = await startStaticServer(join(work, 'mirror-b'));
  }, 120_000);

  afterAll(async () => {
    const code = await flotilla?.stop();
    await mirrorA?.stop();
    await mirrorB?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    expect(code, 'flotilla start exits 0 on SIGTERM').toBe(0);
  }, 60_000);

  const manifestDigest = async (host: string, repo: string, ref: string): Promise<string> => {
    const res = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, {
      method: 'HEAD',
      headers: {
        authorization: `Basic ${Buffer.from(`admin:${await secret('admin-password')}`).toString('base64')}`,
        accept:
          'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json',
      },
    });
    expect(res.status).toBe(200);
    return res.headers.get('docker-content-digest')!;
  };

  const channelTags = async (repo: string, channel: string): Promise<Record<string, string>> => {
    const r = await cliJson<{ channels: Array<{ name: string; tags: Record<string, string> }> }>(
      'repos',
      repo,
    );
    return r.channels.find((c) => c.name === channel)?.tags ?? {};
  };

  it('runs the whole flow with real clients', async () => {
    // 1. buildah builds from scratch: an image with two layers, and a two-platform index.
    const creds = `admin:${await secret('admin-password')}`;
    await writeFile(join(work, 'one.txt'), 'first layer\n');
    await writeFile(join(work, 'two.txt'), 'second layer\n');
    const c1 = (await buildah(b(), ['from', 'scratch'])).stdout.trim();
    await buildah(b(), ['copy', c1, join(work, 'one.txt'), '/one.txt']);
    await buildah(b(), ['commit', '-q', c1, 'localhost/e2e-layer-one']);
    const c2 = (await buildah(b(), ['from', 'localhost/e2e-layer-one'])).stdout.trim();
    await buildah(b(), ['copy', c2, join(work, 'two.txt'), '/two.txt']);
    await buildah(b(), ['commit', '-q', c2, 'localhost/e2e-base:1']);
    await buildah(b(), [
      'push',
      '--tls-verify=false',
      '--creds',
      creds,
      'localhost/e2e-base:1',
      `docker://${registry()}/fedora/base:1`,
    ]);

    await buildah(b(), ['manifest', 'create', 'localhost/e2e-httpd-list']);
    for (const arch of ['amd64', 'arm64']) {
      await writeFile(join(work, `${arch}.txt`), `built for ${arch}\n`);
      const c = (await buildah(b(), ['from', 'scratch'])).stdout.trim();
      await buildah(b(), ['copy', c, join(work, `${arch}.txt`), '/arch.txt']);
      await buildah(b(), ['config', '--os', 'linux', '--arch', arch, c]);
      await buildah(b(), ['commit', '-q', c, `localhost/e2e-httpd-${arch}`]);
      await buildah(b(), [
        'manifest',
        'add',
        'localhost/e2e-httpd-list',
        `containers-storage:localhost/e2e-httpd-${arch}:latest`,
      ]);
    }
    await buildah(b(), [
      'manifest',
      'push',
      '--all',
      '--tls-verify=false',
      '--creds',
      creds,
      'localhost/e2e-httpd-list',
      `docker://${registry()}/fedora/httpd:39`,
    ]);
    const baseDigest = await manifestDigest(registry(), 'fedora/base', '1');
    const httpdDigest = await manifestDigest(registry(), 'fedora/httpd', '39');

    // 2. content syncs both on its own (registry.manifest.pushed → sync task → candidate).
    await waitFor('fedora/base:1 in candidate', async () =>
      (await channelTags('fedora/base', 'candidate'))['1'] === baseDigest ? true : undefined,
    );
    await waitFor('fedora/httpd:39 in candidate', async () =>
      (await channelTags('fedora/httpd', 'candidate'))['39'] === httpdDigest ? true : undefined,
    );

    // 3. the CLI promotes base to stable and publishes: publication 1.
    await cli(
      'promote',
      'fedora/base',
      '--tags',
      '1',
      '--from',
      'candidate',
      '--to',
      'testing',
      '--reason',
      'e2e',
    );
    const refused = await flotillaCli(
      env,
      ['promote', 'fedora/httpd', '--tags', '39', '--from', 'candidate', '--to', 'stable'],
      { allowFailure: true },
    );
    expect(refused.code, 'stable requires testing: the CLI exits non-zero').not.toBe(0);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    await cli('promote', 'fedora/base', '--tags', '1', '--from', 'testing', '--to', 'stable');
    const publish1 = await flotillaCli(env, ['publish', '--channel', 'stable', '--wait']);
    expect(publish1.stdout).toMatch(/completed/);
    const publishDir = join(work, 'var', 'publish');
    expect((await readFile(join(publishDir, 'PUBLICATION'), 'utf8')).trim()).toBe('1');

    // Both mirrors carry publication 1; both are registered and crawled.
    await syncMirror(publishDir, join(work, 'mirror-a'));
    await syncMirror(publishDir, join(work, 'mirror-b'));
    const a = await cliJson<{ id: string }>(
      'mirrors',
      'add',
      'mirror-a',
      mirrorA.url,
      '--country',
      'US',
      '--bandwidth',
      '100',
    );
    const bm = await cliJson<{ id: string }>(
      'mirrors',
      'add',
      'mirror-b',
      mirrorB.url,
      '--country',
      'US',
      '--bandwidth',
      '100',
    );
    await cli('mirrors', 'crawl', a.id);
    await cli('mirrors', 'crawl', bm.id);

    // 4. httpd goes to testing by the CLI, then a signed Bodhi webhook takes it to stable and
    //    publishes stable: publication 2. Only mirror A copies it.
    await cli('promote', 'fedora/httpd', '--tags', '39', '--from', 'candidate', '--to', 'testing');
    const body = JSON.stringify({
      update: 'FEDORA-CONTAINER-2026-e2e',
      status: 'stable',
      builds: [{ repository: 'fedora/httpd', tag: '39' }],
    });
    const hook = await fetch(`http://127.0.0.1:${ports.content}/api/v1/hooks/bodhi`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-flotilla-signature': `sha256=${createHmac('sha256', await secret('webhook-secret'))
          .update(body)
          .digest('hex')}`,
        'x-flotilla-timestamp': String(Math.floor(Date.now() / 1000)),
      },
      body,
    });
    expect(hook.status).toBe(202);
    const { task } = (await hook.json()) as { task: { id: string } };
    await cli('tasks', 'watch', task.id);
    expect((await readFile(join(publishDir, 'PUBLICATION'), 'utf8')).trim()).toBe('2');
    expect((await channelTags('fedora/httpd', 'stable'))['39']).toBe(httpdDigest);
    await syncMirror(publishDir, join(work, 'mirror-a'));
    await cli('mirrors', 'crawl', a.id);
    await cli('mirrors', 'crawl', bm.id);
    const mirrors = await cliJson<Array<{ id: string; publication?: number | null }>>(
      'mirrors',
      'list',
    );
    expect(mirrors.find((m) => m.id === a.id)?.publication).toBe(2);
    expect(mirrors.find((m) => m.id === bm.id)?.publication).toBe(1);

    // 5. podman and skopeo pull through crane; the digests are the pushed ones.
    const p = join(work, 'podman');
    await podman(p, ['pull', '-q', '--tls-verify=false', `${crane()}/fedora/httpd:39`]);
    await podman(p, ['pull', '-q', '--tls-verify=false', `${crane()}/fedora/base:1`]);
    const pulled = (
      await podman(p, ['image', 'inspect', '--format', '{{.Digest}}', `${crane()}/fedora/httpd:39`])
    ).stdout.trim();
    expect(pulled).toBe(httpdDigest);
    const pulledBase = (
      await podman(p, ['image', 'inspect', '--format', '{{.Digest}}', `${crane()}/fedora/base:1`])
    ).stdout.trim();
    expect(pulledBase).toBe(baseDigest);
    const dir = join(work, 'skopeo-all');
    await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${crane()}/fedora/httpd:39`,
      `dir:${dir}`,
    ]);
    const indexBytes = await readFile(join(dir, 'manifest.json'));
    expect(`sha256:${createHash('sha256').update(indexBytes).digest('hex')}`).toBe(httpdDigest);
    const copied = (await readdir(dir)).filter((f) => /^[0-9a-f]{64}$/.test(f));
    expect(copied.length).toBeGreaterThanOrEqual(4); // two configs and two layers at least

    // 6. The redirector sent blob downloads to mirrors, and the stale mirror never got a request
    //    for a blob it does not hold.
    const blobGets = (s: StaticServer) => s.requests.filter((r) => r.startsWith('GET /blobs/'));
    const publication2 = JSON.parse(
      await readFile(join(publishDir, 'publications', '2.json'), 'utf8'),
    ) as { newBlobs: string[] };
    const newInTwo = new Set(
      publication2.newBlobs.map((d) => `/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}`),
    );
    expect(newInTwo.size).toBeGreaterThan(0);
    expect(
      blobGets(mirrorA).some((r) => newInTwo.has(r.slice(4))),
      'mirror A served the new blobs',
    ).toBe(true);
    for (const r of blobGets(mirrorB)) {
      expect(newInTwo.has(r.slice(4)), `stale mirror B was sent ${r}`).toBe(false);
      await expect(
        stat(join(work, 'mirror-b', r.slice(4))),
        `mirror B holds ${r}`,
      ).resolves.toBeTruthy();
    }

    // 7. A tag only in testing, published to testing (publication 3): the testers' crane serves
    //    it, stable's crane does not and answers what it answered before, byte for byte.
    const accept = {
      accept:
        'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json',
    };
    const stableBytes = async () =>
      Buffer.from(
        await (
          await fetch(`http://${crane()}/v2/fedora/httpd/manifests/39`, { headers: accept })
        ).arrayBuffer(),
      );
    const stableBefore = await stableBytes();
    await cli(
      'promote',
      'fedora/base',
      '--tags',
      '1',
      '--target-tags',
      'next',
      '--from',
      'candidate',
      '--to',
      'testing',
    );
    expect((await flotillaCli(env, ['publish', '--channel', 'testing', '--wait'])).stdout).toMatch(
      /completed/,
    );
    expect((await readFile(join(publishDir, 'PUBLICATION'), 'utf8')).trim()).toBe('3');
    await waitFor('testing crane serves base:next', async () => {
      const res = await fetch(`http://${craneTesting()}/v2/fedora/base/tags/list`);
      return res.ok && ((await res.json()) as { tags: string[] }).tags.includes('next')
        ? true
        : undefined;
    });
    const inspected = JSON.parse(
      (
        await skopeo([
          'inspect',
          '--tls-verify=false',
          `docker://${craneTesting()}/fedora/base:next`,
        ])
      ).stdout,
    ) as { Digest: string };
    expect(inspected.Digest).toBe(baseDigest);
    expect(
      (await fetch(`http://${crane()}/v2/fedora/base/manifests/next`, { headers: accept })).status,
    ).toBe(404);
    expect((await stableBytes()).equals(stableBefore)).toBe(true);
    const stableInspect = JSON.parse(
      (await skopeo(['inspect', '--tls-verify=false', `docker://${crane()}/fedora/base:1`])).stdout,
    ) as { Digest: string; RepoTags: string[] };
    expect(stableInspect.Digest).toBe(baseDigest);
    // stable's own tag, and the signature promotion into stable made (cosign's `.sig` tag)
    expect(stableInspect.RepoTags.filter((t) => !isSignatureTag(t))).toEqual(['1']);
    expect(stableInspect.RepoTags).toContain(signatureTag(baseDigest));
  }, 300_000);
});

/**
 * Signed images end to end, checked by real clients with nothing of ours on the client side:
 * a build key from `flotilla keys generate` signs a push with `skopeo copy
 * --sign-by-sigstore-private-key`; the signature syncs into candidate; trusted build keys gate
 * promotion into stable; promotion signs with Flotilla's key; publish carries the signatures;
 * podman and skopeo verify pulls through crane → redirector → mirror with test-owned
 * `policy.json` and `registries.d` (`use-sigstore-attachments: true`); a key rotation and
 * `flotilla sign` leave a policy with only the new key working.
 *
 * Debian bookworm's podman and skopeo are built with sigstore disabled ("Debian-local change:
 * sigstore disabled"): they read the attachments but neither sign nor verify. On such a machine
 * the build signature is pushed as skopeo would push it (support/sigstore.ts), each pull is still
 * made by podman and skopeo (which must find the attachment through crane and then stop at
 * that Debian change), and the verdict is computed in-process over the same requests with the
 * rules of containers/image's `sigstoreSigned` requirement. Where the clients can verify, their
 * own verdict is asserted.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptPrivateKey } from '@flotilla/kit';
import { signatureTag } from '@flotilla/protocol';
import { requireBinaries, run, skopeo, type RunResult } from './support/clients.js';
import {
  flotillaCli,
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { makeImage, pushImage, writeOciLayout, type TestImage } from './support/images.js';
import { freePort } from './support/ports.js';
import { pushSignature, sigstoreAccepts } from './support/sigstore.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';

const need = requireBinaries(['podman', 'skopeo']);

/** Copies the published tree to a mirror the way the docs tell mirrors to: PUBLICATION last. */
async function syncMirror(publishDir: string, mirrorDir: string): Promise<void> {
  await mkdir(mirrorDir, { recursive: true });
  await cp(publishDir, mirrorDir, {
    recursive: true,
    filter: (src) => !src.endsWith('/PUBLICATION') && !src.includes('/.staging'),
  });
  await cp(join(publishDir, 'PUBLICATION'), join(mirrorDir, 'PUBLICATION'));
}

describe.skipIf(!need.ok)(
  'signed images: skopeo signs, Flotilla signs on promotion, podman and skopeo verify',
  () => {
    let work: string;
    let ports: ServicePorts;
    /** all-in-one's testing crane (the public crane serves stable only). */
    let testingCranePort: number;
    let env: NodeJS.ProcessEnv;
    let flotilla: FlotillaProcess | undefined;
    let mirror: StaticServer;
    let mirrorId: string;
    const dataDir = () => join(work, 'var');
    const publishDir = () => join(dataDir(), 'publish');
    const registry = () => `127.0.0.1:${ports.registry}`;
    const crane = () => `127.0.0.1:${ports.crane}`;
    const testingCrane = () => `127.0.0.1:${testingCranePort}`;
    /** The unsigned and forged images are published from testing, so testers' crane serves them. */
    const servedBy = (repository: string) =>
      ['fedora/unsigned', 'fedora/forged'].includes(repository) ? testingCrane() : crane();
    const secret = async (name: string) =>
      (await readFile(join(dataDir(), 'secrets', name), 'utf8')).trim();
    const cli = async (...args: string[]) => (await flotillaCli(env, args)).stdout;
    const cliJson = async <T>(...args: string[]) => JSON.parse(await cli('--json', ...args)) as T;
    const registriesD = () => join(work, 'home', '.config', 'containers', 'registries.d');
    const podmanEnv = () => ({ ...process.env, HOME: join(work, 'home') });

    const channelTags = async (repo: string, channel: string): Promise<Record<string, string>> => {
      const r = await cliJson<{ channels: Array<{ name: string; tags: Record<string, string> }> }>(
        'repos',
        repo,
      );
      return r.channels.find((c) => c.name === channel)?.tags ?? {};
    };

    const writePolicy = async (name: string, keyPaths: string[]): Promise<string> => {
      const file = join(work, `${name}.json`);
      const requirements = keyPaths.map((keyPath) => ({
        type: 'sigstoreSigned',
        keyPath,
        signedIdentity: { type: 'matchRepository' },
      }));
      await writeFile(
        file,
        JSON.stringify({
          default: [{ type: 'insecureAcceptAnything' }],
          // several sigstoreSigned entries must all hold; one entry per policy here
          transports: { docker: { [crane()]: requirements, [testingCrane()]: requirements } },
        }),
      );
      return file;
    };

    /** podman pull with a test-owned policy and registries.d (through HOME); storage per call. */
    const podmanPull = async (
      policy: string,
      ref: string,
      extra: string[] = [],
    ): Promise<RunResult> => {
      const root = await mkdtemp(join(work, 'podman-'));
      return run(
        'podman',
        [
          '--root',
          join(root, 'root'),
          '--runroot',
          join(root, 'run'),
          '--storage-driver',
          'vfs',
          '--cgroup-manager',
          'cgroupfs',
          '--events-backend',
          'file',
          'pull',
          '--tls-verify=false',
          '--signature-policy',
          policy,
          ...extra,
          ref,
        ],
        { env: podmanEnv(), timeoutMs: 120_000 },
      );
    };

    const skopeoCopy = async (policy: string, ref: string): Promise<RunResult> =>
      run('skopeo', [
        '--debug',
        '--policy',
        policy,
        '--registries.d',
        registriesD(),
        'copy',
        '--src-tls-verify=false',
        `docker://${ref}`,
        `dir:${await mkdtemp(join(work, 'skopeo-'))}`,
      ]);

    /** Whether podman and skopeo here verify sigstore signatures themselves (not on Debian bookworm). */
    let clientsVerify = true;
    const SIGSTORE_DISABLED = /sigstore disabled/;

    /**
     * Pulls `<repository>:<tag>` with podman and copies it with skopeo under a policy requiring a
     * signature by one of `keyFiles`; both must reach the verdict `accepted`.
     */
    const expectVerdict = async (
      keyFiles: string[],
      repository: string,
      tag: string,
      accepted: boolean,
      arch?: string,
    ): Promise<void> => {
      const policy = await writePolicy(
        `policy-${keyFiles.length}-${Math.random().toString(36).slice(2, 8)}`,
        keyFiles,
      );
      const ref = `${servedBy(repository)}/${repository}:${tag}`;
      const pulled = await podmanPull(policy, ref, [
        '--log-level=debug',
        ...(arch ? ['--arch', arch] : []),
      ]);
      const copied = arch ? undefined : await skopeoCopy(policy, ref);
      const what = `${ref}${arch ? ` (${arch})` : ''} with ${keyFiles.join(', ')}`;
      if (clientsVerify && SIGSTORE_DISABLED.test(pulled.stderr)) {
        clientsVerify = false;
        console.warn(
          'podman and skopeo here are built with sigstore disabled: their verdicts are computed in-process',
        );
      }
      if (clientsVerify) {
        expect(pulled.code === 0, `podman pull ${what}: ${pulled.stderr.slice(-2000)}`).toBe(
          accepted,
        );
        if (copied)
          expect(copied.code === 0, `skopeo copy ${what}: ${copied.stderr.slice(-2000)}`).toBe(
            accepted,
          );
        return;
      }
      // Without an attachment the clients decide themselves; with one, they fetched it through
      // crane and then stopped at Debian's change.
      for (const r of copied ? [pulled, copied] : [pulled]) {
        expect(r.code, what).not.toBe(0);
        expect(r.stderr, what).toMatch(/Looking for sigstore attachments/);
        if (/no signature exists/.test(r.stderr))
          expect(accepted, `${what}: the client found no signature`).toBe(false);
        else expect(r.stderr, what).toMatch(SIGSTORE_DISABLED);
      }
      const keys = await Promise.all(keyFiles.map((f) => readFile(f, 'utf8')));
      expect(
        await sigstoreAccepts(
          `http://${servedBy(repository)}`,
          repository,
          tag,
          keys,
          arch ? { arch } : {},
        ),
        what,
      ).toBe(accepted);
    };

    const start = async (extra: NodeJS.ProcessEnv): Promise<void> => {
      env = flotillaEnv({
        dataDir: dataDir(),
        ports,
        extra: { FLOTILLA_CRANE_TESTING_PORT: String(testingCranePort), ...extra },
      });
      flotilla = await startFlotilla(['start'], env, ports);
    };

    const publish = async (channel: string, repositories?: string[]): Promise<void> => {
      const out = await flotillaCli(env, [
        'publish',
        '--channel',
        channel,
        ...(repositories ? ['--repositories', repositories.join(',')] : []),
        '--wait',
      ]);
      expect(out.stdout).toMatch(/completed/);
      await syncMirror(publishDir(), join(work, 'mirror'));
      await cli('mirrors', 'crawl', mirrorId);
    };

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'flotilla-signing-'));
      ports = await freeServicePorts();
      testingCranePort = await freePort();
      await mkdir(registriesD(), { recursive: true });
      await writeFile(
        join(registriesD(), 'flotilla.yaml'),
        `docker:\n  ${crane()}:\n    use-sigstore-attachments: true\n  ${testingCrane()}:\n    use-sigstore-attachments: true\n  ${registry()}:\n    use-sigstore-attachments: true\n`,
      );
      await writeFile(
        join(work, 'accept.json'),
        JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
      );
      await writeFile(join(work, 'build-passphrase'), 'build system passphrase\n');
      await mkdir(join(work, 'mirror'));
      mirror = await startStaticServer(join(work, 'mirror'));
    }, 60_000);

    afterAll(async () => {
      await flotilla?.stop();
      await mirror?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    }, 60_000);

    it('signs, carries and verifies signatures; refuses unsigned builds; survives a key rotation', async () => {
      // 1. A build key from `flotilla keys generate` (passphrase from a file), and another key.
      const bootstrapEnv = flotillaEnv({ dataDir: dataDir(), ports });
      const generated = JSON.parse(
        (
          await flotillaCli(bootstrapEnv, [
            '--json',
            'keys',
            'generate',
            '--output',
            join(work, 'build'),
            '--passphrase-file',
            join(work, 'build-passphrase'),
          ])
        ).stdout,
      ) as { id: string; privateKey: string; publicKey: string };
      expect(generated.id).toMatch(/^[a-f0-9]{16}$/);
      await flotillaCli({ ...bootstrapEnv, FLOTILLA_KEY_PASSPHRASE: 'other' }, [
        'keys',
        'generate',
        '--output',
        join(work, 'stranger'),
      ]);
      const again = await flotillaCli(
        bootstrapEnv,
        [
          'keys',
          'generate',
          '--output',
          join(work, 'build'),
          '--passphrase-file',
          join(work, 'build-passphrase'),
        ],
        { allowFailure: true },
      );
      expect(again.code, 'an existing key is never overwritten').not.toBe(0);

      await start({
        FLOTILLA_CONTENT_TRUSTED_KEYS_BY_REPOSITORY: JSON.stringify({
          'fedora/signed': [generated.publicKey],
        }),
      });
      const flotillaKey = join(dataDir(), 'secrets', 'signing-key.pub');
      const creds = `admin:${await secret('admin-password')}`;
      const m = await cliJson<{ id: string }>(
        'mirrors',
        'add',
        'mirror',
        mirror.url,
        '--country',
        'US',
        '--bandwidth',
        '100',
      );
      mirrorId = m.id;

      // 2. skopeo signs with the build key while pushing; a second tag is pushed unsigned.
      const pushLayout = async (image: TestImage, name: string): Promise<string> =>
        writeOciLayout(join(work, `layout-${name}`), image, 'v1');
      const signedImage = makeImage({ layerBytes: 2048 });
      const unsignedImage = makeImage({ layerBytes: 2048 });
      const signedPush = await run('skopeo', [
        '--policy',
        join(work, 'accept.json'),
        '--registries.d',
        registriesD(),
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        creds,
        '--sign-by-sigstore-private-key',
        generated.privateKey,
        '--sign-passphrase-file',
        join(work, 'build-passphrase'),
        await pushLayout(signedImage, 'signed'),
        `docker://${registry()}/fedora/signed:1`,
      ]);
      if (signedPush.code !== 0) {
        // Only Debian's sigstore-less build may refuse; then the build signature is pushed as skopeo would.
        expect(signedPush.stderr).toMatch(SIGSTORE_DISABLED);
        console.warn(
          'skopeo here cannot sign (sigstore disabled): the build signature is made in-process',
        );
        await skopeo([
          '--policy',
          join(work, 'accept.json'),
          'copy',
          '--dest-tls-verify=false',
          '--dest-creds',
          creds,
          await pushLayout(signedImage, 'signed-plain'),
          `docker://${registry()}/fedora/signed:1`,
        ]);
        const buildKey = await decryptPrivateKey(
          await readFile(generated.privateKey, 'utf8'),
          'build system passphrase',
        );
        await pushSignature(`http://${registry()}`, 'fedora/signed', signedImage.top.digest, {
          privateKey: buildKey,
          identity: `${registry()}/fedora/signed`,
          auth: { username: 'admin', password: await secret('admin-password') },
        });
      }
      await skopeo([
        '--policy',
        join(work, 'accept.json'),
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        creds,
        await pushLayout(unsignedImage, 'unsigned'),
        `docker://${registry()}/fedora/signed:2`,
      ]);
      const signedDigest = signedImage.top.digest;

      // The signature syncs into candidate with the tag it signs.
      const candidate = await waitFor(
        'fedora/signed:1 and its signature in candidate',
        async () => {
          const tags = await channelTags('fedora/signed', 'candidate');
          return tags['1'] === signedDigest && tags[signatureTag(signedDigest)] && tags['2']
            ? tags
            : undefined;
        },
      );
      expect(candidate[signatureTag(unsignedImage.top.digest)]).toBeUndefined();

      // 3. Trusted build keys: the signed tag reaches stable, the unsigned one is refused (409).
      await cli(
        'promote',
        'fedora/signed',
        '--tags',
        '1,2',
        '--from',
        'candidate',
        '--to',
        'testing',
      );
      const refused = await fetch(`http://127.0.0.1:${ports.content}/api/v1/promotions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${await secret('api-token')}`,
        },
        body: JSON.stringify({
          repository: 'fedora/signed',
          tags: ['1', '2'],
          from: 'testing',
          to: 'stable',
        }),
      });
      expect(refused.status).toBe(409);
      expect(refused.headers.get('content-type')).toMatch(/problem\+json/);
      const problem = (await refused.json()) as {
        code: string;
        tags: Array<{ tag: string; digest: string; reason: string }>;
      };
      expect(problem.code).toBe('signature-required');
      expect(problem.tags).toEqual([
        { tag: '2', digest: unsignedImage.top.digest, reason: 'no signature' },
      ]);
      expect(
        await channelTags('fedora/signed', 'stable'),
        'a refused promotion changes nothing',
      ).toEqual({});
      await cli('promote', 'fedora/signed', '--tags', '1', '--from', 'testing', '--to', 'stable');

      // A two-platform index, with no trusted keys for its repository: promoted and signed.
      const multi = makeImage({ platforms: ['linux/amd64', 'linux/arm64'] });
      await pushImage(`http://${registry()}`, 'fedora/multi', '1', {
        image: multi,
        auth: { username: 'admin', password: await secret('admin-password') },
      });
      // An image that stays unsigned, and one whose signature names another digest (published from testing).
      const unsignedPublished = await pushImage(`http://${registry()}`, 'fedora/unsigned', '1', {
        auth: { username: 'admin', password: await secret('admin-password') },
      });
      const forged = await pushImage(`http://${registry()}`, 'fedora/forged', '1', {
        auth: { username: 'admin', password: await secret('admin-password') },
      });
      // Flotilla's own key, but a payload that names the signed image's digest, not this one's.
      const flotillaPrivate = await decryptPrivateKey(
        await readFile(join(dataDir(), 'secrets', 'signing-key'), 'utf8'),
        await secret('signing-key-passphrase'),
      );
      await pushSignature(`http://${registry()}`, 'fedora/forged', forged.digest, {
        privateKey: flotillaPrivate,
        identity: `${servedBy('fedora/forged')}/fedora/forged`,
        auth: { username: 'admin', password: await secret('admin-password') },
        claimedDigest: signedDigest,
      });
      for (const [repo, digest, sig] of [
        ['fedora/multi', multi.top.digest, false],
        ['fedora/unsigned', unsignedPublished.digest, false],
        ['fedora/forged', forged.digest, true],
      ] as const) {
        await waitFor(`${repo}:1 in candidate`, async () => {
          const tags = await channelTags(repo, 'candidate');
          return tags['1'] === digest && (!sig || tags[signatureTag(digest)]) ? true : undefined;
        });
        await cli('promote', repo, '--tags', '1', '--from', 'candidate', '--to', 'testing');
      }
      await cli('promote', 'fedora/multi', '--tags', '1', '--from', 'testing', '--to', 'stable');
      const stableMulti = await channelTags('fedora/multi', 'stable');
      for (const d of [multi.top.digest, ...multi.images.map((i) => i.manifest.digest)]) {
        expect(
          stableMulti[signatureTag(d)],
          `the index and each platform manifest are signed (${d})`,
        ).toBeDefined();
      }

      // Promoting again changes nothing: signing is idempotent.
      const before = await channelTags('fedora/signed', 'stable');
      await cli('promote', 'fedora/signed', '--tags', '1', '--from', 'testing', '--to', 'stable');
      expect(await channelTags('fedora/signed', 'stable')).toEqual(before);

      // `flotilla repos` names the keys that signed each tag: the build key and Flotilla's.
      const keys = await cliJson<{ current: string; keys: Array<{ id: string }> }>('keys', 'list');
      // `flotilla start` printed the key with a policy.json and a registries.d snippet for crane.
      const banner = flotilla!.output();
      expect(banner).toContain(`${keys.current} current`);
      expect(banner).toContain('"type": "sigstoreSigned"');
      expect(banner).toContain(
        `    docker:\n      ${crane()}:\n        use-sigstore-attachments: true`,
      );
      const table = await cli('repos', 'fedora/signed');
      expect(table).toMatch(/SIGNED BY/);
      const stableRow = table.split('\n').find((l) => l.startsWith('stable'));
      expect(stableRow).toContain(keys.current);
      expect(stableRow).toContain(generated.id);

      // 4. Publish: testing for the unsigned and forged images, stable for the signed ones.
      await publish('testing', ['fedora/unsigned', 'fedora/forged']);
      await publish('stable');
      const keysServed = (await (await fetch(`http://${crane()}/keys`)).json()) as {
        current: string;
      };
      expect(keysServed.current).toBe(keys.current);
      expect(await (await fetch(`http://${crane()}/keys/${keys.current}.pub`)).text()).toBe(
        await readFile(flotillaKey, 'utf8'),
      );
      const referrers = (await (
        await fetch(`http://${crane()}/v2/fedora/signed/referrers/${signedDigest}`)
      ).json()) as { manifests: Array<{ digest: string }> };
      expect(referrers.manifests.map((r) => r.digest)).toEqual([
        before[signatureTag(signedDigest)],
      ]);

      // 5. podman and skopeo pull through crane → redirector → mirror under test-owned policies.
      const stranger = join(work, 'stranger.pub');
      const blobGetsBefore = mirror.requests.filter((r) => r.startsWith('GET /blobs/')).length;
      await expectVerdict([flotillaKey], 'fedora/signed', '1', true);
      expect(
        mirror.requests.filter((r) => r.startsWith('GET /blobs/')).length,
        'blobs and signature payloads came from the mirror',
      ).toBeGreaterThan(blobGetsBefore);
      await expectVerdict([stranger], 'fedora/signed', '1', false);
      await expectVerdict([generated.publicKey], 'fedora/signed', '1', false); // the build key names the registry, not crane
      await expectVerdict([flotillaKey], 'fedora/unsigned', '1', false);
      await expectVerdict([flotillaKey], 'fedora/forged', '1', false);

      // A multi-platform index verifies for the default platform and for arm64.
      await expectVerdict([flotillaKey], 'fedora/multi', '1', true);
      await expectVerdict([flotillaKey], 'fedora/multi', '1', true, 'arm64');
      await expectVerdict([stranger], 'fedora/multi', '1', false, 'arm64');

      // 6. Rotation: a new current key, the old one retired (still published); `flotilla sign`
      //    re-signs stable, and a policy with only the new key pulls.
      await flotilla!.stop();
      flotilla = undefined;
      await writeFile(join(work, 'rotated-passphrase'), 'rotated\n');
      const rotated = JSON.parse(
        (
          await flotillaCli(bootstrapEnv, [
            '--json',
            'keys',
            'generate',
            '--output',
            join(work, 'rotated'),
            '--passphrase-file',
            join(work, 'rotated-passphrase'),
          ])
        ).stdout,
      ) as { id: string; publicKey: string; privateKey: string };
      await start({
        FLOTILLA_CONTENT_TRUSTED_KEYS_BY_REPOSITORY: JSON.stringify({
          'fedora/signed': [generated.publicKey],
        }),
        FLOTILLA_CONTENT_SIGNING_KEY: rotated.privateKey,
        FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE: join(work, 'rotated-passphrase'),
        FLOTILLA_CONTENT_RETIRED_KEYS: flotillaKey,
      });
      const signTask = await flotillaCli(env, ['sign', '--channel', 'stable', '--wait']);
      expect(signTask.stdout).toMatch(/completed/);
      await publish('stable');
      const served = (await (await fetch(`http://${crane()}/keys`)).json()) as {
        current: string;
        keys: Array<{ id: string; status: string }>;
      };
      expect(served.current).toBe(rotated.id);
      expect(served.keys.map((k) => [k.id, k.status]).sort()).toEqual(
        [
          [keys.current, 'retired'],
          [rotated.id, 'current'],
        ].sort(),
      );
      // Before a rotation only the old key signed; now the new key alone is enough.
      await expectVerdict([rotated.publicKey], 'fedora/multi', '1', true);
      await expectVerdict([rotated.publicKey], 'fedora/multi', '1', true, 'arm64');
      await expectVerdict([rotated.publicKey], 'fedora/signed', '1', true);
      await expectVerdict([flotillaKey], 'fedora/signed', '1', true); // the retired key's signature stays
      const rotatedRow = (await cli('repos', 'fedora/signed', '--channel', 'stable'))
        .split('\n')
        .find((l) => l.startsWith('stable'));
      expect(rotatedRow).toContain(rotated.id);
      // Signing again finds nothing to do.
      const stableAfter = await channelTags('fedora/multi', 'stable');
      await flotillaCli(env, ['sign', '--channel', 'stable', '--wait']);
      expect(await channelTags('fedora/multi', 'stable')).toEqual(stableAfter);
    }, 600_000);
  },
);

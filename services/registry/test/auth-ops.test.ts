/**
 * Auth (htpasswd bcrypt users, admin, anonymous pull switch, access file) and operations
 * (GC while serving, fsck).
 */
import bcrypt from 'bcryptjs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuthFiles } from '../src/auth/auth-files.js';
import { createAuthenticator } from '../src/auth/authenticator.js';
import { createUserDirectory } from '../src/auth/htpasswd.js';
import { runFsck } from '../src/ops/fsck.js';
import { runGarbageCollection } from '../src/ops/gc.js';
import { startTestRegistry, type TestRegistry } from './harness.js';
import { content, imageManifest, makeApi, OCI_MANIFEST } from './http.js';

const logger = pino({ level: 'silent' });
const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('auth', () => {
  let reg: TestRegistry;
  const api = makeApi(() => reg.url);
  const alice = basic('alice', 'alice-secret');
  const bob = basic('bob', 'bob-secret');

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-auth-'));
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(
      htpasswd,
      `alice:${bcrypt.hashSync('alice-secret', 4).replace('$2b$', '$2y$')}\nbob:${bcrypt.hashSync('bob-secret', 4)}\n`,
    );
    const access = join(dir, 'access.json');
    await writeFile(
      access,
      JSON.stringify({
        rules: [
          { users: ['alice'], repositories: ['alice/**'], actions: ['pull', 'push', 'delete'] },
          { users: ['*'], repositories: ['shared/*'], actions: ['pull'] },
        ],
      }),
    );
    reg = await startTestRegistry({
      htpasswdFile: htpasswd,
      accessFile: access,
      anonymousPull: false,
    });
  });
  afterAll(async () => {
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function push(name: string, auth: string, tag = 'v1') {
    const config = content(
      JSON.stringify({
        os: 'linux',
        architecture: 'amd64',
        name,
        r: randomBytes(4).toString('hex'),
      }),
    );
    const post = await api('POST', `/v2/${name}/blobs/uploads/?digest=${config.digest}`, {
      body: config.bytes,
      auth,
    });
    if (post.status !== 201) return post;
    const manifest = imageManifest(config, []);
    return api('PUT', `/v2/${name}/manifests/${tag}`, {
      body: manifest.bytes,
      auth,
      headers: { 'content-type': OCI_MANIFEST },
    });
  }

  it('htpasswd users ($2y$ and $2b$ bcrypt) authenticate; wrong passwords get 401', async () => {
    expect((await api('GET', '/v2/', { auth: alice })).status).toBe(200);
    expect((await api('GET', '/v2/', { auth: bob })).status).toBe(200);
    const wrong = await api('GET', '/v2/', { auth: basic('alice', 'nope') });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="flotilla"');
    expect((await api('GET', '/v2/', { auth: basic('mallory', 'x') })).status).toBe(401);
  });

  it('the access file grants per user and repository glob; others get 403 DENIED', async () => {
    expect((await push('alice/app', alice)).status).toBe(201);
    expect((await push('alice/deep/app', alice)).status).toBe(201);
    const denied = await push('bob/app', alice);
    expect(denied.status).toBe(403);
    expect(denied.errorCode()).toBe('DENIED');
    expect((await push('alice/app', bob)).status).toBe(403);
    expect((await api('GET', '/v2/alice/app/manifests/v1', { auth: bob })).status).toBe(403);
    expect((await push('shared/base', basic('admin', 'test-admin-password'))).status).toBe(201);
    expect((await api('GET', '/v2/shared/base/manifests/v1', { auth: bob })).status).toBe(200);
    expect((await api('DELETE', '/v2/shared/base/manifests/v1', { auth: bob })).status).toBe(403);
  });

  it('anonymous pull can be switched off (401), and push is never anonymous', async () => {
    const anon = await api('GET', '/v2/shared/base/manifests/v1', { auth: false });
    expect(anon.status).toBe(401);
    expect(anon.errorCode()).toBe('UNAUTHORIZED');
    expect((await api('POST', '/v2/shared/base/blobs/uploads/', { auth: false })).status).toBe(401);
  });

  it('the catalog lists only what the caller may pull', async () => {
    const forAlice = await api('GET', '/v2/_catalog', { auth: alice });
    expect(forAlice.json()).toEqual({
      repositories: ['alice/app', 'alice/deep/app', 'shared/base'],
    });
    const forBob = await api('GET', '/v2/_catalog', { auth: bob });
    expect(forBob.json()).toEqual({ repositories: ['shared/base'] });
  });

  it('automatic cross-mount never mounts from a repository the caller may not read', async () => {
    const secret = content(randomBytes(64));
    const admin = basic('admin', 'test-admin-password');
    expect(
      (
        await api('POST', `/v2/secret/repo/blobs/uploads/?digest=${secret.digest}`, {
          body: secret.bytes,
          auth: admin,
        })
      ).status,
    ).toBe(201);
    const guess = await api('POST', `/v2/alice/app/blobs/uploads/?mount=${secret.digest}`, {
      auth: alice,
    });
    expect(guess.status).toBe(202);
    const explicit = await api(
      'POST',
      `/v2/alice/app/blobs/uploads/?mount=${secret.digest}&from=secret/repo`,
      { auth: alice },
    );
    expect(explicit.status).toBe(202);
    expect(
      (await api('HEAD', `/v2/alice/app/blobs/${secret.digest}`, { auth: alice })).status,
    ).toBe(404);
    const adminMount = await api('POST', `/v2/alice/app/blobs/uploads/?mount=${secret.digest}`, {
      auth: admin,
    });
    expect(adminMount.status).toBe(201);
  });

  it('bcrypt runs once per distinct Authorization header (cached), not per request', async () => {
    let calls = 0;
    const users = createUserDirectory({ htpasswd: new Map([['carol', bcrypt.hashSync('pw', 4)]]) });
    const counting = {
      async verify(user: string, password: string) {
        calls++;
        return users.verify(user, password);
      },
    };
    const authenticator = createAuthenticator({ users: counting });
    const header = basic('carol', 'pw');
    const results = await Promise.all(
      Array.from({ length: 20 }, () => authenticator.authenticate(header)),
    );
    expect(results).toEqual(Array(20).fill('carol'));
    for (let i = 0; i < 20; i++) expect(await authenticator.authenticate(header)).toBe('carol');
    expect(calls).toBe(1);
    await expect(authenticator.authenticate(basic('carol', 'bad'))).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });
    await expect(authenticator.authenticate(basic('carol', 'bad'))).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
    });
    expect(calls).toBe(2);
  });
});

describe('auth files are re-read when they change', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-auth-reload-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const entry = (user: string, password: string) => `${user}:${bcrypt.hashSync(password, 4)}\n`;

  it('a user added to or removed from htpasswd takes effect without a restart, forgetting verified headers', async () => {
    const htpasswd = join(dir, 'htpasswd-live');
    await writeFile(htpasswd, entry('alice', 'a'));
    const reg = await startTestRegistry({
      htpasswdFile: htpasswd,
      anonymousPull: false,
      authReloadIntervalMs: 25,
    });
    const api = makeApi(() => reg.url);
    try {
      expect((await api('GET', '/v2/', { auth: basic('alice', 'a') })).status).toBe(200); // now cached
      expect((await api('GET', '/v2/', { auth: basic('carol', 'c') })).status).toBe(401);
      await writeFile(htpasswd, entry('carol', 'c'));
      let status = 401;
      for (let i = 0; i < 200 && status !== 200; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        status = (await api('GET', '/v2/', { auth: basic('carol', 'c') })).status;
      }
      expect(status).toBe(200);
      // alice's header was verified before the change; the reload made the registry forget it.
      expect((await api('GET', '/v2/', { auth: basic('alice', 'a') })).status).toBe(401);
    } finally {
      await reg.stop();
    }
  });

  it('a file that no longer parses, or is gone, leaves the previous version in force', async () => {
    const htpasswd = join(dir, 'htpasswd-typo');
    const access = join(dir, 'access-typo.json');
    const rules = (repositories: string[]) =>
      JSON.stringify({ rules: [{ users: ['carol'], repositories, actions: ['pull'] }] });
    await writeFile(htpasswd, entry('carol', 'c'));
    await writeFile(access, rules(['team/*']));
    let forgotten = 0;
    const files = await loadAuthFiles({
      htpasswdFile: htpasswd,
      accessFile: access,
      anonymousPull: false,
      logger,
      reloadIntervalMs: 0,
      onChange: () => (forgotten += 1),
    });
    expect(files.policy.allows('carol', 'team/app', 'pull')).toBe(true);

    await writeFile(htpasswd, 'carol:not-a-bcrypt-hash\n');
    await writeFile(access, '{"rules": [');
    expect(await files.reload()).toBe(false);
    expect(await files.users.verify('carol', 'c')).toBe(true);
    expect(files.policy.allows('carol', 'team/app', 'pull')).toBe(true);

    await rm(htpasswd);
    expect(await files.reload()).toBe(false);
    expect(await files.users.verify('carol', 'c')).toBe(true);
    expect(forgotten).toBe(0);

    await writeFile(htpasswd, entry('dave', 'd'));
    await writeFile(access, rules(['other/*']));
    expect(await files.reload()).toBe(true);
    expect(forgotten).toBe(1);
    expect(await files.users.verify('dave', 'd')).toBe(true);
    expect(await files.users.verify('carol', 'c')).toBe(false);
    expect(files.policy.allows('carol', 'team/app', 'pull')).toBe(false);
    expect(files.policy.allows('carol', 'other/app', 'pull')).toBe(true);
    expect(await files.reload()).toBe(false); // unchanged text: nothing re-parsed
  });

  it('a check in flight when the users change is not remembered', async () => {
    let release = (): void => undefined;
    const users = {
      verify: () =>
        new Promise<boolean>((resolve) => {
          release = () => resolve(true);
        }),
    };
    const authenticator = createAuthenticator({ users });
    const header = basic('erin', 'e');
    const pending = authenticator.authenticate(header);
    authenticator.forget();
    release();
    expect(await pending).toBe('erin');
    expect(authenticator.cached(header)).toBeUndefined();
  });
});

describe('gc and fsck', () => {
  let reg: TestRegistry;
  const api = makeApi(() => reg.url);
  let storageDir: string;

  beforeAll(async () => {
    reg = await startTestRegistry();
    storageDir = join(reg.dir, 'registry');
  });
  afterAll(async () => {
    await reg?.stop();
  });

  async function pushImage(name: string, tag: string) {
    const config = content(
      JSON.stringify({ os: 'linux', architecture: 'amd64', r: randomBytes(4).toString('hex') }),
    );
    const layer = content(randomBytes(1500));
    for (const b of [config, layer]) {
      expect(
        (await api('POST', `/v2/${name}/blobs/uploads/?digest=${b.digest}`, { body: b.bytes }))
          .status,
      ).toBe(201);
    }
    const manifest = imageManifest(config, [layer]);
    expect(
      (
        await api('PUT', `/v2/${name}/manifests/${tag}`, {
          body: manifest.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        })
      ).status,
    ).toBe(201);
    return { config, layer, manifest };
  }

  const hexPath = (digest: string) =>
    join(storageDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data');

  /** Pretend everything was written three hours ago, older than GC's grace period (2 h). */
  async function age(paths: string[]): Promise<void> {
    const past = new Date(Date.now() - 3 * 3_600_000);
    for (const p of paths) await utimes(p, past, past);
  }

  it('removes blobs no manifest needs, keeps the rest, and leaves fsck clean', async () => {
    const kept = await pushImage('gc/app', 'keep');
    const dropped = await pushImage('gc/app', 'drop');
    expect((await api('DELETE', `/v2/gc/app/manifests/${dropped.manifest.digest}`)).status).toBe(
      202,
    );
    const all = [kept, dropped]
      .flatMap((i) => [i.config, i.layer, i.manifest])
      .map((c) => hexPath(c.digest));
    const links = [dropped.config, dropped.layer].map((c) =>
      join(storageDir, 'repositories', 'gc/app', '_layers', 'sha256', c.digest.slice(7), 'link'),
    );
    await age([...all, ...links]);

    const dry = await runGarbageCollection({ storageDir, dryRun: true, logger });
    expect(dry.swept.map((s) => s.digest).sort()).toEqual(
      [dropped.config.digest, dropped.layer.digest, dropped.manifest.digest].sort(),
    );
    expect((await api('GET', `/v2/gc/app/blobs/${dropped.layer.digest}`)).status).toBe(200);

    const report = await runGarbageCollection({ storageDir, logger });
    expect(report.swept.map((s) => s.digest).sort()).toEqual(dry.swept.map((s) => s.digest).sort());
    expect(report.bytesFreed).toBe(
      dropped.config.size + dropped.layer.size + dropped.manifest.size,
    );
    expect((await api('GET', `/v2/gc/app/blobs/${dropped.layer.digest}`)).status).toBe(404);
    const pulled = await api('GET', `/v2/gc/app/blobs/${kept.layer.digest}`);
    expect(pulled.body.equals(kept.layer.bytes)).toBe(true);
    expect((await api('GET', '/v2/gc/app/manifests/keep')).status).toBe(200);
    const fsck = await runFsck({ storageDir, logger });
    expect(fsck.clean).toBe(true);
    expect(fsck.orphanBlobs).toEqual([]);
  });

  it('never sweeps a blob uploaded or linked after the mark began', async () => {
    const fresh = content(randomBytes(900));
    expect(
      (await api('POST', `/v2/gc/app/blobs/uploads/?digest=${fresh.digest}`, { body: fresh.bytes }))
        .status,
    ).toBe(201);
    const report = await runGarbageCollection({ storageDir, logger });
    expect(report.swept.map((s) => s.digest)).not.toContain(fresh.digest);
    expect(report.recent).toBeGreaterThanOrEqual(1);
    // an old blob freshly mounted into another repository is in use again
    await age([
      hexPath(fresh.digest),
      join(
        storageDir,
        'repositories',
        'gc/app',
        '_layers',
        'sha256',
        fresh.digest.slice(7),
        'link',
      ),
    ]);
    expect(
      (await api('POST', `/v2/gc/other/blobs/uploads/?mount=${fresh.digest}&from=gc/app`)).status,
    ).toBe(201);
    const again = await runGarbageCollection({ storageDir, logger });
    expect(again.swept.map((s) => s.digest)).not.toContain(fresh.digest);
    // …and a manifest pushed referencing an old blob touches it, so a later GC keeps it via the mark
    const config = content('{"late":true}');
    expect(
      (
        await api('POST', `/v2/gc/other/blobs/uploads/?digest=${config.digest}`, {
          body: config.bytes,
        })
      ).status,
    ).toBe(201);
    const m = imageManifest(config, [fresh]);
    expect(
      (
        await api('PUT', `/v2/gc/other/manifests/late`, {
          body: m.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        })
      ).status,
    ).toBe(201);
    const third = await runGarbageCollection({ storageDir, logger });
    expect(third.swept.map((s) => s.digest)).not.toContain(fresh.digest);
    expect((await api('GET', `/v2/gc/other/blobs/${fresh.digest}`)).status).toBe(200);
  });

  it('a GC racing manifest pushes never leaves an accepted manifest pointing at a swept blob', async () => {
    const layers = Array.from({ length: 40 }, () => content(randomBytes(700)));
    for (const layer of layers) {
      expect(
        (
          await api('POST', `/v2/gc/race/blobs/uploads/?digest=${layer.digest}`, {
            body: layer.bytes,
          })
        ).status,
      ).toBe(201);
    }
    await age([
      ...layers.map((l) => hexPath(l.digest)),
      ...layers.map((l) =>
        join(storageDir, 'repositories', 'gc/race', '_layers', 'sha256', l.digest.slice(7), 'link'),
      ),
    ]);
    const config = content('{"race":"gc"}');
    expect(
      (
        await api('POST', `/v2/gc/race/blobs/uploads/?digest=${config.digest}`, {
          body: config.bytes,
        })
      ).status,
    ).toBe(201);
    const gc = runGarbageCollection({ storageDir, logger });
    const pushes = await Promise.all(
      layers.map(async (layer, i) => {
        const m = imageManifest(config, [layer]);
        const res = await api('PUT', `/v2/gc/race/manifests/t${i}`, {
          body: m.bytes,
          headers: { 'content-type': OCI_MANIFEST },
        });
        return { layer, status: res.status, code: res.errorCode() };
      }),
    );
    const report = await gc;
    for (const push of pushes) {
      if (push.status === 201) {
        expect((await api('HEAD', `/v2/gc/race/blobs/${push.layer.digest}`)).status).toBe(200);
      } else {
        expect(push.code).toBe('MANIFEST_BLOB_UNKNOWN');
      }
    }
    expect(
      report.swept.length + pushes.filter((p) => p.status === 201).length,
    ).toBeGreaterThanOrEqual(layers.length - report.restored);
    expect((await runFsck({ storageDir, logger })).danglingLinks).toEqual([]);
  });

  it('fsck reports corrupt blobs and dangling tags', async () => {
    const image = await pushImage('fsck/app', 'v1');
    const path = hexPath(image.layer.digest);
    const bytes = await readFile(path);
    bytes[0] = (bytes[0] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    const tagLink = join(
      storageDir,
      'repositories',
      'fsck/app',
      '_manifests',
      'tags',
      'ghost',
      'current',
      'link',
    );
    await mkdir(join(tagLink, '..'), { recursive: true });
    await writeFile(tagLink, `sha256:${'4'.repeat(64)}`);
    const report = await runFsck({ storageDir, logger });
    expect(report.clean).toBe(false);
    expect(report.corrupt.map((c) => c.digest)).toEqual([image.layer.digest]);
    expect(report.danglingLinks.map((l) => l.kind)).toEqual(['tag']);
  });
});

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePublicationMarker, parseRepositoryMetadata } from '@flotilla/protocol';
import { request } from 'undici';
import { startContentProcess } from './content-process.js';
import { FakeRegistry } from './fake-registry.js';

const TOKEN = 'crash-test-token';

const startProcess = (env: Record<string, string>) => startContentProcess(env, TOKEN);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
async function api(base: string, method: string, p: string, body?: unknown): Promise<any> {
  const res = await request(`${base}${p}`, {
    method: method as 'GET',
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${p}: ${res.statusCode} ${text}`);
  return JSON.parse(text);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
async function waitTask(base: string, id: string): Promise<any> {
  for (let i = 0; i < 600; i++) {
    const t = await api(base, 'GET', `/api/v1/tasks/${id}`);
    if (['completed', 'failed', 'canceled'].includes(t.state)) return t;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`task ${id} did not finish`);
}

/** Every repository file parses and every manifest and blob it names is in the tree, intact. */
async function assertTreeServes(root: string): Promise<number> {
  const marker = parsePublicationMarker(await fs.readFile(path.join(root, 'PUBLICATION'), 'utf8'));
  await fs.access(path.join(root, `publications/${marker}.json`));
  // only stable is published here: its view's marker is the tree's
  expect(
    parsePublicationMarker(
      await fs.readFile(path.join(root, 'channels/stable/PUBLICATION'), 'utf8'),
    ),
  ).toBe(marker);
  const repoDir = path.join(root, 'channels/stable/repositories');
  const files: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else files.push(path.join(d, e.name));
    }
  };
  await walk(repoDir);
  for (const file of files) {
    const meta = parseRepositoryMetadata(await fs.readFile(file));
    // the view is renamed into place whole, after every blob: nothing ahead of the marker
    expect(meta.publication).toBeLessThanOrEqual(marker);
    for (const digest of [...Object.keys(meta.manifests), ...Object.keys(meta.blobs)]) {
      const hex = digest.slice(7);
      const bytes = await fs.readFile(path.join(root, 'blobs/sha256', hex.slice(0, 2), hex));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(hex);
    }
  }
  return marker;
}

describe('publishing survives kill -9', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it(
    'leaves the previous publication whole; the next publish completes the work',
    { timeout: 120_000 },
    async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-crash-'));
      cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
      const upstream = await new FakeRegistry().start();
      cleanups.push(() => upstream.stop());
      const env = {
        FLOTILLA_DATA_DIR: dir,
        FLOTILLA_REGISTRY_URL: upstream.url,
        FLOTILLA_REGISTRY_PASSWORD: 'x',
        FLOTILLA_CONTENT_POLICY: '{}',
        FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '3',
        // Counts files of the images alone; signing on promotion is covered by signing.test.ts.
        FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
      };
      const root = path.join(dir, 'publish');

      let proc = await startProcess(env);
      cleanups.push(async () => {
        proc.child.kill('SIGKILL');
      });
      const syncAndPromote = async (names: string[]) => {
        const tasks = [];
        for (const name of names)
          tasks.push((await api(proc.url, 'POST', '/api/v1/syncs', { repository: name })).task.id);
        for (const id of tasks) expect((await waitTask(proc.url, id)).state).toBe('completed');
        for (const name of names)
          await api(proc.url, 'POST', '/api/v1/promotions', {
            repository: name,
            tags: ['1'],
            from: 'candidate',
            to: 'stable',
          });
      };

      const first = Array.from({ length: 5 }, (_, i) => `old/app${i}`);
      for (const name of first) upstream.addImage(name, '1', { layers: 2, layerSize: 4096 });
      await syncAndPromote(first);
      expect(
        (
          await waitTask(
            proc.url,
            (await api(proc.url, 'POST', '/api/v1/publications', {})).task.id,
          )
        ).state,
      ).toBe('completed');
      expect(await assertTreeServes(root)).toBe(1);

      const second = Array.from({ length: 40 }, (_, i) => `new/app${i}`);
      for (const name of second) upstream.addImage(name, '1', { layers: 3, layerSize: 64 * 1024 });
      await syncAndPromote(second);
      await api(proc.url, 'POST', '/api/v1/publications', {});

      // Kill as soon as the publish has started writing into the tree.
      const blobsDir = path.join(root, 'blobs/sha256');
      const countBlobs = async () => {
        let n = 0;
        for (const d of await fs.readdir(blobsDir))
          n += (await fs.readdir(path.join(blobsDir, d))).length;
        return n;
      };
      const before = await countBlobs();
      for (let i = 0; i < 2000 && (await countBlobs()) === before; i++)
        await new Promise((r) => setTimeout(r, 2));
      proc.child.kill('SIGKILL');
      await new Promise((r) => proc.child.once('exit', r));
      const marker = await assertTreeServes(root);
      expect(marker, 'the kill came after the publication completed; the test proves nothing').toBe(
        1,
      );
      expect(await countBlobs()).toBeGreaterThan(before);

      proc = await startProcess(env);
      // the interrupted task is requeued after its lease expires; a new publish waits for it or does the work
      const next = await waitTask(
        proc.url,
        (await api(proc.url, 'POST', '/api/v1/publications', {})).task.id,
      );
      expect(next.state, JSON.stringify(next.error)).toBe('completed');
      expect(await assertTreeServes(root)).toBe(2);
      const record = JSON.parse(await fs.readFile(path.join(root, 'publications/2.json'), 'utf8'));
      expect(record.repositories.length).toBe(second.length);
      expect(record.newBlobs.length).toBe(second.length * 5);
      expect(await countBlobs()).toBe(first.length * 4 + second.length * 5);
    },
  );
});

describe('publishing killed at its named fault points', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  // blobs placed but nothing announced; everything in the tree but the store not yet told
  for (const point of ['publish.blobs-placed', 'publish.marker-written']) {
    it(
      `${point}: a restart completes publication 2 exactly once`,
      { timeout: 120_000 },
      async () => {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-fault-'));
        cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
        const upstream = await new FakeRegistry().start();
        cleanups.push(() => upstream.stop());
        const env = {
          FLOTILLA_DATA_DIR: dir,
          FLOTILLA_REGISTRY_URL: upstream.url,
          FLOTILLA_REGISTRY_PASSWORD: 'x',
          FLOTILLA_CONTENT_POLICY: '{}',
          FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '2',
          // Counts the images' own files, as above.
          FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
        };
        const root = path.join(dir, 'publish');
        // the second publication's call of the point kills the process
        let proc = await startProcess({ ...env, FLOTILLA_FAULT_POINT: `${point}:2` });
        cleanups.push(async () => {
          proc.child.kill('SIGKILL');
        });
        const publishApp = async (tag: string) => {
          upstream.addImage('app', tag, { layers: 2 });
          expect(
            (
              await waitTask(
                proc.url,
                (await api(proc.url, 'POST', '/api/v1/syncs', { repository: 'app' })).task.id,
              )
            ).state,
          ).toBe('completed');
          await api(proc.url, 'POST', '/api/v1/promotions', {
            repository: 'app',
            tags: [tag],
            from: 'candidate',
            to: 'stable',
          });
          return (await api(proc.url, 'POST', '/api/v1/publications', {})).task.id as string;
        };
        expect((await waitTask(proc.url, await publishApp('1'))).state).toBe('completed');
        const exited = new Promise((r) => proc.child.once('exit', r));
        await publishApp('2');
        await exited;
        const markerAtKill = await assertTreeServes(root);
        expect(markerAtKill).toBe(point === 'publish.marker-written' ? 2 : 1);
        const recordAtKill =
          markerAtKill === 2
            ? await fs.readFile(path.join(root, 'publications/2.json'), 'utf8')
            : undefined;

        proc = await startProcess(env);
        // the killed task comes back when its lease expires; wait for publication 2 to complete
        let done: { state: string } | undefined;
        for (let i = 0; i < 400 && done?.state !== 'complete'; i++) {
          done = await api(proc.url, 'GET', '/api/v1/publications/2').catch(() => undefined);
          if (done?.state !== 'complete') await new Promise((r) => setTimeout(r, 50));
        }
        expect(done?.state).toBe('complete');
        expect(await assertTreeServes(root)).toBe(2);
        const record = JSON.parse(
          await fs.readFile(path.join(root, 'publications/2.json'), 'utf8'),
        );
        expect(record.newBlobs).toHaveLength(4);
        if (recordAtKill) expect(JSON.parse(recordAtKill).newBlobs).toEqual(record.newBlobs);
        expect(
          (await api(proc.url, 'GET', '/api/v1/publications')).publications.map(
            (p: { number: number }) => p.number,
          ),
        ).toEqual([2, 1]);
        const meta = parseRepositoryMetadata(
          await fs.readFile(path.join(root, 'channels/stable/repositories/app.json')),
        );
        expect(Object.keys(meta.tags).sort()).toEqual(['1', '2']);
        const staging = await fs.readdir(path.join(root, '.staging'));
        expect(
          staging,
          JSON.stringify(
            await Promise.all(
              staging.map((f) => fs.stat(path.join(root, '.staging', f)).then((s) => s.size)),
            ),
          ),
        ).toEqual([]);
      },
    );
  }
});

describe('promotions, untags and rollbacks killed between the version and its pointer or audit record', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const cases = [
    { kind: 'promotion', point: 'promotion.version-committed' },
    { kind: 'promotion', point: 'promotion.audited' },
    // the sync's commit passes it first: the promotion's version is stored, its pointer not moved
    { kind: 'promotion', point: 'channel.version-inserted:2' },
    { kind: 'untag', point: 'untag.version-committed' },
    { kind: 'rollback', point: 'rollback.version-committed' },
  ] as const;
  for (const { kind, point } of cases) {
    it(
      `${point}: after a restart the channel pointer and the audit trail name the version`,
      { timeout: 120_000 },
      async () => {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-audit-'));
        cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
        const upstream = await new FakeRegistry().start();
        cleanups.push(() => upstream.stop());
        const env = {
          FLOTILLA_DATA_DIR: dir,
          FLOTILLA_REGISTRY_URL: upstream.url,
          FLOTILLA_REGISTRY_PASSWORD: 'x',
          FLOTILLA_CONTENT_POLICY: '{}',
        };
        let proc = await startProcess({ ...env, FLOTILLA_FAULT_POINT: point });
        cleanups.push(async () => {
          proc.child.kill('SIGKILL');
        });
        const one = upstream.addImage('app', '1');
        upstream.addImage('app', '2');
        expect(
          (
            await waitTask(
              proc.url,
              (await api(proc.url, 'POST', '/api/v1/syncs', { repository: 'app' })).task.id,
            )
          ).state,
        ).toBe('completed');
        const promote = (tags: string[]) =>
          api(proc.url, 'POST', '/api/v1/promotions', {
            repository: 'app',
            tags,
            from: 'candidate',
            to: 'testing',
            reason: 'ship it',
          });
        const exited = new Promise((r) => proc.child.once('exit', r));
        const killed = async (call: Promise<unknown>) => {
          await expect(call).rejects.toThrow();
          await exited;
        };
        if (kind === 'promotion') await killed(promote(['1']));
        else await promote(['1']);
        if (kind === 'untag')
          await killed(
            api(proc.url, 'POST', '/api/v1/untags', {
              repository: 'app',
              channel: 'testing',
              tags: ['1'],
              reason: 'ship it',
            }),
          );
        if (kind === 'rollback') {
          await promote(['2']);
          await killed(
            api(proc.url, 'POST', '/api/v1/rollbacks', {
              repository: 'app',
              channel: 'testing',
              version: 1,
              reason: 'ship it',
            }),
          );
        }

        proc = await startProcess(env);
        const repo = await api(proc.url, 'GET', '/api/v1/repositories/app?channel=testing');
        const head = repo.versions[0] as { number: number; cause: { kind: string } };
        // the list (and publishing) read the channel pointer: it names the newest version
        const listed = (await api(proc.url, 'GET', '/api/v1/repositories')).repositories.find(
          (r: { name: string }) => r.name === 'app',
        );
        expect(listed.channels.testing).toBe(head.number);
        expect(head.cause.kind).toBe(kind);
        const trail = (await api(proc.url, 'GET', '/api/v1/promotions?repository=app')).promotions;
        const record = trail.find(
          (p: { to: string; after: { version: number } }) =>
            p.to === 'testing' && p.after.version === head.number,
        );
        expect(record, JSON.stringify(trail)).toMatchObject({
          kind,
          reason: 'ship it',
          actor: expect.any(String),
          before: { version: head.number - 1 },
          after: { version: head.number },
        });
        if (kind === 'promotion')
          expect(record).toMatchObject({
            from: 'candidate',
            tags: ['1'],
            digests: [one.digest],
            after: { tags: { '1': one.digest } },
          });
        if (kind === 'untag')
          expect(record).toMatchObject({
            tags: ['1'],
            digests: [one.digest],
            before: { tags: { '1': one.digest } },
            after: { tags: {} },
          });
        if (kind === 'rollback') expect(record.after.tags).toEqual({ '1': one.digest });
        if (kind === 'promotion') {
          // its content.promoted event reached the outbox (the local bus marks it sent there)
          const outbox = async () =>
            (await fs.readFile(path.join(dir, 'db', 'outbox.db'), 'utf8'))
              .split('\n')
              .filter(Boolean)
              .map(
                (line) =>
                  JSON.parse(line) as {
                    event?: { type: string; data: { version: number; digest: string } };
                  },
              )
              .filter(
                (r) => r.event?.type === 'content.promoted' && r.event.data.version === head.number,
              );
          let announced = await outbox();
          for (let i = 0; i < 100 && announced.length === 0; i++) {
            await new Promise((r) => setTimeout(r, 50));
            announced = await outbox();
          }
          expect(announced.map((r) => r.event?.data.digest)).toContain(one.digest);
        }
        // a second restart finds nothing to repair: the trail holds the record once
        proc.child.kill('SIGKILL');
        proc = await startProcess(env);
        const again = (await api(proc.url, 'GET', '/api/v1/promotions?repository=app')).promotions;
        expect(again.filter((p: { id: string }) => p.id === record.id)).toHaveLength(1);
        expect(again).toHaveLength(trail.length);
      },
    );
  }
});

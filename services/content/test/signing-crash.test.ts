import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSignatureTag, signatureTag } from '@flotilla/protocol';
import { request } from 'undici';
import { startContentProcess } from './content-process.js';
import { FakeRegistry } from './fake-registry.js';

const TOKEN = 'signing-crash-token';

const startProcess = (env: Record<string, string>) => startContentProcess(env, TOKEN);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
type Answer = { status: number; body: any };

async function api(base: string, method: string, p: string, body?: unknown): Promise<Answer> {
  const res = await request(`${base}${p}`, {
    method: method as 'GET',
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
}

describe('signing survives kill -9', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('a promotion killed between two signatures publishes none of them; promoting again signs all', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-signing-crash-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const upstream = await new FakeRegistry().start();
    cleanups.push(() => upstream.stop());
    const index = upstream.addIndex('fedora/httpd', '39');
    const env = {
      FLOTILLA_DATA_DIR: dir,
      FLOTILLA_REGISTRY_URL: upstream.url,
      FLOTILLA_REGISTRY_PASSWORD: 'x',
      FLOTILLA_CONTENT_POLICY: '{}',
    };

    // The second signature made kills the process: one attachment is in the content store.
    let proc = await startProcess({
      ...env,
      FLOTILLA_FAULT_POINT: 'content.sign.attachment-made:2',
    });
    cleanups.push(async () => {
      proc.child.kill('SIGKILL');
    });
    const sync = await api(proc.url, 'POST', '/api/v1/syncs', { repository: 'fedora/httpd' });
    for (let i = 0; i < 400; i++) {
      const t = await api(proc.url, 'GET', `/api/v1/tasks/${sync.body.task.id}`);
      if (t.body.state === 'completed') break;
      expect(['waiting', 'running']).toContain(t.body.state);
      await new Promise((r) => setTimeout(r, 50));
    }
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      proc.child.once('exit', (_code, signal) => resolve(signal)),
    );
    await expect(
      api(proc.url, 'POST', '/api/v1/promotions', {
        repository: 'fedora/httpd',
        tags: ['39'],
        from: 'candidate',
        to: 'stable',
      }),
    ).rejects.toThrow();
    expect(await exited).toBe('SIGKILL');

    proc = await startProcess(env);
    const stable0 = await api(proc.url, 'GET', '/api/v1/repositories/fedora/httpd?channel=stable');
    expect(stable0.body.channels[0]).toMatchObject({ version: 0, tags: {} });

    const promoted = await api(proc.url, 'POST', '/api/v1/promotions', {
      repository: 'fedora/httpd',
      tags: ['39'],
      from: 'candidate',
      to: 'stable',
    });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(201);
    const stable = (await api(proc.url, 'GET', '/api/v1/repositories/fedora/httpd?channel=stable'))
      .body.channels[0];
    const signed = [index.digest, ...index.children.map((c) => c.digest)];
    expect(stable.version).toBe(1);
    expect(Object.keys(stable.tags).filter(isSignatureTag).sort()).toEqual(
      signed.map(signatureTag).sort(),
    );
    const current = (await api(proc.url, 'GET', '/api/v1/keys')).body.current as string;
    expect(stable.signedBy).toEqual({ [index.digest]: [current] });
  }, 60_000);
});

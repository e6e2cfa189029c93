/**
 * Crash safety: the registry runs as a child process and is killed with SIGKILL in
 * the middle of a large streamed upload and in the middle of a burst of manifest pushes and
 * deletes. After a restart fsck is clean (no partial blob visible, no tag pointing at a
 * missing manifest), every tag that exists resolves to a complete image, and the push can be
 * redone.
 */
import { runFsck } from '@flotilla/registry';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImage, pushImage } from './support/images.js';
import { freePort } from './support/ports.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const PASSWORD = 'crash-admin-password';
const auth = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
const logger = pino({ level: 'silent' });

interface Child {
  url: string;
  proc: ChildProcess;
  output(): string;
  kill9(): Promise<void>;
}

async function startChild(dataDir: string, port: number): Promise<Child> {
  const proc = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'services/registry/src/main.ts'],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        FLOTILLA_DATA_DIR: dataDir,
        FLOTILLA_REGISTRY_PORT: String(port),
        FLOTILLA_REGISTRY_HOST: '127.0.0.1',
        FLOTILLA_ADMIN_PASSWORD: PASSWORD,
        LOG_LEVEL: 'warn',
        AMQP_URL: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-10_000)));
  proc.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-10_000)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`registry exited with ${proc.exitCode}:\n${out}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) break;
    } catch {
      // not up yet
    }
    if (i > 300) {
      proc.kill('SIGKILL');
      throw new Error(`registry did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    output: () => out,
    async kill9() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

describe('registry crash safety (kill -9)', () => {
  let dir: string;
  let port: number;
  let child: Child | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-crash-'));
    port = await freePort();
  });
  afterAll(async () => {
    await child?.kill9();
    await rm(dir, { recursive: true, force: true });
  });

  const storageDir = (): string => join(dir, 'registry');

  it('during a large streamed upload: restart, fsck clean, the upload resumes or restarts and completes', async () => {
    child = await startChild(dir, port);
    const start = await fetch(`${child.url}/v2/crash/big/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: auth },
    });
    expect(start.status).toBe(202);
    const location = start.headers.get('location') as string;

    // 256 MiB from a repeated random block; kill once at least 32 MiB have gone out
    const block = randomBytes(1024 * 1024);
    const total = 256;
    const digest = createHash('sha256');
    for (let i = 0; i < total; i++) digest.update(block);
    const expected = `sha256:${digest.digest('hex')}`;
    const target = new URL(location, child.url);
    const current = child;
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: target.hostname,
        port: target.port,
        method: 'PATCH',
        path: target.pathname,
        headers: { authorization: auth, 'content-length': String(total * block.length) },
      });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent++;
          if (sent === 32) {
            void current.kill9().then(() => resolve());
            return;
          }
          if (!req.write(block)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    await current.kill9();
    expect(child.proc.signalCode).toBe('SIGKILL');

    child = await startChild(dir, port);
    const report = await runFsck({ storageDir: storageDir(), logger });
    expect(report.clean).toBe(true);
    expect(report.corrupt).toEqual([]);
    expect(
      (await fetch(`${child.url}/v2/crash/big/blobs/${expected}`, { method: 'HEAD' })).status,
    ).toBe(404);

    // resume: the session survived the crash; offset says where (bytes past it are dropped)
    const status = await fetch(`${child.url}${location}`, { headers: { authorization: auth } });
    expect(status.status).toBe(204);
    const range = status.headers.get('range') as string;
    const offset = range === '0-0' ? 0 : Number(range.split('-')[1]) + 1;
    expect(offset).toBeLessThanOrEqual(32 * block.length);
    const firstBlock = Math.floor(offset / block.length);
    const rest = Buffer.concat([
      block.subarray(offset - firstBlock * block.length),
      ...Array.from({ length: total - firstBlock - 1 }, () => block),
    ]);
    expect(offset + rest.length).toBe(total * block.length);
    const patch = await fetch(`${child.url}${location}`, {
      method: 'PATCH',
      headers: { authorization: auth, 'content-range': `${offset}-${total * block.length - 1}` },
      body: rest,
    });
    expect(patch.status).toBe(202);
    const put = await fetch(`${child.url}${location}?digest=${expected}`, {
      method: 'PUT',
      headers: { authorization: auth },
    });
    expect(put.status).toBe(201);
    const head = await fetch(`${child.url}/v2/crash/big/blobs/${expected}`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(total * block.length));
    expect((await runFsck({ storageDir: storageDir(), logger })).clean).toBe(true);
  });

  it('during manifest pushes and deletes: restart, fsck clean, every tag complete, push again succeeds', async () => {
    child ??= await startChild(dir, port);
    const images = Array.from({ length: 4 }, () => makeImage({ layers: 1, layerBytes: 2048 }));
    const creds = { username: 'admin', password: PASSWORD };
    for (const [i, image] of images.entries())
      await pushImage(child.url, 'crash/tags', `base${i}`, { image, auth: creds });

    // a burst of manifest PUTs (new tags) and DELETEs, killed in the middle
    const current = child;
    const operations: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++) {
      const image = images[i % images.length];
      if (!image) continue;
      const body = image.top.bytes;
      operations.push(
        fetch(`${current.url}/v2/crash/tags/manifests/t${i}`, {
          method: 'PUT',
          headers: { authorization: auth, 'content-type': image.top.mediaType },
          body,
        }).catch(() => undefined),
      );
      if (i % 10 === 5) {
        operations.push(
          fetch(`${current.url}/v2/crash/tags/manifests/t${i - 5}`, {
            method: 'DELETE',
            headers: { authorization: auth },
          }).catch(() => undefined),
        );
      }
      if (i === 60) setTimeout(() => void current.kill9(), 5);
    }
    await Promise.all(operations);
    await current.kill9();

    child = await startChild(dir, port);
    const report = await runFsck({ storageDir: storageDir(), logger });
    expect(report.danglingLinks).toEqual([]);
    expect(report.clean).toBe(true);
    const tags = (await (await fetch(`${child.url}/v2/crash/tags/tags/list`)).json()) as {
      tags: string[];
    };
    expect(tags.tags.length).toBeGreaterThanOrEqual(4);
    for (const tag of tags.tags) {
      const res = await fetch(`${child.url}/v2/crash/tags/manifests/${tag}`);
      expect(res.status, tag).toBe(200);
      const manifest = (await res.json()) as {
        config: { digest: string };
        layers: Array<{ digest: string }>;
      };
      for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        expect(
          (await fetch(`${child.url}/v2/crash/tags/blobs/${d}`, { method: 'HEAD' })).status,
          `${tag} ${d}`,
        ).toBe(200);
      }
    }
    const again = await pushImage(child.url, 'crash/tags', 'after', {
      layers: 1,
      layerBytes: 4096,
      auth: creds,
    });
    const res = await fetch(`${child.url}/v2/crash/tags/manifests/after`);
    expect(res.headers.get('docker-content-digest')).toBe(again.digest);
    await child.kill9();
    child = undefined;
  });
});

import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startStaticServer, type StaticServer } from './support/static-server.js';

describe('test/support/static-server', () => {
  let root: string;
  const servers: StaticServer[] = [];

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'flotilla-static-'));
    await mkdir(path.join(root, 'blobs'), { recursive: true });
    await writeFile(path.join(root, 'blobs', 'a'), 'hello');
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await rm(root, { recursive: true, force: true });
  });

  it('serves files with Content-Length on GET and HEAD, 404 otherwise, and logs requests', async () => {
    const server = await startStaticServer(root);
    servers.push(server);
    const get = await request(`${server.url}/blobs/a`);
    expect(get.statusCode).toBe(200);
    expect(get.headers['content-length']).toBe('5');
    expect(await get.body.text()).toBe('hello');
    const head = await request(`${server.url}/blobs/a`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('5');
    await head.body.dump();
    const missing = await request(`${server.url}/blobs/b`);
    expect(missing.statusCode).toBe(404);
    await missing.body.dump();
    const escape = await request(`${server.url}/%2e%2e/%2e%2e/etc/passwd`);
    expect(escape.statusCode).toBe(404);
    await escape.body.dump();
    expect(server.requests.slice(0, 3)).toEqual(['GET /blobs/a', 'HEAD /blobs/a', 'GET /blobs/b']);
  });

  it('listens on both loopback families on one port and can be taken down', async () => {
    const server = await startStaticServer(root, { families: ['ipv4', 'ipv6'] });
    servers.push(server);
    expect(server.urls.ipv6).toBe(`http://[::1]:${server.port}`);
    const v6 = await request(`${server.urls.ipv6}/blobs/a`);
    expect(v6.statusCode).toBe(200);
    await v6.body.dump();
    server.setDown('reset');
    await expect(request(`${server.url}/blobs/a`)).rejects.toThrow();
    server.setDown(false);
    const back = await request(`${server.url}/blobs/a`, { reset: true });
    expect(back.statusCode).toBe(200);
    await back.body.dump();
  });
});

import { connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../src/index.js';
import { capturingLogger, closeAll, serve } from './loopback.js';

afterEach(closeAll);

describe('listen', () => {
  it('binds port 0 and reports the real URL', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => res.end('hi'), logger);
    expect(s.port).toBeGreaterThan(0);
    expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
    const res = await request(`${s.url}/`);
    expect(await res.body.text()).toBe('hi');
    expect(s.server.headersTimeout).toBe(20_000);
    expect(s.server.requestTimeout).toBe(0);
    expect(s.server.keepAliveTimeout).toBe(65_000);
  });

  it('brackets IPv6 hosts in the URL', async () => {
    const { logger } = capturingLogger();
    let server;
    try {
      server = await listen((_req, res) => res.end('v6'), { host: '::1', port: 0, logger });
    } catch (err) {
      console.log(`skipping IPv6 listen test: ${(err as Error).message}`);
      return;
    }
    try {
      expect(server.url).toBe(`http://[::1]:${server.port}`);
      const res = await request(`${server.url}/`);
      expect(await res.body.text()).toBe('v6');
    } finally {
      await server.close();
    }
  });

  it('rejects when the port is taken', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => res.end(), logger);
    await expect(listen((_req, res) => res.end(), { host: '127.0.0.1', port: s.port, logger })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it('answers 431 to oversized headers', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => res.end('ok'), logger);
    const res = await request(`${s.url}/`, { headers: { 'x-big': 'a'.repeat(20 * 1024) } });
    expect(res.statusCode).toBe(431);
    await res.body.dump();
  });

  it('close() lets an in-flight request finish, then refuses new connections', async () => {
    const { logger } = capturingLogger();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const hasArrived = new Promise<void>((r) => (arrived = r));
    const s = await serve((_req, res) => {
      arrived();
      void released.then(() => res.end('finished'));
    }, logger);

    const inflight = request(`${s.url}/slow`).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
    await hasArrived;
    const closing = s.close();
    release();
    await expect(inflight).resolves.toEqual({ status: 200, text: 'finished' });
    await closing;
    await expect(
      new Promise((resolve, reject) => {
        const socket = connect(s.port, '127.0.0.1', () => resolve('connected'));
        socket.on('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('close() does not wait for idle keep-alive connections', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => res.end('ok'), logger, 60_000);
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    try {
      const res = await request(`${s.url}/`, { dispatcher: agent });
      await res.body.text();
      // With a 60 s drain and a 65 s keep-alive, only closing idle sockets lets this resolve in the test timeout.
      await s.close();
    } finally {
      await agent.close();
    }
  });

  it('close() cuts a request that outlives the drain deadline', async () => {
    const { logger, lines } = capturingLogger();
    let arrived!: () => void;
    const hasArrived = new Promise<void>((r) => (arrived = r));
    const s = await serve(() => arrived(), logger, 100);
    const hung = request(`${s.url}/never`);
    await hasArrived;
    await s.close();
    await expect(hung).rejects.toThrow();
    expect(lines.some((l) => l.msg === 'drain deadline passed, closing remaining connections')).toBe(true);
  });

  it('close() is idempotent', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => res.end(), logger);
    const a = s.close();
    const b = s.close();
    expect(a).toBe(b);
    await a;
  });
});

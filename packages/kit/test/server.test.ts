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
    await expect(
      listen((_req, res) => res.end(), { host: '127.0.0.1', port: s.port, logger }),
    ).rejects.toMatchObject({
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

    const inflight = request(`${s.url}/slow`).then(async (r) => ({
      status: r.statusCode,
      text: await r.body.text(),
    }));
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
    expect(
      lines.some((l) => l.msg === 'drain deadline passed, closing remaining connections'),
    ).toBe(true);
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

describe('Expect: 100-continue', () => {
  /**
   * Sends a request's head with `Expect: 100-continue` on a raw socket, then its body only once
   * `100 Continue` arrives. Resolves, when the server closes the connection (`Connection:
   * close`), with everything it wrote and whether the body went.
   */
  function expectContinue(
    port: number,
    path: string,
    body: string,
  ): Promise<{ text: string; sentBody: boolean }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      let sentBody = false;
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (!sentBody && text === 'HTTP/1.1 100 Continue\r\n\r\n') {
          sentBody = true;
          socket.write(body);
        }
      });
      socket.on('close', () => resolve({ text, sentBody }));
      socket.on('error', reject);
      socket.write(
        `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
    });
  }

  it('answers 100 once the handler reads the body, by data listener or async iteration', async () => {
    const { logger } = capturingLogger();
    const s = await serve(async (req, res) => {
      let received = '';
      if (req.url === '/iterate') {
        for await (const chunk of req) received += String(chunk);
      } else {
        req.setEncoding('latin1');
        req.on('data', (chunk: string) => (received += chunk));
        await new Promise((r) => req.on('end', r));
      }
      res.end(`got ${received}`);
    }, logger);
    for (const path of ['/data', '/iterate']) {
      const { text, sentBody } = await expectContinue(s.port, path, 'hello');
      expect(sentBody).toBe(true);
      expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n')).toBe(true);
      expect(text.endsWith('got hello')).toBe(true);
    }
  });

  it('answers a refusal without 100, so the client never sends the body', async () => {
    const { logger } = capturingLogger();
    const s = await serve((_req, res) => {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('unknown upload');
    }, logger);
    const { text, sentBody } = await expectContinue(
      s.port,
      '/v2/x/blobs/uploads/nope',
      'a'.repeat(100),
    );
    expect(sentBody).toBe(false);
    expect(text.startsWith('HTTP/1.1 404 Not Found\r\n')).toBe(true);
    expect(text).not.toContain('100 Continue');
  });

  it('does not answer 100 when the handler drains the body only after answering', async () => {
    const { logger } = capturingLogger();
    const s = await serve((req, res) => {
      res.end('early');
      req.resume(); // drain after answering
    }, logger);
    const { text, sentBody } = await expectContinue(s.port, '/late', 'abc');
    expect(sentBody).toBe(false);
    expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(text).not.toContain('100 Continue');
  });
});

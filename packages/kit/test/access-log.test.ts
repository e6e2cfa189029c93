import { afterEach, describe, expect, it } from 'vitest';
import {
  createAccessLog,
  createClientIpResolver,
  parseCidr,
  type ParsedCidr,
} from '../src/index.js';
import { capturingLogger, closeAll, serve } from './loopback.js';

afterEach(closeAll);

describe('access log', () => {
  const setup = (level: 'info' | 'debug' | 'off', loggerLevel = 'info', trusted: string[] = []) => {
    const { logger, lines } = capturingLogger(loggerLevel);
    const clientIp = createClientIpResolver(trusted.map((entry) => parseCidr(entry) as ParsedCidr));
    const accessLog = createAccessLog({
      logger,
      level,
      clientAddress: (req) =>
        clientIp.resolve(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for']),
    });
    return { logger, lines, accessLog };
  };

  it('writes one info line per request: method, path, status, bytes, duration, client after trusted proxies', async () => {
    const { logger, lines, accessLog } = setup('info', 'info', ['127.0.0.1']);
    const server = await serve((req, res) => {
      accessLog?.(req, res);
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-length': '5' }).end('hello');
    }, logger);
    await fetch(`${server.url}/v2/fedora/httpd/blobs/x?y=1`, {
      headers: { 'x-forwarded-for': '203.0.113.9, 127.0.0.1' },
    }).then((r) => r.text());
    await fetch(`${server.url}/missing`, { method: 'HEAD' });
    const requests = lines.filter((l) => l.msg === 'request');
    expect(requests).toEqual([
      expect.objectContaining({
        level: 30,
        method: 'GET',
        path: '/v2/fedora/httpd/blobs/x?y=1',
        status: 200,
        client: '203.0.113.9',
      }),
      expect.objectContaining({
        level: 30,
        method: 'HEAD',
        path: '/missing',
        status: 404,
        client: '127.0.0.1',
      }),
    ]);
    expect(typeof requests[0]?.ms).toBe('number');
    // Headers and the five body bytes; a HEAD sends headers only.
    expect(requests[0]?.bytes).toBeGreaterThan(5 + 20);
    expect(requests[1]?.bytes).toBeGreaterThan(20);
    expect(requests[1]?.bytes).toBeLessThan(requests[0]?.bytes as number);
  });

  it('believes X-Forwarded-For only from a trusted peer', async () => {
    const { logger, lines, accessLog } = setup('info');
    const server = await serve((req, res) => {
      accessLog?.(req, res);
      res.end();
    }, logger);
    await fetch(server.url, { headers: { 'x-forwarded-for': '203.0.113.9' } }).then((r) =>
      r.text(),
    );
    expect(lines.find((l) => l.msg === 'request')?.client).toBe('127.0.0.1');
  });

  it('can be turned down to debug or off', () => {
    expect(setup('off').accessLog).toBeUndefined();
    expect(setup('debug', 'info').accessLog).toBeUndefined();
    expect(setup('debug', 'debug').accessLog).toBeTypeOf('function');
  });
});

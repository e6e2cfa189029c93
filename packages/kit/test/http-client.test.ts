import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fetchWithRetry,
  isRetryableNetworkError,
  listen,
  parseRetryAfter,
  retry,
} from '../src/index.js';
import { capturingLogger, closeAll, serve } from './loopback.js';

afterEach(closeAll);

/** A server whose first `failures` requests get `fail`, then 200 "ok". */
async function flaky(failures: number, fail: (req: IncomingMessage, res: ServerResponse) => void) {
  const { logger } = capturingLogger();
  const seen: string[] = [];
  const server = await serve((req, res) => {
    seen.push(req.method ?? '');
    if (seen.length <= failures) fail(req, res);
    else res.end('ok');
  }, logger);
  return { url: server.url, seen };
}

const fast = { backoffMs: 1, maxBackoffMs: 5 };

describe('fetchWithRetry', () => {
  it('retries 503 twice then succeeds', async () => {
    const s = await flaky(2, (_req, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    const res = await fetchWithRetry(`${s.url}/x`, {}, { retries: 3, ...fast });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(s.seen).toEqual(['GET', 'GET', 'GET']);
  });

  it('retries dropped connections', async () => {
    const s = await flaky(2, (req) => req.socket.destroy());
    const res = await fetchWithRetry(`${s.url}/x`, {}, { retries: 2, ...fast });
    expect(await res.text()).toBe('ok');
    expect(s.seen).toHaveLength(3);
  });

  it('honours Retry-After and the retry bound, returning the last response', async () => {
    const s = await flaky(10, (_req, res) => {
      res.statusCode = 429;
      res.setHeader('Retry-After', '0');
      res.end();
    });
    const { logger, lines } = capturingLogger();
    const res = await fetchWithRetry(`${s.url}/x`, {}, { retries: 2, ...fast, logger });
    expect(res.status).toBe(429);
    expect(s.seen).toHaveLength(3);
    const waits = lines.filter((l) => l.msg === 'retrying request').map((l) => l.waitMs);
    expect(waits).toEqual([0, 0]);
  });

  it('does not retry a POST unless asked', async () => {
    const fail = (_req: IncomingMessage, res: ServerResponse) => {
      res.statusCode = 502;
      res.end();
    };
    const once = await flaky(1, fail);
    const res = await fetchWithRetry(
      `${once.url}/x`,
      { method: 'POST', body: '{}' },
      { retries: 3, ...fast },
    );
    expect(res.status).toBe(502);
    expect(once.seen).toEqual(['POST']);
    const asked = await flaky(1, fail);
    const res2 = await fetchWithRetry(
      `${asked.url}/x`,
      { method: 'POST', body: '{}' },
      { retries: 3, ...fast, retryNonIdempotent: true },
    );
    expect(res2.status).toBe(200);
    expect(asked.seen).toEqual(['POST', 'POST']);
  });

  it('never retries a request whose body is a stream', async () => {
    const s = await flaky(1, (req, res) => {
      req.resume();
      req.on('end', () => {
        res.statusCode = 503;
        res.end();
      });
    });
    const res = await fetchWithRetry(
      `${s.url}/x`,
      { method: 'PUT', body: Readable.from([Buffer.from('layer bytes')]), duplex: 'half' },
      { retries: 3, ...fast, retryNonIdempotent: true },
    );
    expect(res.status).toBe(503);
    expect(s.seen).toEqual(['PUT']);
  });

  it('does not retry other statuses', async () => {
    const s = await flaky(1, (_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const res = await fetchWithRetry(`${s.url}/x`, {}, { retries: 3, ...fast });
    expect(res.status).toBe(500);
    expect(s.seen).toHaveLength(1);
  });

  it('throws the network error once retries are spent', async () => {
    const { logger } = capturingLogger();
    const gone = await listen((_req, res) => res.end(), { port: 0, logger });
    await gone.close();
    const { logger: retryLog, lines } = capturingLogger();
    const err: unknown = await fetchWithRetry(
      `${gone.url}/x`,
      {},
      { retries: 2, ...fast, logger: retryLog },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(isRetryableNetworkError(err)).toBe(true);
    expect(lines.filter((l) => l.msg === 'retrying request')).toHaveLength(2);
  });

  it('stops waiting when the caller aborts', async () => {
    const controller = new AbortController();
    const s = await flaky(10, (_req, res) => {
      res.statusCode = 503;
      res.on('finish', () => controller.abort());
      res.end();
    });
    const pending = fetchWithRetry(
      `${s.url}/x`,
      { signal: controller.signal },
      { retries: 5, backoffMs: 60_000, maxBackoffMs: 60_000, random: () => 1 },
    );
    await expect(pending).rejects.toThrow();
    expect(s.seen).toHaveLength(1);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('retry', () => {
  it('retries what shouldRetry accepts, up to the budget, then throws the last failure', async () => {
    const seen: number[] = [];
    const flaky = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    await expect(
      retry(
        async (attempt) => {
          seen.push(attempt);
          throw flaky;
        },
        { retries: 2, backoffMs: 1 },
      ),
    ).rejects.toBe(flaky);
    expect(seen).toEqual([0, 1, 2]);
  });

  it('returns the first success and does not retry what shouldRetry refuses', async () => {
    let calls = 0;
    expect(
      await retry(
        async (attempt) =>
          attempt < 1
            ? Promise.reject(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))
            : 'ok',
        { retries: 3, backoffMs: 1 },
      ),
    ).toBe('ok');
    const fatal = new Error('bad request');
    await expect(
      retry(
        async () => {
          calls += 1;
          throw fatal;
        },
        { retries: 3, backoffMs: 1, shouldRetry: () => false },
      ),
    ).rejects.toBe(fatal);
    expect(calls).toBe(1);
  });
});

import { OciError } from '@flotilla/protocol';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createMetrics,
  createOperationalEndpoints,
  createServiceApp,
  HttpProblem,
  jsonBody,
  problems,
  Readiness,
  type RunningServer,
} from '../src/index.js';
import { capturingLogger, closeAll, serve } from './loopback.js';

const { logger, lines } = capturingLogger();
let server: RunningServer;
let readinessState = { store: true };

function thrower(kind: string): () => never {
  return () => {
    switch (kind) {
      case 'oci':
        throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', {
          detail: { tag: 'latest' },
          headers: { 'X-Test': 'yes' },
        });
      case 'problem':
        throw problems.conflict('the channel moved', { extensions: { channel: 'stable' } });
      case 'unauthorized':
        throw problems.unauthorized();
      case 'zod':
        z.object({ repository: z.string(), tags: z.array(z.string()) }).parse({
          repository: 1,
          tags: ['a', 2],
        });
        throw new Error('unreachable');
      default:
        throw new Error('secret internals at /srv/db');
    }
  };
}

beforeAll(async () => {
  const metrics = createMetrics('kit-test');
  const readiness = new Readiness({ store: () => readinessState.store }, { timeoutMs: 100 });
  readiness.add('bus', () => undefined);
  const app = createServiceApp(
    { name: 'kit-test', logger, metrics, readiness, jsonLimit: '64b' },
    (app) => {
      for (const kind of ['oci', 'problem', 'unauthorized', 'zod', 'crash']) {
        app.get(`/v2/fail/${kind}`, thrower(kind));
        app.get(`/api/v1/fail/${kind}`, thrower(kind));
      }
      app.get('/api/v1/async-crash', async () => {
        await Promise.resolve();
        throw new TypeError('cannot read properties of undefined');
      });
      app.get('/api/v1/things/:id', (req, res) => {
        res.json({ id: req.params.id, requestId: req.id });
      });
      app.post('/api/v1/echo', jsonBody(), (req, res) => {
        res.json({ body: req.body as unknown });
      });
      app.post('/api/v1/big', jsonBody('1kb'), (req, res) => {
        res.json({ keys: Object.keys(req.body as object).length });
      });
      app.post('/api/v1/signed', jsonBody(undefined, { rawBody: true }), (req, res) => {
        res.json({ raw: req.rawBody?.toString('utf8') });
      });
      app.post('/api/v1/validated', jsonBody(), (req, res) => {
        const body = z.object({ name: z.string() }).parse(req.body);
        res.status(201).json(body);
      });
      app.get('/api/v1/partial', (_req, res) => {
        res.write('partial');
        throw new Error('failed mid-stream');
      });
    },
  );
  server = await serve(app, logger);
});

afterAll(closeAll);

async function get(
  path: string,
  headers: Record<string, string> = {},
  method: 'GET' | 'HEAD' = 'GET',
) {
  const res = await request(`${server.url}${path}`, { method, headers });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

async function post(path: string, body: string, contentType = 'application/json') {
  const res = await request(`${server.url}${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': contentType },
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

describe('error mapper under /v2/ (OCI JSON)', () => {
  it('renders OciError with its status, body, headers and the API version header', async () => {
    const r = await get('/v2/fail/oci');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(r.headers['x-test']).toBe('yes');
    expect(r.json()).toEqual({
      errors: [
        { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { tag: 'latest' } },
      ],
    });
  });

  it('renders HttpProblem as an OCI error', async () => {
    const r = await get('/v2/fail/unauthorized');
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="flotilla"');
    expect(r.json()).toEqual({
      errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }],
    });
  });

  it('renders a ZodError as 400 with the issues', async () => {
    const r = await get('/v2/fail/zod');
    expect(r.status).toBe(400);
    const body = r.json() as {
      errors: Array<{ code: string; detail: { issues: Array<{ path: string }> } }>;
    };
    expect(body.errors[0]?.detail.issues.map((i) => i.path)).toEqual(['repository', 'tags[1]']);
  });

  it('renders a crash as 500 UNKNOWN with the request id and no stack', async () => {
    const r = await get('/v2/fail/crash', { 'x-request-id': 'crash-v2' });
    expect(r.status).toBe(500);
    expect(r.json()).toEqual({
      errors: [{ code: 'UNKNOWN', message: 'unknown error', detail: { requestId: 'crash-v2' } }],
    });
    expect(r.text).not.toContain('secret internals');
    expect(r.text).not.toMatch(/\bat .*\.ts/);
  });

  it('answers an unknown /v2/ path with an OCI 404', async () => {
    const r = await get('/v2/nothing/here');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const body = r.json() as { errors: Array<{ code: string }> };
    expect(body.errors[0]?.code).toBe('NAME_UNKNOWN');
  });

  it('sends headers but no body on HEAD', async () => {
    const r = await get('/v2/fail/oci', {}, 'HEAD');
    expect(r.status).toBe(404);
    expect(r.text).toBe('');
  });
});

describe('error mapper elsewhere (problem JSON)', () => {
  it('renders HttpProblem with extensions, instance and request id', async () => {
    const r = await get('/api/v1/fail/problem?x=1', { 'x-request-id': 'req-42' });
    expect(r.status).toBe(409);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json()).toEqual({
      type: 'about:blank',
      title: 'Conflict',
      status: 409,
      detail: 'the channel moved',
      channel: 'stable',
      instance: '/api/v1/fail/problem',
      requestId: 'req-42',
    });
  });

  it('renders OciError as problem JSON carrying the OCI code', async () => {
    const r = await get('/api/v1/fail/oci');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.headers['docker-distribution-api-version']).toBeUndefined();
    expect(r.headers['x-test']).toBe('yes');
    expect(r.json()).toMatchObject({
      type: 'about:blank',
      title: 'manifest unknown to registry',
      status: 404,
      detail: 'manifest unknown',
      code: 'MANIFEST_UNKNOWN',
      ociDetail: { tag: 'latest' },
    });
  });

  it('renders a ZodError as 400 listing path and message of each issue', async () => {
    const r = await get('/api/v1/fail/zod');
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('application/problem+json');
    const body = r.json() as { detail: string; issues: Array<{ path: string; message: string }> };
    expect(body.issues).toHaveLength(2);
    expect(body.issues[0]).toEqual({
      path: 'repository',
      message: expect.stringContaining('expected string'),
    });
    expect(body.issues[1]?.path).toBe('tags[1]');
    expect(body.detail).toMatch(/^repository: .* \(and 1 more\)$/);
  });

  it.each(['/api/v1/fail/crash', '/api/v1/async-crash'])(
    'renders %s as 500 without internals and logs it',
    async (path) => {
      const r = await get(path, { 'x-request-id': `crash-${path.length}` });
      expect(r.status).toBe(500);
      const body = r.json();
      expect(body).toMatchObject({
        status: 500,
        title: 'Internal Server Error',
        requestId: `crash-${path.length}`,
      });
      expect(body).not.toHaveProperty('stack');
      expect(r.text).not.toContain('internals');
      expect(r.text).not.toContain('undefined');
      const logged = lines.find((l) => l.reqId === `crash-${path.length}` && l.level === 50);
      expect(logged?.msg).toBe('failed to handle request');
      expect((logged?.err as { stack?: string } | undefined)?.stack).toContain('Error');
    },
  );

  it('answers an unknown path with a problem 404', async () => {
    const r = await get('/nothing/here');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json()).toMatchObject({
      status: 404,
      title: 'Not Found',
      detail: 'no route for GET /nothing/here',
    });
  });

  it('cuts the connection when the response had already started', async () => {
    await expect(
      (async () => {
        const res = await request(`${server.url}/api/v1/partial`);
        await res.body.text();
      })(),
    ).rejects.toThrow();
    expect(lines.some((l) => l.msg === 'failed after response started')).toBe(true);
  });
});

describe('request ids and access log', () => {
  it('echoes a sane incoming id and binds it to the request logger', async () => {
    const r = await get('/api/v1/things/7', { 'x-request-id': 'abc-123.x' });
    expect(r.headers['x-request-id']).toBe('abc-123.x');
    expect(r.json()).toEqual({ id: '7', requestId: 'abc-123.x' });
    const access = lines.find((l) => l.reqId === 'abc-123.x' && l.msg === 'request completed');
    expect(access).toMatchObject({
      method: 'GET',
      url: '/api/v1/things/7',
      status: 200,
      level: 30,
    });
    expect(typeof access?.ms).toBe('number');
  });

  it('replaces an insane incoming id with a generated one', async () => {
    const r = await get('/healthz', { 'x-request-id': 'has spaces and "quotes"' });
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const r2 = await get('/healthz');
    expect(r2.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(r2.headers['x-request-id']).not.toBe(r.headers['x-request-id']);
  });

  it('does not advertise express and sends no etag', async () => {
    const r = await get('/api/v1/things/1');
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers.etag).toBeUndefined();
  });
});

describe('health, readiness, metrics', () => {
  it('/healthz answers ok', async () => {
    const r = await get('/healthz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ok', service: 'kit-test' });
  });

  it('/readyz is 200 when every check passes and 503 naming the failing one', async () => {
    readinessState = { store: true };
    const ok = await get('/readyz');
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({
      status: 'ok',
      checks: { store: { status: 'ok' }, bus: { status: 'ok' } },
    });
    readinessState = { store: false };
    const bad = await get('/readyz');
    expect(bad.status).toBe(503);
    expect(bad.json()).toMatchObject({
      status: 'fail',
      checks: { store: { status: 'fail' }, bus: { status: 'ok' } },
    });
    readinessState = { store: true };
  });

  it('/metrics has the duration histogram by route pattern, never the raw URL', async () => {
    await get('/api/v1/things/12345');
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain');
    expect(r.text).toContain('# TYPE flotilla_http_request_duration_seconds histogram');
    expect(r.text).toMatch(
      /flotilla_http_request_duration_seconds_count\{service="kit-test",route="\/api\/v1\/things\/:id",method="GET",status="200"\} \d+/,
    );
    expect(r.text).not.toContain('12345');
    expect(r.text).toMatch(/process_cpu_user_seconds_total\{service="kit-test"\}/);
    expect(r.text).toMatch(/route="unmatched",method="GET",status="404"/);
  });
});

describe('JSON bodies', () => {
  it('parses JSON on routes that ask for it', async () => {
    const r = await post('/api/v1/echo', '{"a":1}');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ body: { a: 1 } });
  });

  it('answers 413 problem beyond the app limit', async () => {
    const r = await post('/api/v1/echo', JSON.stringify({ a: 'x'.repeat(100) }));
    expect(r.status).toBe(413);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json()).toMatchObject({
      status: 413,
      title: 'Payload Too Large',
      detail: 'request body exceeds 64 bytes',
    });
  });

  it('honours a per-route limit', async () => {
    const r = await post('/api/v1/big', JSON.stringify({ a: 'x'.repeat(500) }));
    expect(r.status).toBe(200);
  });

  it('answers 400 problem on malformed JSON', async () => {
    const r = await post('/api/v1/echo', '{"a":');
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ status: 400, detail: 'malformed JSON body' });
  });

  it('refuses non-object JSON (strict) with 400', async () => {
    const r = await post('/api/v1/echo', '"just a string"');
    expect(r.status).toBe(400);
  });

  it('answers 415 for a body of another type', async () => {
    const r = await post('/api/v1/echo', 'a=1', 'application/x-www-form-urlencoded');
    expect(r.status).toBe(415);
    expect(r.headers['content-type']).toBe('application/problem+json');
  });

  it('validates with zod into a 400 problem and keeps the raw bytes when asked', async () => {
    const bad = await post('/api/v1/validated', '{"name":5}');
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ issues: [{ path: 'name' }] });
    const missing = await request(`${server.url}/api/v1/validated`, { method: 'POST' });
    expect(missing.statusCode).toBe(400);
    await missing.body.dump();
    const raw = await post('/api/v1/signed', '{ "b" : 2 }');
    expect(raw.json()).toEqual({ raw: '{ "b" : 2 }' });
  });
});

describe('HttpProblem', () => {
  it('defaults its title to the reason phrase and its message to the detail', () => {
    const p = new HttpProblem({ status: 422, detail: 'tag missing' });
    expect(p.title).toBe('Unprocessable Entity');
    expect(p.message).toBe('tag missing');
    expect(p).toBeInstanceOf(Error);
  });
});

describe('operational endpoints without express', () => {
  let lean: RunningServer;
  let ready = true;
  let brokenMetrics = false;
  let passedOn: string[];

  beforeAll(async () => {
    const metrics = createMetrics('lean-test', { defaultMetrics: false });
    const scrape = metrics.registry.metrics.bind(metrics.registry);
    metrics.registry.metrics = () =>
      brokenMetrics ? Promise.reject(new Error('collector failed')) : scrape();
    const readiness = new Readiness({ tree: () => ready });
    const operational = createOperationalEndpoints({
      name: 'lean-test',
      logger,
      metrics,
      readiness,
    });
    passedOn = [];
    lean = await serve((req, res) => {
      if (operational(req, res)) return;
      passedOn.push(`${req.method} ${req.url}`);
      res.writeHead(418).end();
    }, logger);
  });

  const call = async (path: string, method: 'GET' | 'HEAD' | 'POST' = 'GET') => {
    const res = await request(`${lean.url}${path}`, { method });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  };

  it('answers health, readiness and metrics on plain node:http, HEAD without a body', async () => {
    const health = await call('/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(health.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(health.text)).toEqual({ status: 'ok', service: 'lean-test' });
    const head = await call('/healthz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect(Number(head.headers['content-length'])).toBe(Buffer.byteLength(health.text));

    ready = false;
    const notReady = await call('/readyz?verbose=1');
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.text)).toMatchObject({
      status: 'fail',
      checks: { tree: { status: 'fail' } },
    });
    ready = true;
    expect((await call('/readyz')).status).toBe(200);

    const scraped = await call('/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.headers['content-type']).toContain('text/plain');
    expect(scraped.text).toMatch(
      /flotilla_http_request_duration_seconds_count\{service="lean-test",route="\/readyz",method="GET",status="503"\} 1/,
    );
  });

  it('leaves every other path and method to the next handler', async () => {
    for (const [path, method] of [
      ['/healthzz', 'GET'],
      ['/readyz/x', 'GET'],
      ['/readyz', 'POST'],
      ['/', 'GET'],
    ] as const) {
      expect((await call(path, method)).status).toBe(418);
    }
    expect(passedOn).toEqual(['GET /healthzz', 'GET /readyz/x', 'POST /readyz', 'GET /']);
  });

  it('answers a failing scrape with problem JSON, not a crash', async () => {
    brokenMetrics = true;
    const failed = await call('/metrics');
    brokenMetrics = false;
    expect(failed.status).toBe(500);
    expect(failed.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(failed.text)).toMatchObject({ status: 500 });
    expect(failed.text).not.toContain('collector failed');
    expect((await call('/healthz')).status).toBe(200);
  });
});

import { OciError } from '@flotilla/protocol';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMetrics,
  createServiceApp,
  problems,
  renderError,
  writeError,
} from '../src/index.js';
import { capturingLogger, closeAll, serve } from './loopback.js';

afterEach(closeAll);

async function fetchJson(url: string) {
  const res = await request(url);
  return {
    status: res.statusCode,
    headers: res.headers,
    body: (await res.body.json()) as Record<string, unknown>,
  };
}

describe('errorFormat option', () => {
  it("'oci' renders OCI JSON on every path, including 404s", async () => {
    const { logger } = capturingLogger();
    const app = createServiceApp(
      { name: 'f', logger, metrics: createMetrics('f'), errorFormat: 'oci' },
      (app) => {
        app.get('/anything', () => {
          throw problems.forbidden('no');
        });
      },
    );
    const s = await serve(app, logger);
    const denied = await fetchJson(`${s.url}/anything`);
    expect(denied.status).toBe(403);
    expect(denied.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(denied.body).toEqual({ errors: [{ code: 'DENIED', message: 'no' }] });
    const missing = await fetchJson(`${s.url}/nowhere`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
  });

  it('a function chooses per request', async () => {
    const { logger } = capturingLogger();
    const app = createServiceApp(
      {
        name: 'f',
        logger,
        metrics: createMetrics('f'),
        errorFormat: (req) => (req.headers.accept?.includes('problem') ? 'problem' : 'oci'),
      },
      () => undefined,
    );
    const s = await serve(app, logger);
    const oci = await fetchJson(`${s.url}/x`);
    expect(oci.headers['content-type']).toBe('application/json; charset=utf-8');
    const res = await request(`${s.url}/x`, { headers: { accept: 'application/problem+json' } });
    expect(res.headers['content-type']).toBe('application/problem+json');
    await res.body.dump();
  });
});

describe('writeError on a lean node:http path', () => {
  it('uses the same mapper without express', async () => {
    const { logger } = capturingLogger();
    const s = await serve((req, res) => {
      writeError(res, new OciError('BLOB_UNKNOWN', undefined, { detail: { digest: 'sha256:0' } }), {
        format: req.url?.startsWith('/v2/') ? 'oci' : 'problem',
        requestId: 'lean-1',
        instance: req.url ?? '/',
      });
    }, logger);
    const oci = await fetchJson(`${s.url}/v2/a/blobs/x`);
    expect(oci.status).toBe(404);
    expect(oci.body).toEqual({
      errors: [
        {
          code: 'BLOB_UNKNOWN',
          message: 'blob unknown to registry',
          detail: { digest: 'sha256:0' },
        },
      ],
    });
    const problem = await fetchJson(`${s.url}/pub/x`);
    expect(problem.status).toBe(404);
    expect(problem.body).toMatchObject({
      code: 'BLOB_UNKNOWN',
      requestId: 'lean-1',
      instance: '/pub/x',
    });
  });
});

describe('renderError', () => {
  it('never leaks the message of an unexpected error', () => {
    const err = new Error('password=hunter2 at /srv');
    for (const format of ['oci', 'problem'] as const) {
      const r = renderError(err, { format, requestId: 'r1' });
      expect(r.status).toBe(500);
      expect(r.unexpected).toBe(true);
      expect(r.body).not.toContain('hunter2');
      expect(r.body).toContain('r1');
    }
  });

  it('keeps reserved problem members over extensions', () => {
    const r = renderError(
      problems.conflict('real', { extensions: { status: 200, detail: 'fake', policy: 'p' } }),
      {
        format: 'problem',
      },
    );
    expect(JSON.parse(r.body)).toMatchObject({ status: 409, detail: 'real', policy: 'p' });
  });

  it('maps non-exposed errors with a status to 500', () => {
    const err = Object.assign(new Error('internal detail'), { status: 400, expose: false });
    expect(renderError(err, { format: 'problem' }).status).toBe(500);
  });
});

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePublishedTree, type WrittenTree } from '../../../test/support/tree.js';
import { ALL_MANIFESTS, removeDir, startCrane, tempDir, type Crane } from './harness.js';

let root: string;
let tree: WrittenTree;
const cranes: Crane[] = [];

beforeAll(async () => {
  root = await tempDir();
  tree = await writePublishedTree(root, {
    publication: 1,
    repositories: [
      { name: 'public/app', tags: { v1: { kind: 'image', layers: 1 } } },
      { name: 'private/secret', tags: { v1: { kind: 'image', layers: 1 } } },
      { name: 'private/deep/er', tags: { v1: { kind: 'image', layers: 1 } } },
    ],
  });
  await writeFile(path.join(root, 'htpasswd'), `alice:${bcrypt.hashSync('s3cret', 4)}\n`);
});

afterAll(async () => {
  for (const c of cranes) await c.close();
  await removeDir(root);
});

async function start(env: Record<string, string>): Promise<Crane> {
  const crane = await startCrane(root, env);
  cranes.push(crane);
  return crane;
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('rate limiting', () => {
  it('answers 429 TOOMANYREQUESTS with Retry-After once the bucket is empty', async () => {
    const crane = await start({ FLOTILLA_CRANE_RATE_LIMIT: '1', FLOTILLA_CRANE_RATE_BURST: '3' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await crane.get('/v2/public/app/tags/list')).status);
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    const r = await crane.get('/v2/public/app/tags/list');
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('TOOMANYREQUESTS');
    // health and metrics are not rate limited
    expect((await crane.get('/healthz')).status).toBe(200);
    expect((await crane.get('/metrics')).body.toString()).toMatch(
      /flotilla_crane_rate_limited_total\{[^}]*\} 3/,
    );
  });

  it('ignores X-Forwarded-For from an untrusted peer (one bucket for the peer)', async () => {
    const crane = await start({ FLOTILLA_CRANE_RATE_LIMIT: '1', FLOTILLA_CRANE_RATE_BURST: '2' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push(
        (await crane.get('/v2/public/app/tags/list', { 'x-forwarded-for': `192.0.2.${i + 1}` }))
          .status,
      );
    }
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('believes X-Forwarded-For from a trusted proxy (one bucket per client)', async () => {
    const crane = await start({
      FLOTILLA_CRANE_RATE_LIMIT: '1',
      FLOTILLA_CRANE_RATE_BURST: '2',
      FLOTILLA_TRUSTED_PROXIES: '127.0.0.0/8, ::1',
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push(
        (await crane.get('/v2/public/app/tags/list', { 'x-forwarded-for': `192.0.2.${i + 1}` }))
          .status,
      );
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    // the right-most untrusted hop is the client: a spoofed left-most entry changes nothing
    const spoofed: number[] = [];
    for (let i = 0; i < 3; i++) {
      spoofed.push(
        (
          await crane.get('/v2/public/app/tags/list', {
            'x-forwarded-for': `2001:db8::${i + 1}, 192.0.2.200, 127.0.0.5`,
          })
        ).status,
      );
    }
    expect(spoofed).toEqual([200, 200, 429]);
  });
});

describe('protected repositories', () => {
  it('answers 404 NAME_UNKNOWN to anonymous clients and hides them from the catalog', async () => {
    const crane = await start({
      FLOTILLA_CRANE_PROTECTED: 'private/*',
      FLOTILLA_CRANE_HTPASSWD: path.join(root, 'htpasswd'),
    });
    for (const p of ['/v2/private/secret/manifests/v1', '/v2/private/secret/tags/list']) {
      const r = await crane.get(p, { accept: ALL_MANIFESTS });
      expect(r.status, p).toBe(404);
      expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('NAME_UNKNOWN');
    }
    const layer = tree.repositories['private/secret']!.images.v1![0]!.layers[0]!;
    expect((await crane.get(`/v2/private/secret/blobs/${layer}`)).status).toBe(404);
    const wrong = await crane.get('/v2/private/secret/tags/list', {
      authorization: basic('alice', 'nope'),
    });
    expect(wrong.status).toBe(404);
    expect((await crane.get('/v2/_catalog')).json()).toEqual({
      repositories: ['private/deep/er', 'public/app'],
    });
    expect((await crane.get('/v2/public/app/manifests/v1', { accept: ALL_MANIFESTS })).status).toBe(
      200,
    );
    // `*` stops at a slash
    expect((await crane.get('/v2/private/deep/er/tags/list')).status).toBe(200);
  });

  it('serves them with Basic credentials from the htpasswd file', async () => {
    const crane = await start({
      FLOTILLA_CRANE_PROTECTED: 'private/**',
      FLOTILLA_CRANE_HTPASSWD: path.join(root, 'htpasswd'),
    });
    const auth = { authorization: basic('alice', 's3cret'), accept: ALL_MANIFESTS };
    const r = await crane.get('/v2/private/secret/manifests/v1', auth);
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('private, no-store');
    expect((await crane.get('/v2/private/deep/er/tags/list', auth)).status).toBe(200);
    expect((await crane.get('/v2/_catalog', auth)).json()).toEqual({
      repositories: ['private/deep/er', 'private/secret', 'public/app'],
    });
  });

  it('challenges anonymous clients at /v2/ when an htpasswd file is configured', async () => {
    const crane = await start({
      FLOTILLA_CRANE_PROTECTED: 'private/**',
      FLOTILLA_CRANE_HTPASSWD: path.join(root, 'htpasswd'),
    });
    const anonymous = await crane.get('/v2/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Basic realm="flotilla-crane"');
    expect((await crane.get('/v2/', { authorization: basic('alice', 's3cret') })).status).toBe(200);
    expect((await crane.get('/v2/', { authorization: basic('alice', 'bad') })).status).toBe(401);
  });

  it('serves them to a client certificate vouched for by a trusted TLS terminator only', async () => {
    const env = {
      FLOTILLA_CRANE_PROTECTED: 'private/**',
      FLOTILLA_CRANE_CLIENT_CERT_HEADER: 'X-SSL-Client-Verify',
    };
    const untrusted = await start(env);
    expect(
      (await untrusted.get('/v2/private/secret/tags/list', { 'x-ssl-client-verify': 'SUCCESS' }))
        .status,
    ).toBe(404);
    const trusted = await start({ ...env, FLOTILLA_TRUSTED_PROXIES: '127.0.0.1,::1' });
    expect(
      (await trusted.get('/v2/private/secret/tags/list', { 'x-ssl-client-verify': 'SUCCESS' }))
        .status,
    ).toBe(200);
    expect(
      (
        await trusted.get('/v2/private/secret/tags/list', {
          'x-ssl-client-verify': 'FAILED:expired',
        })
      ).status,
    ).toBe(404);
    expect((await trusted.get('/v2/private/secret/tags/list')).status).toBe(404);
  });
});

describe('limits', () => {
  it('answers 431 to oversized headers', async () => {
    const crane = await start({});
    const r = await crane.get('/v2/', { 'x-big': 'a'.repeat(20_000) }).catch((err: Error) => err);
    if (r instanceof Error) expect(r.message).toMatch(/closed|reset|socket/i);
    else expect(r.status).toBe(431);
  });
});

import { describe, expect, it } from 'vitest';
import { compileProtectedGlobs } from '../src/access/protected-globs.js';
import { createCredentialCheck, parseHtpasswd } from '../src/access/credentials.js';
import { pageAfter } from '../src/catalog/catalog.js';
import { parseCidr } from '@flotilla/kit';
import { createClientIpResolver, rateLimitKey } from '../src/http/client-ip.js';
import { parseAccept } from '../src/http/negotiation.js';
import { createRateLimiter } from '../src/http/rate-limit.js';

describe('pageAfter', () => {
  const list = ['a', 'b', 'c', 'd'];
  it('pages after last, exclusive', () => {
    expect(pageAfter(list, undefined, 2)).toEqual({ items: ['a', 'b'], more: true });
    expect(pageAfter(list, 'b', 2)).toEqual({ items: ['c', 'd'], more: false });
    expect(pageAfter(list, 'bb', undefined)).toEqual({ items: ['c', 'd'], more: false });
    expect(pageAfter(list, 'z', 2)).toEqual({ items: [], more: false });
    expect(pageAfter(list, undefined, 0)).toEqual({ items: [], more: true });
  });
});

describe('parseAccept', () => {
  it('reads lists, parameters, several headers and wildcards', () => {
    const a = parseAccept(['application/a; q=0.5, Application/B', 'application/c']);
    expect([...a.types].sort()).toEqual(['application/a', 'application/b', 'application/c']);
    expect(a.any).toBe(false);
    expect(parseAccept('*/*').any).toBe(true);
    expect(parseAccept(undefined).types.size).toBe(0);
  });
});

describe('client IP', () => {
  const resolver = createClientIpResolver(
    ['10.0.0.0/8', '2001:db8:ffff::/48'].map((cidr) => parseCidr(cidr)!),
  );
  it('believes X-Forwarded-For only from trusted peers, right-most untrusted hop', () => {
    expect(resolver.resolve('192.0.2.9', '192.0.2.1')).toBe('192.0.2.9');
    expect(resolver.resolve('10.1.2.3', '192.0.2.1')).toBe('192.0.2.1');
    expect(resolver.resolve('::ffff:10.1.2.3', '192.0.2.66, 192.0.2.1, 10.9.9.9')).toBe(
      '192.0.2.1',
    );
    expect(resolver.resolve('2001:db8:ffff::1', '2001:db8::5')).toBe('2001:db8::5');
    expect(resolver.resolve('10.1.2.3', '10.4.4.4')).toBe('10.4.4.4');
    expect(resolver.resolve('10.1.2.3', 'garbage, 192.0.2.1')).toBe('192.0.2.1');
    expect(resolver.resolve('10.1.2.3', '192.0.2.1, garbage')).toBe('10.1.2.3');
    expect(resolver.resolve('10.1.2.3', '[2001:db8::7]:443')).toBe('2001:db8::7');
    // The strict parser: an octal or hex hop is garbage, not 8.x or 127.x.
    expect(resolver.resolve('10.1.2.3', '192.0.2.1, 010.0.0.1')).toBe('10.1.2.3');
    expect(resolver.resolve('10.1.2.3', '192.0.2.1, 0x7f.0.0.1')).toBe('10.1.2.3');
  });
});

describe('rate limit keys', () => {
  it('groups IPv6 clients by /64', () => {
    expect(rateLimitKey('192.0.2.1')).toBe('192.0.2.1');
    expect(rateLimitKey('2001:db8:1:2:aaaa::1')).toBe(rateLimitKey('2001:db8:1:2:bbbb::9'));
    expect(rateLimitKey('2001:db8:1:2::1')).not.toBe(rateLimitKey('2001:db8:1:3::1'));
    expect(rateLimitKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
  });
});

describe('rate limiter', () => {
  it('refills at the rate up to the burst', () => {
    let t = 0;
    const limiter = createRateLimiter({ rate: 2, burst: 2, now: () => t });
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 1]);
    expect(limiter.take('b')).toBe(0);
    t = 500;
    expect(limiter.take('a')).toBe(0);
    t = 10_000;
    limiter.sweep();
    expect(limiter.size).toBe(0);
  });
});

describe('protected globs', () => {
  it('matches * within a component and ** across', () => {
    const isProtected = compileProtectedGlobs(['internal/*', 'secret/**', 'exact/name', 'v?']);
    expect(isProtected('internal/a')).toBe(true);
    expect(isProtected('internal/a/b')).toBe(false);
    expect(isProtected('secret/a/b/c')).toBe(true);
    expect(isProtected('exact/name')).toBe(true);
    expect(isProtected('exact/names')).toBe(false);
    expect(isProtected('v1')).toBe(true);
    expect(isProtected('public/x')).toBe(false);
  });
});

describe('credentials', () => {
  it('parses bcrypt htpasswd files and refuses other schemes', () => {
    expect(
      parseHtpasswd(
        '# c\nalice:$2y$05$abcdefghijklmnopqrstuuJ1E8Lr3ZmTkzN0uHrZrWUWVvIcy1KQa\n',
      ).get('alice'),
    ).toMatch(/^\$2b\$/);
    expect(() => parseHtpasswd('bob:{SHA}abc')).toThrow(/line 1/);
  });

  it('caches verdicts so bcrypt runs once per header', async () => {
    const bcrypt = await import('bcryptjs');
    const users = new Map([['alice', bcrypt.hashSync('pw', 4)]]);
    const check = createCredentialCheck({ users });
    const header = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    expect(await check.verify({ authorization: header }, false)).toBe(true);
    expect(check.verify({ authorization: header }, false)).toBe(true); // synchronous: cached
    expect(
      await check.verify(
        { authorization: `Basic ${Buffer.from('alice:no').toString('base64')}` },
        false,
      ),
    ).toBe(false);
    expect(await check.verify({ authorization: 'Bearer x' }, false)).toBe(false);
  });
});

describe('loadCraneConfig', () => {
  it('applies the documented defaults', async () => {
    const { loadCraneConfig } = await import('../src/config.js');
    const config = loadCraneConfig({ FLOTILLA_DATA_DIR: '/data' });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 5001,
      publishDir: '/data/publish',
      blobBaseUrl: 'http://127.0.0.1:5002/pub/containers',
      pollIntervalMs: 10_000,
      rateLimit: 100,
      rateBurst: 200,
      trustedProxies: [],
      protectedGlobs: [],
      clientCertValue: 'SUCCESS',
      maxUrlLength: 4096,
      tagMaxAgeSeconds: 30,
    });
    expect(config.sourceUrl).toBeUndefined();
    expect(config.amqpUrl).toBeUndefined();
  });

  it('names the variable that is wrong', async () => {
    const { loadCraneConfig } = await import('../src/config.js');
    expect(() => loadCraneConfig({ FLOTILLA_CRANE_POLL_INTERVAL: 'soon' })).toThrow(
      /FLOTILLA_CRANE_POLL_INTERVAL/,
    );
    expect(() => loadCraneConfig({ FLOTILLA_TRUSTED_PROXIES: '192.0.2.0/24, nope' })).toThrow(
      /FLOTILLA_TRUSTED_PROXIES/,
    );
    expect(
      loadCraneConfig({ FLOTILLA_CRANE_BLOB_BASE_URL: 'https://pull.example/pub/' }).blobBaseUrl,
    ).toBe('https://pull.example/pub');
  });
});

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMirrorsConfig } from '../src/config.js';
import { createAddressSet, parseAddress } from '../src/selection/address.js';

describe('loadMirrorsConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadMirrorsConfig({ FLOTILLA_DATA_DIR: '/tmp/flotilla-x' });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 5002,
      publishDir: path.resolve('/tmp/flotilla-x/publish'),
      masterUrl: 'http://127.0.0.1:5002/master',
      treeSource: 'publish-dir',
      serveMaster: true,
      trustedProxies: [],
      apiToken: undefined,
      crawlIntervalMs: 300_000,
      crawlSample: 32,
      crawlConcurrency: 8,
      crawlTimeoutMs: 10_000,
      treePollIntervalMs: 30_000,
    });
  });

  it('parses trusted proxies as CIDRs or bare addresses', () => {
    const config = loadMirrorsConfig({ FLOTILLA_TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.7 ,2001:db8::/32, ::1' });
    const trusted = createAddressSet(config.trustedProxies);
    expect(trusted.contains(parseAddress('10.9.8.7')!)).toBe(true);
    expect(trusted.contains(parseAddress('192.0.2.7')!)).toBe(true);
    expect(trusted.contains(parseAddress('192.0.2.8')!)).toBe(false);
    expect(trusted.contains(parseAddress('2001:db8:ffff::1')!)).toBe(true);
    expect(trusted.contains(parseAddress('::1')!)).toBe(true);
    expect(trusted.contains(parseAddress('::2')!)).toBe(false);
  });

  it('names the variable that is wrong', () => {
    expect(() => loadMirrorsConfig({ FLOTILLA_TRUSTED_PROXIES: '10.0.0.0/8,nonsense' })).toThrow(/FLOTILLA_TRUSTED_PROXIES.*item 2/);
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_CRAWL_INTERVAL: 'often' })).toThrow(/FLOTILLA_MIRRORS_CRAWL_INTERVAL/);
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_TREE_SOURCE: 'ftp' })).toThrow(/FLOTILLA_MIRRORS_TREE_SOURCE/);
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_MASTER_URL: 'ftp://x' })).toThrow(/FLOTILLA_MIRRORS_MASTER_URL/);
  });
});

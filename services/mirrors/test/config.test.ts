import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMirrorsConfig } from '../src/config.js';

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
      snapshotFile: path.resolve('/tmp/flotilla-x/selection/snapshot.json'),
      apiToken: undefined,
      crawlIntervalMs: 300_000,
      crawlSample: 32,
      crawlConcurrency: 8,
      crawlTimeoutMs: 10_000,
      treePollIntervalMs: 30_000,
    });
  });

  it('names the variable that is wrong', () => {
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_CRAWL_INTERVAL: 'often' })).toThrow(
      /FLOTILLA_MIRRORS_CRAWL_INTERVAL/,
    );
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_TREE_SOURCE: 'ftp' })).toThrow(
      /FLOTILLA_MIRRORS_TREE_SOURCE/,
    );
    expect(() => loadMirrorsConfig({ FLOTILLA_MIRRORS_MASTER_URL: 'ftp://x' })).toThrow(
      /FLOTILLA_MIRRORS_MASTER_URL/,
    );
  });
});

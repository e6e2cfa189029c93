import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveEndpoint } from '../src/endpoints.js';
import { CliError } from '../src/output.js';
import { renderProgress } from '../src/progress.js';
import { run } from '../../../test/support/clients.js';
import { repoRoot } from '../../../test/support/flotilla.js';

const cli = (args: string[], env: NodeJS.ProcessEnv) =>
  run(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'services/cli/src/main.ts', ...args],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'silent', ...env },
      timeoutMs: 60_000,
    },
  );

describe('endpoints', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'flotilla-cli-'));
    await mkdir(join(dataDir, 'secrets'));
    await writeFile(join(dataDir, 'secrets', 'api-token'), 'from-file\n');
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it('takes flags first, then the environment, then the all-in-one secrets', () => {
    expect(resolveEndpoint('content', { url: 'http://127.0.0.1:9/', token: 'flag' }, {})).toEqual({
      url: 'http://127.0.0.1:9',
      token: 'flag',
    });
    expect(
      resolveEndpoint(
        'content',
        {},
        { FLOTILLA_API_TOKEN: 'env', FLOTILLA_CONTENT_PORT: '7003', FLOTILLA_DATA_DIR: dataDir },
      ),
    ).toEqual({
      url: 'http://127.0.0.1:7003',
      token: 'env',
    });
    expect(
      resolveEndpoint('mirrors', { dataDir }, { FLOTILLA_MIRRORS_URL: 'http://127.0.0.1:8/' }),
    ).toEqual({ url: 'http://127.0.0.1:8', token: 'from-file' });
  });

  it('says where a token could come from when there is none', () => {
    expect(() => resolveEndpoint('content', { dataDir: join(dataDir, 'nowhere') }, {})).toThrow(
      CliError,
    );
    expect(() => resolveEndpoint('content', { dataDir: join(dataDir, 'nowhere') }, {})).toThrow(
      /--token.*FLOTILLA_API_TOKEN.*api-token/,
    );
  });
});

describe('progress line', () => {
  it('draws a bar when the total is known and counters otherwise', () => {
    expect(renderProgress({ state: 'running', done: 1, total: 4, bytesDone: 2048 }, 8)).toBe(
      '[##......]  25%  1/4  2.0 KiB  running',
    );
    expect(renderProgress({ state: 'completed', done: 9, total: 3 }, 4)).toMatch(/^\[####\] 100%/);
    expect(renderProgress({ state: 'waiting' })).toBe('waiting');
    expect(renderProgress({ state: 'running', done: 3, message: 'writing blobs' })).toBe(
      '3 done  running  writing blobs',
    );
  });
});

describe('the flotilla command', () => {
  it('stops on bad configuration with one line naming the variable and exit code 78', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-cli-'));
    try {
      const r = await cli(['start'], { FLOTILLA_DATA_DIR: dir, FLOTILLA_CRANE_PORT: 'seventy' });
      expect(r.code).toBe(78);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringContaining('FLOTILLA_CRANE_PORT')]);
      const served = await cli(['serve', 'mirrors'], {
        FLOTILLA_DATA_DIR: dir,
        FLOTILLA_MIRRORS_CRAWL_INTERVAL: 'often',
      });
      expect(served.code).toBe(78);
      expect(served.stderr).toContain('FLOTILLA_MIRRORS_CRAWL_INTERVAL');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports an unreachable API in one line and exits non-zero', async () => {
    const r = await cli(['--url', 'http://127.0.0.1:9', '--token', 't', 'repos'], {});
    expect(r.code).toBe(7);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^flotilla: /);
  });

  it('refuses a promotion without tags or digest as a usage error', async () => {
    const r = await cli(
      [
        '--url',
        'http://127.0.0.1:9',
        '--token',
        't',
        'promote',
        'fedora/httpd',
        '--from',
        'testing',
        '--to',
        'stable',
      ],
      {},
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--tags or --digest');
  });

  it('rejects an unknown service for serve', async () => {
    const r = await cli(['serve', 'database'], {});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/registry, crane, mirrors, content|Allowed choices/);
  });
});

describe('start-up', () => {
  // Every command starts from main.ts; a service's package (express, the store drivers, GeoIP,
  // …) is loaded only by the command that needs it, so `flotilla repos` does not pay for four
  // services. Follows the CLI's own static imports and lists the packages they reach.
  it('loads no service package and not the kit chassis until a command needs them', async () => {
    const { readFile } = await import('node:fs/promises');
    const { dirname, resolve } = await import('node:path');
    const staticImport = /^import\s+(?!type\b)(?:[^'"]*?from\s+)?['"]([^'"]+)['"]/gm;
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = async (file: string): Promise<void> => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = await readFile(file, 'utf8');
      for (const [, specifier] of source.matchAll(staticImport)) {
        if (specifier!.startsWith('.'))
          await visit(resolve(dirname(file), specifier!.replace(/\.js$/, '.ts')));
        else packages.add(specifier!);
      }
    };
    await visit(join(repoRoot, 'services/cli/src/main.ts'));
    expect(seen.size).toBeGreaterThan(3);
    expect([...packages].filter((p) => p.startsWith('@flotilla/')).sort()).toEqual([
      '@flotilla/content/client',
      '@flotilla/mirrors/client',
    ]);
  });
});

describe('flotilla store repair', () => {
  it('a service stops on a corrupt datafile with a message naming the file, the line and the repair command', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-cli-store-'));
    try {
      await mkdir(join(dir, 'db'));
      const file = join(dir, 'db', 'tasks.db');
      await writeFile(file, '{"_id":"a","kind":"sync"}\n{"_id":"b",\n');
      const r = await cli(['serve', 'content'], { FLOTILLA_DATA_DIR: dir });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`corrupt datafile ${file} at line 2`);
      expect(r.stderr).toContain(`flotilla store repair ${file}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('drops the corrupt lines of a datafile, keeps a copy of them, and leaves a whole file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-cli-store-'));
    try {
      const file = join(dir, 'tasks.db');
      await writeFile(file, '{"_id":"a","n":1}\n{"_id":"b",\n{"_id":"c","n":3}\n');
      const r = await cli(['store', 'repair', file], {});
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /kept 2 lines, dropped 1 \(lines 2\), copied to .*tasks\.db\.dropped-/,
      );
      expect(await readFile(file, 'utf8')).toBe('{"_id":"a","n":1}\n{"_id":"c","n":3}\n');
      const copies = (await readdir(dir)).filter((f) => f.startsWith('tasks.db.dropped-'));
      expect(copies).toHaveLength(1);
      expect(await readFile(join(dir, copies[0] as string), 'utf8')).toBe('2\t{"_id":"b",\n');
      const again = await cli(['store', 'repair', file], {});
      expect(again.stdout).toContain('is whole (2 lines)');
      const missing = await cli(['store', 'repair', join(dir, 'none.db')], {});
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no datafile at');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('content gc', () => {
  it('queues a gc, follows it to the end and prints what it reclaimed', async () => {
    const { startContent, ADMIN } = await import('../../content/test/harness.js');
    const content = await startContent();
    try {
      const dry = await cli(
        ['--url', content.url, '--token', ADMIN, 'content', 'gc', '--dry-run'],
        {},
      );
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout.trim()).toBe(
        'would remove 0 versions, 0 manifests, 0 blobs (0 B), 0 stale downloads',
      );
      const real = await cli(
        ['--url', content.url, '--token', ADMIN, '--json', 'content', 'gc'],
        {},
      );
      expect(real.code, real.stderr).toBe(0);
      expect(JSON.parse(real.stdout)).toMatchObject({
        dryRun: false,
        versions: 0,
        manifests: 0,
        blobs: 0,
        bytes: 0,
      });
      const tasks = (await content.api('GET', '/api/v1/tasks?kind=gc')).body.tasks;
      expect(tasks.map((t: { params: { dryRun: boolean } }) => t.params.dryRun).sort()).toEqual([
        false,
        true,
      ]);
    } finally {
      await content.stop();
    }
  });
});

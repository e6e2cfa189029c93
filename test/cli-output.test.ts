/**
 * The `flotilla` command as a script sees it, against a running all-in-one: with `--json` every
 * command prints exactly one JSON document on stdout (one `JSON.parse`, nothing else there, logs
 * on stderr), and every failure exits with the documented code and one line naming the thing.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from './support/images.js';
import {
  flotillaCli,
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';

const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  checkFailed: 3,
  notFound: 4,
  conflict: 5,
  unauthorized: 6,
  server: 7,
};

describe(
  'flotilla CLI: one JSON document with --json, one exit code convention',
  { timeout: 120_000 },
  () => {
    let work: string;
    let ports: ServicePorts;
    let env: NodeJS.ProcessEnv;
    let flotilla: FlotillaProcess;
    let mirror: StaticServer;

    /** Runs a command with --json; stdout must be exactly one JSON document. */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely in tests
    const json = async (args: string[], expectedCode = EXIT.ok): Promise<any> => {
      const r = await flotillaCli(env, ['--json', ...args], { allowFailure: true });
      expect(r.code, `flotilla ${args.join(' ')}: ${r.stderr}`).toBe(expectedCode);
      return JSON.parse(r.stdout);
    };
    const failing = async (args: string[], expectedCode: number) => {
      const r = await flotillaCli(env, args, { allowFailure: true });
      expect(r.code, `flotilla ${args.join(' ')}: ${r.stderr}`).toBe(expectedCode);
      return r;
    };

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), 'flotilla-cli-out-'));
      ports = await freeServicePorts();
      // LOG_LEVEL info: the commands' logs must stay off stdout even when they are on.
      env = flotillaEnv({
        dataDir: join(work, 'var'),
        ports,
        extra: { FLOTILLA_MIRRORS_CRAWL_INTERVAL: '0' },
      });
      flotilla = await startFlotilla(['start'], env, ports);
      env = { ...env, LOG_LEVEL: 'info' };
      const password = (
        await readFile(join(work, 'var', 'secrets', 'admin-password'), 'utf8')
      ).trim();
      for (const tag of ['39', '40'])
        await pushImage(`http://127.0.0.1:${ports.registry}`, 'fedora/httpd', tag, {
          auth: { username: 'admin', password },
        });
      await waitFor('fedora/httpd:39 and :40 in candidate', async () => {
        const r = await flotillaCli(
          env,
          ['--json', 'repos', 'fedora/httpd', '--channel', 'candidate'],
          { allowFailure: true },
        );
        return r.code === 0 &&
          Object.keys(
            (JSON.parse(r.stdout) as { channels: Array<{ tags: object }> }).channels[0]?.tags ?? {},
          ).length === 2
          ? true
          : undefined;
      });
      // The published tree itself stands in for a mirror's copy of it.
      mirror = await startStaticServer(join(work, 'var', 'publish'));
    }, 180_000);

    afterAll(async () => {
      await flotilla?.stop();
      await mirror?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('repos, promote, publish, tasks: one JSON document each', async () => {
      expect(await json(['repos'])).toEqual([expect.objectContaining({ name: 'fedora/httpd' })]);
      expect(
        (await json(['repos', 'fedora/httpd'])).channels.map((c: { name: string }) => c.name),
      ).toEqual(['candidate', 'testing', 'stable']);
      expect(await json(['repos', '--channel', 'testing'])).toEqual([]);
      const promoted = await json([
        'promote',
        'fedora/httpd',
        '--tags',
        '39',
        '--from',
        'candidate',
        '--to',
        'testing',
        '--reason',
        'QA',
      ]);
      expect(promoted.version).toBe(1);
      expect(await json(['repos', '--channel', 'testing'])).toHaveLength(1);
      const done = await json(['publish', '--channel', 'testing', '--wait']);
      expect(done.state).toBe('completed');
      const queued = await json(['publish', '--channel', 'testing']);
      expect(queued.id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await json(['tasks', 'watch', queued.id])).state).toBe('completed');
      const list = await json(['tasks', '--kind', 'publish']);
      expect(list.length).toBeGreaterThanOrEqual(2);
      expect((await json(['tasks', 'show', done.id])).id).toBe(done.id);
    });

    it('mirrors add, list and crawl: one JSON document each', async () => {
      const added = await json([
        'mirrors',
        'add',
        'm1',
        mirror.url,
        '--country',
        'DE',
        '--bandwidth',
        '10',
      ]);
      expect(added.name).toBe('m1');
      expect(await json(['mirrors', 'list'])).toEqual([expect.objectContaining({ id: added.id })]);
      const crawled = await json(['mirrors', 'crawl', added.id]);
      expect(crawled.mirror.id).toBe(added.id);
    });

    it('registry gc and fsck: their report is the only thing on stdout, logs on stderr', async () => {
      const gc = await flotillaCli(env, ['--json', 'registry', 'gc', '--dry-run'], {
        allowFailure: true,
      });
      expect(gc.code).toBe(EXIT.ok);
      expect(JSON.parse(gc.stdout)).toMatchObject({ dryRun: true });
      expect(gc.stderr).toContain('"level":30');
      const fsck = await json(['registry', 'fsck']);
      expect(fsck.clean).toBe(true);
      const human = await flotillaCli(env, ['registry', 'fsck'], { allowFailure: true });
      expect(human.stdout).toMatch(/^clean: \d+ blobs/);
    });

    it('prints people a table or one line, not JSON', async () => {
      const repos = await flotillaCli(env, ['repos']);
      expect(repos.stdout).toMatch(/^REPOSITORY\s+CHANNELS\n/);
      const tasks = await flotillaCli(env, ['tasks']);
      const id = /^([0-9a-f-]{36})/m.exec(tasks.stdout.split('\n')[1] ?? '')?.[1];
      const show = await flotillaCli(env, ['tasks', 'show', id!]);
      expect(show.stdout).toMatch(/^task:\s+[0-9a-f-]{36}\nkind:/);
      const list = await flotillaCli(env, ['mirrors', 'list']);
      const mirrorId = /^(\S+)\s+m1/m.exec(list.stdout)?.[1];
      const crawl = await flotillaCli(env, ['mirrors', 'crawl', mirrorId!]);
      expect(crawl.stdout).toMatch(/^crawled m1: ok; verified publication \d+, claimed \d+\n$/);
    });

    it('exits 2 for usage errors, 4 for unknown things, 5 for refusals, 6 for a bad token, 7 when unreachable', async () => {
      const bogus = await failing(['repos', '--channel', 'bogus'], EXIT.usage);
      expect(bogus.stderr.trim()).toBe(
        'flotilla: channel "bogus" is not one of candidate, testing, stable',
      );
      expect((await failing(['tasks', 'show', 'nope'], EXIT.notFound)).stderr).toMatch(
        /^flotilla: no task "nope"/,
      );
      expect(
        (await failing(['tasks', 'show', '00000000-0000-4000-8000-000000000000'], EXIT.notFound))
          .stderr,
      ).not.toContain('(root)');
      await failing(['tasks', '--state', 'bogus'], EXIT.usage);
      await failing(['promote', 'fedora/httpd', '--tags', '39'], EXIT.usage);
      await failing(['repos', '--no-such-flag'], EXIT.usage);
      await failing(
        ['mirrors', 'add', 'm2', mirror.url, '--country', 'DE', '--bandwidth', 'lots'],
        EXIT.usage,
      );
      await failing(['repos', 'fedora/nothing'], EXIT.notFound);
      await failing(
        ['promote', 'fedora/httpd', '--tags', 'nope', '--from', 'candidate', '--to', 'testing'],
        EXIT.notFound,
      );
      const refused = await failing(
        ['promote', 'fedora/httpd', '--tags', '40', '--from', 'candidate', '--to', 'stable'],
        EXIT.conflict,
      );
      expect(refused.stderr).toMatch(/^flotilla: .*testing.*\n$/);
      await failing(['mirrors', 'add', 'm1', mirror.url, '--country', 'DE'], EXIT.conflict);
      await failing(['--token', 'wrong', 'repos'], EXIT.unauthorized);
      await failing(['--url', 'http://127.0.0.1:9', 'repos'], EXIT.server);
      expect((await failing(['--help'], EXIT.ok)).stdout).toContain('Exit codes');
    });
  },
);

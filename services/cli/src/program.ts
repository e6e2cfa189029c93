import { Command, Option } from 'commander';
import { ContentClient } from '@flotilla/content/client';
import { MirrorsClient } from '@flotilla/mirrors/client';
import { join } from 'node:path';
import { watchTask } from './commands/tasks.js';
import { dataDirOf, resolveEndpoint, type EndpointFlags } from './endpoints.js';
import { CliError, emit, formatBytes, table } from './output.js';
import { loadService, SERVICE_NAMES, type ServiceName } from './services.js';

interface GlobalFlags extends EndpointFlags {
  json?: boolean;
}

const csv = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function buildProgram(): Command {
  const program = new Command('flotilla')
    .description("Flotilla: deliver a Linux distribution's container images")
    .option('--json', 'print JSON for scripts')
    .option('--url <url>', 'API base URL (default: FLOTILLA_<SERVICE>_URL or the local all-in-one)')
    .option('--token <token>', 'API token (default: FLOTILLA_API_TOKEN or the all-in-one secret)')
    .option('--data-dir <dir>', 'all-in-one data directory (default: FLOTILLA_DATA_DIR or ./var)')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });
  const flags = (cmd: Command) => cmd.optsWithGlobals<GlobalFlags>();
  const content = (cmd: Command) => new ContentClient(resolveEndpoint('content', flags(cmd)));
  const mirrors = (cmd: Command) => new MirrorsClient(resolveEndpoint('mirrors', flags(cmd)));

  program
    .command('start')
    .description('run every service in one process (embedded store, in-process bus)')
    .action(async () => (await import('./commands/start.js')).startAllInOne());

  program
    .command('serve')
    .description('run one service on its own (suite mode: MONGODB_URL, AMQP_URL)')
    .addArgument(new Command().createArgument('<service>', 'registry | crane | mirrors | redirector | content').choices(SERVICE_NAMES))
    .action(async (service: ServiceName) => {
      await (await loadService(service)).main(process.env);
    });

  const registry = program.command('registry').description('registry operations');
  const storageDir = (cmd: Command) =>
    process.env.FLOTILLA_REGISTRY_STORAGE_DIR ?? join(dataDirOf(flags(cmd)), 'registry');
  registry
    .command('gc')
    .description('purge expired uploads and remove unreferenced blobs older than the grace period, while the registry keeps serving')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const [{ runGarbageCollection, loadRegistryConfig }, { createLogger, exitOnConfigError }] = await Promise.all([
        import('@flotilla/registry'),
        import('@flotilla/kit'),
      ]);
      // the registry's own settings: the same grace period and upload TTL as the service
      const config = (() => {
        try {
          return loadRegistryConfig(process.env);
        } catch (err) {
          return exitOnConfigError(err);
        }
      })();
      const logger = createLogger({ name: 'flotilla-gc' });
      const report = await runGarbageCollection({
        storageDir: storageDir(cmd),
        dryRun: Boolean(opts.dryRun),
        logger,
        graceMs: config.gcGraceMs,
        uploadTtlMs: config.uploadTtlMs,
      });
      emit(report, flags(cmd), (r) => JSON.stringify(r, null, 2));
    });
  registry
    .command('fsck')
    .description('re-hash every blob; report corrupt or orphaned files')
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ runFsck }, { createLogger }] = await Promise.all([import('@flotilla/registry'), import('@flotilla/kit')]);
      const logger = createLogger({ name: 'flotilla-fsck' });
      const report = await runFsck({ storageDir: storageDir(cmd), logger });
      emit(report, flags(cmd), (r) => JSON.stringify(r, null, 2));
      if (!report.clean) throw new CliError('fsck found problems', 3);
    });

  const storeCmd = program.command('store').description('the embedded store (its datafiles under <data-dir>/<service>/db)');
  storeCmd
    .command('repair')
    .description('drop the corrupt lines of a datafile the service refused to load, keeping a copy of them (stop the service first)')
    .argument('<datafile>', 'the datafile named in the error, e.g. var/content/db/tasks.db')
    .action(async (datafile: string, _opts: unknown, cmd: Command) => {
      const { repairDatafile } = await import('@flotilla/store');
      let report;
      try {
        report = await repairDatafile(datafile);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError(`no datafile at ${datafile}`, 2);
        throw err;
      }
      emit(report, flags(cmd), (r) =>
        r.droppedFile
          ? `kept ${r.keptLines} lines, dropped ${r.droppedLines.length} (lines ${r.droppedLines.join(', ')}), copied to ${r.droppedFile}`
          : `${r.file} is whole (${r.keptLines} lines); nothing dropped`,
      );
    });

  program
    .command('repos')
    .description('list repositories and their channels, or show one')
    .argument('[repository]')
    .option('--channel <channel>')
    .action(async (repository: string | undefined, opts: { channel?: string }, cmd: Command) => {
      const client = content(cmd);
      if (!repository) {
        const repos = await client.repositories();
        emit(repos, flags(cmd), (rs) =>
          table(
            ['repository', 'channels'],
            rs.map((r) => [r.name, Object.entries(r.channels).map(([c, v]) => `${c}@${v}`).join(' ') || '-']),
          ),
        );
        return;
      }
      const repo = await client.repository(repository, opts.channel ? { channel: opts.channel } : {});
      emit(repo, flags(cmd), (r) =>
        table(
          ['channel', 'version', 'tag', 'digest'],
          r.channels.flatMap((c) =>
            Object.keys(c.tags).length === 0
              ? [[c.name, c.version, undefined, undefined]]
              : Object.entries(c.tags).map(([t, d]) => [c.name, c.version, t, d]),
          ),
        ),
      );
    });

  program
    .command('promote')
    .description('promote tags (or a digest) from one channel to another')
    .argument('<repository>')
    .requiredOption('--from <channel>')
    .requiredOption('--to <channel>')
    .option('--tags <tags>', 'comma-separated tags', csv)
    .option('--digest <digest>')
    .option('--target-tags <tags>', 'tag names in the target channel', csv)
    .option('--reason <text>')
    .action(
      async (
        repository: string,
        opts: { from: string; to: string; tags?: string[]; digest?: string; targetTags?: string[]; reason?: string },
        cmd: Command,
      ) => {
        if (!opts.tags && !opts.digest) throw new CliError('promote needs --tags or --digest', 2);
        const result = await content(cmd).promote({ repository, ...opts });
        emit(result, flags(cmd), (r) => `promoted ${repository} ${opts.from} → ${opts.to}: ${opts.to} is now version ${r.version}`);
      },
    );

  program
    .command('publish')
    .description('publish a channel into the published tree')
    .option('--channel <channel>', 'channel to publish', 'stable')
    .option('--repositories <names>', 'only these repositories', csv)
    .option('--wait', 'follow the task until it ends')
    .action(async (opts: { channel: string; repositories?: string[]; wait?: boolean }, cmd: Command) => {
      const client = content(cmd);
      const task = await client.publish({ channel: opts.channel, repositories: opts.repositories });
      if (!opts.wait) {
        emit(task, flags(cmd), (t) => `publish task ${t.id} ${t.state}`);
        return;
      }
      await watchTask(client, task.id, flags(cmd));
    });

  const contentCmd = program.command('content').description('content store operations');
  contentCmd
    .command('gc')
    .description('remove channel versions beyond the policy, then manifests and blobs nothing references')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const client = content(cmd);
      const queued = await client.gc({ dryRun: Boolean(opts.dryRun) });
      let task = queued;
      // A gc may wait behind a running one (one at a time): follow it to the end.
      for (let i = 0; i < 10_000 && !['completed', 'failed', 'canceled'].includes(task.state); i++) {
        task = await client.task(queued.id, { waitSeconds: 30 });
      }
      if (task.state !== 'completed') throw new CliError(`gc task ${task.id} ${task.state}${task.error ? `: ${task.error.message}` : ''}`);
      const r = (task.result ?? {}) as { versions?: number; manifests?: number; blobs?: number; bytes?: number; tmpFiles?: number };
      emit(task.result ?? {}, flags(cmd), () =>
        `${opts.dryRun ? 'would remove' : 'removed'} ${r.versions ?? 0} versions, ${r.manifests ?? 0} manifests, ` +
          `${r.blobs ?? 0} blobs (${formatBytes(r.bytes ?? 0)}), ${r.tmpFiles ?? 0} stale downloads`,
      );
    });

  const tasks = program
    .command('tasks')
    .description('list tasks')
    .option('--state <state>')
    .action(async (opts: { state?: string }, cmd: Command) => {
      const list = await content(cmd).tasks(opts.state ? { state: opts.state } : {});
      emit(list, flags(cmd), (ts) =>
        table(
          ['id', 'kind', 'state', 'repository', 'created'],
          ts.map((t) => [t.id, t.kind, t.state, t.repository ?? t.channel, t.createdAt]),
        ),
      );
    });
  tasks
    .command('watch')
    .description('follow one task with a live progress bar')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, cmd: Command) => watchTask(content(cmd), id, flags(cmd)));
  tasks
    .command('show')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const task = await content(cmd).task(id);
      emit(task, flags(cmd), (t) => JSON.stringify(t, null, 2));
    });
  tasks
    .command('cancel')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const task = await content(cmd).cancelTask(id);
      emit(task, flags(cmd), (t) => `task ${t.id} ${t.state}`);
    });

  const mirrorsCmd = program.command('mirrors').description('the mirror network');
  mirrorsCmd
    .command('list')
    .action(async (_opts: unknown, cmd: Command) => {
      const list = await mirrors(cmd).list();
      emit(list, flags(cmd), (ms) =>
        table(
          ['id', 'name', 'country', 'enabled', 'publication', 'base url'],
          ms.map((m) => [m.id, m.name, m.country, m.enabled ? 'yes' : 'no', m.publication ?? undefined, m.baseUrl]),
        ),
      );
    });
  mirrorsCmd
    .command('add')
    .argument('<name>')
    .argument('<baseUrl>')
    .requiredOption('--country <code>', 'ISO 3166 alpha-2')
    .option('--netblocks <cidrs>', 'comma-separated CIDRs', csv)
    .option('--asn <n>', 'autonomous system number', (v) => Number(v))
    .option('--bandwidth <mbps>', 'weight within a tier', (v) => Number(v))
    .option('--private', 'serve only its own netblocks and ASN')
    .addOption(new Option('--disabled', 'register disabled'))
    .action(
      async (
        name: string,
        baseUrl: string,
        opts: { country: string; netblocks?: string[]; asn?: number; bandwidth?: number; private?: boolean; disabled?: boolean },
        cmd: Command,
      ) => {
        const { disabled, ...rest } = opts;
        const mirror = await mirrors(cmd).add({ name, baseUrl, ...rest, enabled: !disabled });
        emit(mirror, flags(cmd), (m) => `mirror ${m.name} registered as ${m.id}`);
      },
    );
  mirrorsCmd
    .command('crawl')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const result = await mirrors(cmd).crawl(id);
      emit(result, flags(cmd), (r) => JSON.stringify(r, null, 2));
    });

  return program;
}

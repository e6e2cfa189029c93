import { Command, Option } from 'commander';
import { ContentClient } from '@flotilla/content/client';
import { MirrorsClient } from '@flotilla/mirrors/client';
import { join } from 'node:path';
import { watchTask } from './commands/tasks.js';
import { dataDirOf, resolveEndpoint, type EndpointFlags } from './endpoints.js';
import { CliError, emit, EXIT, facts, formatBytes, table } from './output.js';
import { loadService, SERVICE_NAMES, type ServiceName } from './services.js';

interface GlobalFlags extends EndpointFlags {
  json?: boolean;
}

/** Task ids are UUIDs: anything else names no task, and the API's schema words stay out of it. */
const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const taskId = (id: string): string => {
  if (!TASK_ID.test(id))
    throw new CliError(
      `no task ${JSON.stringify(id)} (task ids are UUIDs; see flotilla tasks)`,
      EXIT.notFound,
    );
  return id;
};

/** A whole number option, refused with the option's name when it is not one. */
const wholeNumber =
  (name: string) =>
  (v: string): number => {
    if (!/^\d+$/.test(v))
      throw new CliError(`${name} must be a whole number (got ${JSON.stringify(v)})`, EXIT.usage);
    return Number(v);
  };

const SIGNATURE_TAG = /^sha256-[a-f0-9]{64}\.sig$/;

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
    .configureOutput({ outputError: (str, write) => write(str) })
    // Usage errors exit 2 through `fail` (output.ts), like every other error; subcommands inherit this.
    .exitOverride()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 operation failed, 2 usage, 3 check found problems, 4 not found, 5 conflict or refused,\n6 token refused, 7 server error or unreachable, 78 bad configuration. --json prints exactly one JSON document.',
    );
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
    .addArgument(
      new Command()
        .createArgument('<service>', 'registry | crane | mirrors | redirector | content')
        .choices(SERVICE_NAMES),
    )
    .action(async (service: ServiceName) => {
      await (await loadService(service)).main(process.env);
    });

  const registry = program
    .command('registry')
    .description('registry maintenance on its storage directory (FLOTILLA_REGISTRY_STORAGE_DIR)');
  const storageDir = (cmd: Command) =>
    process.env.FLOTILLA_REGISTRY_STORAGE_DIR ?? join(dataDirOf(flags(cmd)), 'registry');
  registry
    .command('gc')
    .description(
      'purge expired uploads and remove unreferenced blobs older than the grace period, while the registry keeps serving',
    )
    .option('--dry-run', 'report what would be removed, remove nothing')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const [{ runGarbageCollection, loadRegistryConfig }, { createLogger, exitOnConfigError }] =
        await Promise.all([import('@flotilla/registry'), import('@flotilla/kit')]);
      // the registry's own settings: the same grace period and upload TTL as the service
      const config = (() => {
        try {
          return loadRegistryConfig(process.env);
        } catch (err) {
          return exitOnConfigError(err);
        }
      })();
      // Logs go to stderr: stdout carries the result only.
      const logger = createLogger({ name: 'flotilla-gc', destination: process.stderr });
      const report = await runGarbageCollection({
        storageDir: storageDir(cmd),
        dryRun: Boolean(opts.dryRun),
        logger,
        graceMs: config.gcGraceMs,
        uploadTtlMs: config.uploadTtlMs,
      });
      emit(report, flags(cmd), (r) =>
        [
          `${r.dryRun ? 'would remove' : 'removed'} ${r.swept.length} of ${r.blobs} blobs (${formatBytes(r.bytesFreed)})`,
          `${r.marked} referenced, ${r.recent} unreferenced but too recent to remove, ${r.uploading} held by open uploads, ${r.restored} restored during the sweep`,
          `${r.dryRun ? 'would purge' : 'purged'} ${r.uploadsPurged.length} expired uploads (${formatBytes(r.uploadBytesFreed)})`,
        ].join('\n'),
      );
    });
  registry
    .command('fsck')
    .description('re-hash every blob; report corrupt or orphaned files')
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ runFsck }, { createLogger }] = await Promise.all([
        import('@flotilla/registry'),
        import('@flotilla/kit'),
      ]);
      const logger = createLogger({ name: 'flotilla-fsck', destination: process.stderr });
      const report = await runFsck({ storageDir: storageDir(cmd), logger });
      emit(report, flags(cmd), (r) =>
        [
          `${r.clean ? 'clean' : 'PROBLEMS FOUND'}: ${r.blobs} blobs (${formatBytes(r.bytes)}) in ${r.repositories} repositories checked`,
          `${r.corrupt.length} corrupt, ${r.danglingLinks.length} dangling links, ${r.orphanBlobs.length} orphan blobs, ${r.temporaryFiles.length} temporary files, ${r.uploadSessions} upload sessions`,
          ...r.corrupt.map((c) => `corrupt blob ${c.digest} (hashes to ${c.actual})`),
          ...r.danglingLinks.map((d) => `dangling ${d.kind} link in ${d.repository}: ${d.digest}`),
        ].join('\n'),
      );
      if (!report.clean)
        throw new CliError('fsck found corrupt blobs or dangling links', EXIT.checkFailed);
    });

  const storeCmd = program
    .command('store')
    .description('the embedded store (its datafiles under <data-dir>/<service>/db)');
  storeCmd
    .command('repair')
    .description(
      'drop the corrupt lines of a datafile the service refused to load, keeping a copy of them (stop the service first)',
    )
    .argument('<datafile>', 'the datafile named in the error, e.g. var/content/db/tasks.db')
    .action(async (datafile: string, _opts: unknown, cmd: Command) => {
      const { repairDatafile } = await import('@flotilla/store');
      let report;
      try {
        report = await repairDatafile(datafile);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw new CliError(`no datafile at ${datafile}`, 2);
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
    .argument('[repository]', 'a repository name, e.g. fedora/httpd (omit to list them all)')
    .option(
      '--channel <channel>',
      'only this channel (listing: only repositories with content in it)',
    )
    .action(async (repository: string | undefined, opts: { channel?: string }, cmd: Command) => {
      const client = content(cmd);
      if (!repository) {
        const repos = await client.repositories(opts.channel ? { channel: opts.channel } : {});
        emit(repos, flags(cmd), (rs) =>
          table(
            ['repository', 'channels'],
            rs.map((r) => [
              r.name,
              Object.entries(r.channels)
                .map(([c, v]) => `${c}@${v}`)
                .join(' ') || '-',
            ]),
          ),
        );
        return;
      }
      const repo = await client.repository(
        repository,
        opts.channel ? { channel: opts.channel } : {},
      );
      // Signature tags (`sha256-<hex>.sig`) show as the SIGNED BY column of what they sign.
      const shown = (tags: Record<string, string>) =>
        Object.entries(tags).filter(([t]) => !SIGNATURE_TAG.test(t));
      emit(repo, flags(cmd), (r) =>
        table(
          ['channel', 'version', 'tag', 'digest', 'signed by'],
          r.channels.flatMap((c) =>
            shown(c.tags).length === 0
              ? [[c.name, c.version, undefined, undefined, undefined]]
              : shown(c.tags).map(([t, d]) => [
                  c.name,
                  c.version,
                  t,
                  d,
                  c.signedBy?.[d]?.join(',') || undefined,
                ]),
          ),
        ),
      );
    });

  program
    .command('promote')
    .description('promote tags (or a digest) from one channel to another')
    .argument('<repository>', 'the repository, e.g. fedora/httpd')
    .requiredOption('--from <channel>', 'the channel to take content from (required)')
    .requiredOption('--to <channel>', 'the channel to put it in (required)')
    .option(
      '--tags <tags>',
      'comma-separated tags of the source channel (this or --digest is required)',
      csv,
    )
    .option('--digest <digest>', 'a manifest digest instead of tags')
    .option('--target-tags <tags>', 'tag names in the target channel (default: the same)', csv)
    .option('--reason <text>', 'why, recorded in the audit trail (e.g. an update id)')
    .action(
      async (
        repository: string,
        opts: {
          from: string;
          to: string;
          tags?: string[];
          digest?: string;
          targetTags?: string[];
          reason?: string;
        },
        cmd: Command,
      ) => {
        if (!opts.tags && !opts.digest)
          throw new CliError('promote needs --tags or --digest', EXIT.usage);
        const result = await content(cmd).promote({ repository, ...opts });
        emit(
          result,
          flags(cmd),
          (r) =>
            `promoted ${repository} ${opts.from} → ${opts.to}: ${opts.to} is now version ${r.version}`,
        );
      },
    );

  /** `publish` and `sign`: a task over one channel (all or some repositories), followed with --wait. */
  const channelTask = (
    name: 'publish' | 'sign',
    description: string,
    submit: (
      client: ContentClient,
      request: { channel: string; repositories?: string[] },
    ) => Promise<{ id: string; state: string }>,
  ) =>
    program
      .command(name)
      .description(description)
      .option('--channel <channel>', `channel to ${name}`, 'stable')
      .option(
        '--repositories <names>',
        'comma-separated: only these repositories (default: all)',
        csv,
      )
      .option('--wait', 'follow the task until it ends (exit 1 if it fails)')
      .action(
        async (
          opts: { channel: string; repositories?: string[]; wait?: boolean },
          cmd: Command,
        ) => {
          const client = content(cmd);
          const task = await submit(client, {
            channel: opts.channel,
            ...(opts.repositories ? { repositories: opts.repositories } : {}),
          });
          if (!opts.wait) {
            emit(task, flags(cmd), (t) => `${name} task ${t.id} ${t.state}`);
            return;
          }
          await watchTask(client, task.id, flags(cmd));
        },
      );
  channelTask('publish', 'publish a channel into the published tree', (client, request) =>
    client.publish(request),
  );

  const contentCmd = program.command('content').description('content store operations');
  contentCmd
    .command('gc')
    .description(
      'remove channel versions beyond the policy, then manifests and blobs nothing references',
    )
    .option('--dry-run', 'report what would be removed, remove nothing')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const client = content(cmd);
      const queued = await client.gc({ dryRun: Boolean(opts.dryRun) });
      let task = queued;
      // A gc may wait behind a running one (one at a time): follow it to the end.
      for (
        let i = 0;
        i < 10_000 && !['completed', 'failed', 'canceled'].includes(task.state);
        i++
      ) {
        task = await client.task(queued.id, { waitSeconds: 30 });
      }
      if (task.state !== 'completed')
        throw new CliError(
          `gc task ${task.id} ${task.state}${task.error ? `: ${task.error.message}` : ''}`,
        );
      const r = (task.result ?? {}) as {
        versions?: number;
        manifests?: number;
        blobs?: number;
        bytes?: number;
        tmpFiles?: number;
      };
      emit(
        task.result ?? {},
        flags(cmd),
        () =>
          `${opts.dryRun ? 'would remove' : 'removed'} ${r.versions ?? 0} versions, ${r.manifests ?? 0} manifests, ` +
          `${r.blobs ?? 0} blobs (${formatBytes(r.bytes ?? 0)}), ${r.tmpFiles ?? 0} stale downloads`,
      );
    });

  channelTask(
    'sign',
    're-sign what a channel holds with the current signing key (after a rotation)',
    (client, request) => client.sign(request),
  );

  const keys = program
    .command('keys')
    .description('signing keys (sigstore / cosign compatible, ECDSA P-256)');
  keys
    .command('generate')
    .description('write <prefix>.key (encrypted, for Flotilla, cosign and skopeo) and <prefix>.pub')
    .option('--output <prefix>', 'file name prefix', 'flotilla')
    .option(
      '--passphrase-file <file>',
      'read the passphrase from this file (else FLOTILLA_KEY_PASSPHRASE)',
    )
    .action(async (opts: { output: string; passphraseFile?: string }, cmd: Command) => {
      const { generateKeyFiles } = await import('./commands/keys.js');
      const written = await generateKeyFiles(opts);
      emit(written, flags(cmd), (w) => `wrote ${w.privateKey} and ${w.publicKey} (key ${w.id})`);
    });
  keys
    .command('list')
    .description('the keys content signs with (current, retired) and the trusted build keys')
    .action(async (_opts: unknown, cmd: Command) => {
      const view = await content(cmd).keys();
      emit(view, flags(cmd), (v) =>
        table(
          ['id', 'status', 'for'],
          [
            ...v.keys.map((k) => [
              k.id,
              k.status,
              `signs ${v.signingChannels.join(',') || '-'} as ${v.identity}/<repository>`,
            ]),
            ...v.trusted.map((k) => [
              k.id,
              'trusted build key',
              k.repository ?? 'every repository',
            ]),
          ],
        ),
      );
    });

  const tasks = program
    .command('tasks')
    .description('list tasks, newest first (subcommands: watch, show, cancel)')
    .addOption(
      new Option('--state <state>', 'only tasks in this state').choices([
        'waiting',
        'running',
        'completed',
        'failed',
        'canceled',
      ]),
    )
    .addOption(
      new Option('--kind <kind>', 'only tasks of this kind').choices([
        'sync',
        'publish',
        'retention',
        'reconcile',
        'gc',
        'sign',
      ]),
    )
    .action(async (opts: { state?: string; kind?: string }, cmd: Command) => {
      const list = await content(cmd).tasks({
        ...(opts.state ? { state: opts.state } : {}),
        ...(opts.kind ? { kind: opts.kind } : {}),
      });
      emit(list, flags(cmd), (ts) =>
        table(
          ['id', 'kind', 'state', 'repository', 'created'],
          ts.map((t) => [t.id, t.kind, t.state, t.repository ?? t.channel, t.createdAt]),
        ),
      );
    });
  tasks
    .command('watch')
    .description('follow one task with a live progress bar (exit 1 if it fails)')
    .argument('<id>', 'the task id')
    .action(async (id: string, _opts: unknown, cmd: Command) =>
      watchTask(content(cmd), taskId(id), flags(cmd)),
    );
  tasks
    .command('show')
    .description('one task: state, progress, result or error')
    .argument('<id>', 'the task id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const task = await content(cmd).task(taskId(id));
      emit(task, flags(cmd), (t) =>
        facts([
          ['task', t.id],
          ['kind', t.kind],
          ['state', t.state],
          ['subject', t.repository ?? t.channel],
          ['created', t.createdAt],
          ['started', t.startedAt],
          ['finished', t.finishedAt],
          ['attempts', t.attempts],
          [
            'progress',
            t.progress?.total !== undefined
              ? `${t.progress.done ?? 0}/${t.progress.total}`
              : t.progress?.message,
          ],
          ['result', t.result ? JSON.stringify(t.result) : undefined],
          ['error', t.error?.message],
        ]),
      );
    });
  tasks
    .command('cancel')
    .description('cancel a waiting or running task')
    .argument('<id>', 'the task id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const task = await content(cmd).cancelTask(taskId(id));
      emit(task, flags(cmd), (t) => `task ${t.id} ${t.state}`);
    });

  const mirrorsCmd = program
    .command('mirrors')
    .description('the mirror network (subcommands: list, add, crawl)');
  mirrorsCmd
    .command('list')
    .description('every registered mirror and the publication it was verified to hold')
    .action(async (_opts: unknown, cmd: Command) => {
      const list = await mirrors(cmd).list();
      emit(list, flags(cmd), (ms) =>
        table(
          ['id', 'name', 'country', 'enabled', 'publication', 'base url'],
          ms.map((m) => [
            m.id,
            m.name,
            m.country,
            m.enabled ? 'yes' : 'no',
            m.publication ?? undefined,
            m.baseUrl,
          ]),
        ),
      );
    });
  mirrorsCmd
    .command('add')
    .description('register a mirror')
    .argument('<name>', 'a short name: letters, digits, dot, dash, underscore')
    .argument('<baseUrl>', 'where the tree is served, e.g. https://mirror.example.org/containers')
    .requiredOption('--country <code>', 'ISO 3166 alpha-2 country code (required)')
    .option('--netblocks <cidrs>', 'comma-separated CIDRs it serves first', csv)
    .option('--asn <n>', 'autonomous system number', wholeNumber('--asn'))
    .option(
      '--bandwidth <mbps>',
      'Mbit/s: the weight within a tier (default 100)',
      wholeNumber('--bandwidth'),
    )
    .option('--private', 'serve only its own netblocks and ASN')
    .addOption(new Option('--disabled', 'register disabled'))
    .action(
      async (
        name: string,
        baseUrl: string,
        opts: {
          country: string;
          netblocks?: string[];
          asn?: number;
          bandwidth?: number;
          private?: boolean;
          disabled?: boolean;
        },
        cmd: Command,
      ) => {
        const { disabled, ...rest } = opts;
        const mirror = await mirrors(cmd).add({ name, baseUrl, ...rest, enabled: !disabled });
        emit(mirror, flags(cmd), (m) => `mirror ${m.name} registered as ${m.id}`);
      },
    );
  mirrorsCmd
    .command('crawl')
    .description('crawl one mirror now and show what it holds')
    .argument('<id>', 'the mirror id (see mirrors list)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const result = await mirrors(cmd).crawl(id);
      emit(result, flags(cmd), (r) => {
        const crawl = r.crawl as unknown as Record<string, unknown>;
        const m = r.mirror;
        const error = typeof crawl.error === 'string' ? `: ${crawl.error}` : '';
        return `crawled ${m?.name ?? id}: ${String(crawl.status ?? 'done')}${error}; verified publication ${m?.publication ?? '-'}, claimed ${m?.claimedPublication ?? '-'}`;
      });
    });

  return program;
}

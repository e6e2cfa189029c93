import { Command, Option } from 'commander';
import { ContentClient } from '@flotilla/content/client';
import { MirrorsClient } from '@flotilla/mirrors/client';
import { join } from 'node:path';
import { watchTask } from './commands/tasks.js';
import { dataDirOf, resolveEndpoint, type EndpointFlags } from './endpoints.js';
import { CliError, emit, table } from './output.js';
import { loadService, SERVICE_NAMES, type ServiceName } from './services.js';

interface GlobalFlags extends EndpointFlags {
  json?: boolean;
}

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
    .addArgument(new Command().createArgument('<service>', 'registry | crane | mirrors | content').choices(SERVICE_NAMES))
    .action(async (service: ServiceName) => {
      await (await loadService(service)).main(process.env);
    });

  const registry = program.command('registry').description('registry operations');
  const storageDir = (cmd: Command) =>
    process.env.FLOTILLA_REGISTRY_STORAGE_DIR ?? join(dataDirOf(flags(cmd)), 'registry');
  registry
    .command('gc')
    .description('remove unreferenced blobs while the registry keeps serving')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .action(async (opts: { dryRun?: boolean }, cmd: Command) => {
      const [{ runGarbageCollection }, { createLogger }] = await Promise.all([import('@flotilla/registry'), import('@flotilla/kit')]);
      const logger = createLogger({ name: 'flotilla-gc' });
      const report = await runGarbageCollection({ storageDir: storageDir(cmd), dryRun: Boolean(opts.dryRun), logger });
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
      // Signature tags (`sha256-<hex>.sig`) show as the SIGNED BY column of what they sign.
      const shown = (tags: Record<string, string>) => Object.entries(tags).filter(([t]) => !SIGNATURE_TAG.test(t));
      emit(repo, flags(cmd), (r) =>
        table(
          ['channel', 'version', 'tag', 'digest', 'signed by'],
          r.channels.flatMap((c) =>
            shown(c.tags).length === 0
              ? [[c.name, c.version, undefined, undefined, undefined]]
              : shown(c.tags).map(([t, d]) => [c.name, c.version, t, d, c.signedBy?.[d]?.join(',') || undefined]),
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

  program
    .command('sign')
    .description('re-sign what a channel holds with the current signing key (after a rotation)')
    .option('--channel <channel>', 'channel to sign', 'stable')
    .option('--repositories <names>', 'only these repositories', csv)
    .option('--wait', 'follow the task until it ends')
    .action(async (opts: { channel: string; repositories?: string[]; wait?: boolean }, cmd: Command) => {
      const client = content(cmd);
      const task = await client.sign({ channel: opts.channel, ...(opts.repositories ? { repositories: opts.repositories } : {}) });
      if (!opts.wait) {
        emit(task, flags(cmd), (t) => `sign task ${t.id} ${t.state}`);
        return;
      }
      await watchTask(client, task.id, flags(cmd));
    });

  const keys = program.command('keys').description('signing keys (sigstore / cosign compatible, ECDSA P-256)');
  keys
    .command('generate')
    .description('write <prefix>.key (encrypted, for Flotilla, cosign and skopeo) and <prefix>.pub')
    .option('--output <prefix>', 'file name prefix', 'flotilla')
    .option('--passphrase-file <file>', 'read the passphrase from this file (else FLOTILLA_KEY_PASSPHRASE)')
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
            ...v.keys.map((k) => [k.id, k.status, `signs ${v.signingChannels.join(',') || '-'} as ${v.identity}/<repository>`]),
            ...v.trusted.map((k) => [k.id, 'trusted build key', k.repository ?? 'every repository']),
          ],
        ),
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

import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { openBus } from '@flotilla/bus';
import { createLogger, listen, loadOrCreateSecret, runUntilSignal } from '@flotilla/kit';
import { openStore } from '@flotilla/store';
import {
  ALL_IN_ONE_SERVICES,
  loadService,
  type ConfiguredService,
  type ServiceModule,
} from '../services.js';

const SECRETS = [
  { env: 'FLOTILLA_ADMIN_PASSWORD', file: 'admin-password' },
  { env: 'FLOTILLA_API_TOKEN', file: 'api-token' },
  { env: 'FLOTILLA_WEBHOOK_SECRET', file: 'webhook-secret' },
] as const;

// Consumers first (the crane instances, mirrors), then content, then the registry; stopped the
// other way round but for content, which owns the outbox the others' events travel through.
const START_ORDER = ['crane', 'crane-testing', 'mirrors', 'content', 'registry'] as const;
const STOP_ORDER = ['registry', 'crane', 'crane-testing', 'mirrors', 'content'] as const;

/**
 * All-in-one: every service in this process on one embedded store and the in-process bus
 * (or MongoDB / RabbitMQ when MONGODB_URL / AMQP_URL are set), secrets generated on first start.
 */
export async function startAllInOne(baseEnv: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = createLogger({ name: 'flotilla' });
  const dataDir = resolve(baseEnv.FLOTILLA_DATA_DIR ?? './var');
  const env: NodeJS.ProcessEnv = { ...baseEnv, FLOTILLA_DATA_DIR: dataDir };
  // The console (served by content) reaches the mirrors API of this same process.
  env.FLOTILLA_MIRRORS_URL ??= `http://127.0.0.1:${env.FLOTILLA_MIRRORS_PORT ?? '5002'}`;
  const generated: string[] = [];
  for (const secret of SECRETS) {
    const s = await loadOrCreateSecret(dataDir, secret.file, { env: baseEnv[secret.env] });
    env[secret.env] = s.value;
    if (s.created) generated.push(s.path);
  }

  // Signatures name the public endpoint: crane as this process serves it, unless configured.
  env.FLOTILLA_CONTENT_SIGNING_IDENTITY ??= `${env.FLOTILLA_CRANE_HOST ?? '127.0.0.1'}:${env.FLOTILLA_CRANE_PORT ?? '5001'}`;

  // Every service's configuration is checked before anything is opened or started.
  const modules = await Promise.all(
    ALL_IN_ONE_SERVICES.map(async (name) => ({ name, module: await loadService(name) })),
  );
  const configured: Array<{ name: string } & ConfiguredService> = modules.map(
    ({ name, module }) => ({
      name,
      ...module.configure(env),
    }),
  );
  const testingCrane = configureTestingCrane(modules.find((m) => m.name === 'crane')!.module, env);
  if (testingCrane) configured.push({ name: 'crane-testing', ...testingCrane });
  const store = await openStore({
    dataDir,
    mongoUrl: env.MONGODB_URL,
    logger: logger.child({ component: 'store' }),
  });
  const bus = await openBus({ amqpUrl: env.AMQP_URL, logger: logger.child({ component: 'bus' }) });
  const closers: Array<() => Promise<void>> = [];
  const urls: Record<string, string> = {};
  const started: Array<{ stop(): Promise<void> }> = [];
  const instances = new Map<string, { start(): Promise<void>; stop(): Promise<void> }>();
  try {
    for (const { name, listen: how, create } of configured) {
      // Each service adds its own `service` field to what it logs; the listener's lines get it here.
      const svcLogger = logger.child({ service: name });
      const instance = await create({ logger, store, bus });
      const server = await listen(instance.handler, { ...how, logger: svcLogger });
      instances.set(name, instance);
      urls[name] = server.url;
      closers.push(() => server.close());
    }
    // Consumers subscribe before producers re-send what a crash left in their outboxes: the
    // in-process bus has no queue until someone subscribes, so an event dispatched earlier
    // would reach nobody (registry events go to content, content's to crane and mirrors).
    for (const name of inOrder(START_ORDER, instances.keys())) {
      const instance = instances.get(name)!;
      await instance.start();
      started.push(instance);
    }
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  // Stop accepting everywhere first, then stop the services (content last: it owns the outbox
  // that the others' events travel through), then the bus and the store.
  for (const name of inOrder(STOP_ORDER, instances.keys())) {
    const instance = instances.get(name)!;
    closers.push(() => instance.stop());
  }
  closers.push(
    () => bus.close(),
    () => store.close(),
  );

  const keys = await signingKeys(urls.content ?? '', env.FLOTILLA_API_TOKEN ?? '').catch(
    (err: unknown) => {
      logger.warn({ err }, 'failed to read the signing keys for the banner');
      return undefined;
    },
  );
  const trust = keys ? trustBanner(urls.crane ?? '', keys) : '';
  process.stdout.write(
    banner({ dataDir, urls, generated, storeKind: store.kind, busKind: bus.kind, trust }),
  );
  await runUntilSignal({ logger, closers });
}

/** Every name in `names`, those `order` lists first and in its order: none is left out. */
function inOrder(order: readonly string[], names: Iterable<string>): string[] {
  const all = [...names];
  return [...order.filter((n) => all.includes(n)), ...all.filter((n) => !order.includes(n))];
}

/**
 * Testers' crane unless `FLOTILLA_CRANE_TESTING_PORT` is `off`: the port after the suite's five
 * (5004 is the redirector's in suite mode).
 */
export const TESTING_CRANE_PORT = '5005';

/**
 * A second crane on `FLOTILLA_CRANE_TESTING_PORT` (default 5005) serving the testing channel's
 * view, so testers pull what was published to testing while the crane port serves stable only.
 * Its own instance id gives it its own reload queue.
 */
function configureTestingCrane(
  crane: ServiceModule,
  env: NodeJS.ProcessEnv,
): ConfiguredService | undefined {
  const port = env.FLOTILLA_CRANE_TESTING_PORT ?? TESTING_CRANE_PORT;
  if (port === 'off') return undefined;
  const instance =
    env.FLOTILLA_CRANE_INSTANCE_ID ??
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 90);
  return crane.configure({
    ...env,
    FLOTILLA_CRANE_CHANNEL: 'testing',
    FLOTILLA_CRANE_PORT: port,
    FLOTILLA_CRANE_INSTANCE_ID: `${instance}-testing`,
  });
}

function banner(o: {
  dataDir: string;
  urls: Record<string, string>;
  generated: string[];
  storeKind: string;
  busKind: string;
  /** The signing keys and client configuration (empty when they could not be read). */
  trust: string;
}): string {
  const fromCwd = relative(process.cwd(), o.dataDir) || '.';
  const rel = fromCwd.startsWith('..') ? o.dataDir : fromCwd;
  const secrets = join(rel, 'secrets');
  const registryHost = (o.urls.registry ?? '').replace(/^https?:\/\//, '');
  const craneHost = (o.urls.crane ?? '').replace(/^https?:\/\//, '');
  const lines = [
    '',
    `Flotilla is running (all-in-one: ${o.storeKind} store, ${o.busKind} bus, data in ${rel})`,
    '',
    `  registry  ${o.urls.registry}   push here (user admin)`,
    `  crane     ${o.urls.crane}   pull here (public, read-only: the stable channel)`,
    ...(o.urls['crane-testing']
      ? [`  testing   ${o.urls['crane-testing']}   testers pull the testing channel here`]
      : []),
    `  mirrors   ${o.urls.mirrors}   redirector, mirror list, master tree at /master/`,
    `  content   ${o.urls.content}   sync, promote, publish API`,
    `  console   ${o.urls.content}/console/   web console (log in with the api-token below)`,
    '',
    `Secrets: ${secrets}/{admin-password,api-token,webhook-secret}${o.generated.length ? ' (generated now, mode 0600)' : ''}`,
    `Signing key: ${secrets}/signing-key (encrypted; passphrase in signing-key-passphrase) unless FLOTILLA_CONTENT_SIGNING_KEY is set`,
    '',
    'Try it:',
    '  ctr=$(buildah from scratch) && echo hello > hello.txt && buildah copy $ctr hello.txt /hello.txt \\',
    '      && buildah commit $ctr fedora/httpd:39',
    `  buildah push --tls-verify=false --creds admin:$(cat ${secrets}/admin-password) \\`,
    `      fedora/httpd:39 docker://${registryHost}/fedora/httpd:39            # or podman push / skopeo copy`,
    '  npx flotilla repos                                                       # synced into candidate',
    '  npx flotilla promote fedora/httpd --tags 39 --from candidate --to testing',
    '  npx flotilla promote fedora/httpd --tags 39 --from testing --to stable',
    '  npx flotilla publish --channel stable --wait',
    `  podman pull --tls-verify=false ${craneHost}/fedora/httpd:39`,
    '',
    ...(o.trust ? [o.trust] : []),
    'Ctrl-C stops everything cleanly.',
    '',
  ];
  return lines.join('\n');
}

interface KeysAnswer {
  current: string;
  identity: string;
  signingChannels: string[];
  keys: { id: string; status: string; publicKey: string }[];
}

async function signingKeys(contentUrl: string, token: string): Promise<KeysAnswer> {
  const res = await fetch(`${contentUrl}/api/v1/keys`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!res.ok) throw new Error(`GET /api/v1/keys answered ${res.status}`);
  return (await res.json()) as KeysAnswer;
}

/** The public keys and what a client needs to verify pulls: a policy.json and a registries.d file. */
function trustBanner(craneUrl: string, keys: KeysAnswer): string {
  const craneHost = craneUrl.replace(/^https?:\/\//, '');
  const current = keys.keys.find((k) => k.id === keys.current);
  const policy = {
    default: [{ type: 'insecureAcceptAnything' }],
    transports: {
      docker: {
        [keys.identity]: [
          {
            type: 'sigstoreSigned',
            keyPath: `/etc/pki/containers/flotilla-${keys.current}.pub`,
            signedIdentity: { type: 'matchRepository' },
          },
        ],
      },
    },
  };
  const lines = [
    `Signing: promotion into ${keys.signingChannels.join(', ') || '(no channel)'} signs as ${keys.identity}/<repository>`,
    `  public keys: ${craneUrl}/keys  (current: ${craneUrl}/keys/${keys.current}.pub, after the first publish)`,
    ...keys.keys.map((k) => `  ${k.id} ${k.status}`),
    '',
    ...(current
      ? current.publicKey
          .trimEnd()
          .split('\n')
          .map((l) => `  ${l}`)
      : []),
    '',
    `Verify pulls: save the key as /etc/pki/containers/flotilla-${keys.current}.pub, then`,
    '  /etc/containers/policy.json:',
    ...JSON.stringify(policy, null, 2)
      .split('\n')
      .map((l) => `    ${l}`),
    `  /etc/containers/registries.d/flotilla.yaml:`,
    '    docker:',
    `      ${craneHost}:`,
    '        use-sigstore-attachments: true',
    '',
  ];
  return lines.join('\n');
}

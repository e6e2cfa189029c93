import {
  createAccessLog,
  createClientIpResolver,
  createMetrics,
  createServiceApp,
  createStorageSpace,
  type ServiceInstance,
  type ServiceMetrics,
} from '@flotilla/kit';
import { createOutbox, type Bus, type Outbox } from '@flotilla/bus';
import { createEmbeddedStore, createLeases, runExclusive, type Store } from '@flotilla/store';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { loadAuthFiles } from './auth/auth-files.js';
import { createAuthenticator } from './auth/authenticator.js';
import type { RegistryConfig } from './config.js';
import { createManifestCache, withManifestCache } from './domain/cached-manifests.js';
import { createRegistry, type ManifestDecorator, type Registry } from './domain/registry.js';
import { createDigester } from './domain/digests.js';
import { createManifestJournal, type ManifestJournal } from './events/manifest-journal.js';
import { withManifestEvents } from './events/notifying-manifests.js';
import { createV2Handler } from './http/router.js';
import { createFilesystemDriver } from './storage/driver.js';
import { outboxDirectory } from './storage/paths.js';
import { removeTemporaryFiles } from './ops/fsck.js';

export interface RegistryServiceDeps {
  config: RegistryConfig;
  logger: Logger;
  /** Events go out through this bus; without one, no events are emitted. */
  bus?: Bus;
  /**
   * A shared store (MongoDB; `MONGODB_URL`) for the outbox and the leases: this process is then
   * one of several replicas over one storage directory. Default: an embedded store in
   * `<storageDir>/outbox`, and this process the storage's only user.
   */
  store?: Store;
  /**
   * Replicas only: how old a journal entry or an interrupted write must be before this replica
   * settles or removes it (younger ones may be another replica's write in progress). Default 60 s.
   */
  settleAgeMs?: number;
  metrics?: ServiceMetrics;
}

export interface RegistryServiceInstance extends ServiceInstance {
  /** The registry logic (for tests and the CLI). */
  readonly registry: Registry;
  /** Dispatches pending events now (tests). */
  flushEvents(): Promise<void>;
}

const PURGE_INTERVAL_MS = 3_600_000;
const JOURNAL_RETRY_MS = 5_000;
const SETTLE_AGE_MS = 60_000;
/** Replicas: how often one of them settles what another left in the journal (a crash, a failed enqueue). */
const JOURNAL_REPLAY_INTERVAL_MS = 30_000;
const LEASE_MS = 60_000;

/** The composition of storage, logic, auth, events and HTTP; `main.ts` adds config and listen. */
export async function createRegistryService(
  deps: RegistryServiceDeps,
): Promise<RegistryServiceInstance> {
  const { config } = deps;
  const logger = deps.logger.child({ service: 'registry' });
  const metrics = deps.metrics ?? createMetrics('registry');

  // Users and rules come from files that are re-read when they change; the authenticator
  // forgets what it verified whenever they do (only ever after both exist: the reload is timed).
  const authFiles = await loadAuthFiles({
    htpasswdFile: config.htpasswdFile,
    accessFile: config.accessFile,
    adminPassword: config.adminPassword,
    anonymousPull: config.anonymousPull,
    logger: logger.child({ component: 'auth' }),
    reloadIntervalMs: config.authReloadIntervalMs,
    onChange: () => authenticator.forget(),
  });
  const authenticator = createAuthenticator({ users: authFiles.users });
  const policy = authFiles.policy;

  // With a shared store this is one replica of several over one storage directory: what a crash
  // left is cleaned up only once it is old enough not to be another replica's write in progress,
  // and the periodic jobs run on one replica at a time (leases).
  const shared = deps.store !== undefined;
  const settleAgeMs = deps.settleAgeMs ?? SETTLE_AGE_MS;
  const leases = deps.store ? createLeases(deps.store) : undefined;
  const leaseHolder = randomUUID();
  /** Runs `job` here, or on one replica at a time when replicas share the store. */
  const exclusively = async (name: string, job: () => Promise<unknown>): Promise<void> => {
    if (leases) await runExclusive(leases, name, leaseHolder, LEASE_MS, job);
    else await job();
  };
  const driver = createFilesystemDriver(config.storageDir);
  await removeTemporaryFiles(
    driver,
    logger,
    shared ? new Date(Date.now() - settleAgeMs) : undefined,
  );
  // A replica cannot see another's writes to invalidate its cache: replicas read manifests and tags from storage.
  const cache = createManifestCache(shared ? { maxEntries: 0, maxBytes: 0 } : {});
  const decorators: ManifestDecorator[] = [withManifestCache(cache)];
  let outbox: Outbox | undefined;
  let ownStore: Store | undefined;
  let journal: ManifestJournal | undefined;
  let replayTimer: NodeJS.Timeout | undefined;
  // events a failed enqueue left in the journal are tried again shortly (and at every start)
  const replaySoon = (): void => {
    if (replayTimer) return;
    replayTimer = setTimeout(() => {
      replayTimer = undefined;
      replayJournal().catch((err: unknown) => {
        logger.warn({ err }, 'failed to replay the event journal');
        replaySoon();
      });
    }, JOURNAL_RETRY_MS);
    replayTimer.unref();
  };
  if (deps.bus) {
    const store =
      deps.store ??
      (ownStore = createEmbeddedStore({ dir: outboxDirectory(config.storageDir), logger }));
    // in a shared store the registry's outbox has its own collection (and dispatcher lease), apart from content's
    outbox = createOutbox({
      store,
      bus: deps.bus,
      logger,
      ...(shared ? { collection: 'registry_outbox' } : {}),
    });
    journal = createManifestJournal({ driver, logger });
    decorators.push(withManifestEvents(outbox, journal, logger, replaySoon));
  }
  const digester = createDigester();
  const space = createStorageSpace({
    directory: config.storageDir,
    reserveBytes: config.minFreeBytes ?? 0,
    volume: 'registry',
    metrics,
  });
  const registry = createRegistry({
    driver,
    logger,
    uploadTtlMs: config.uploadTtlMs,
    decorateManifests: decorators,
    digester,
    ensureWritable: () => space.ensureWritable(),
  });
  const v2 = createV2Handler(
    {
      registry,
      cache,
      authenticator,
      policy,
      deleteEnabled: config.deleteEnabled,
      logger: logger.child({ component: 'http' }),
    },
    metrics,
  );
  const app = createServiceApp(
    {
      name: 'registry',
      logger,
      metrics,
      readiness: {
        // reads need the directory; below the reserve the check warns "storage low" (writes get 507)
        storage: async () => {
          await driver.list('');
          return space.readinessCheck();
        },
        ...(deps.bus ? { bus: () => deps.bus?.ping() } : {}),
      },
    },
    () => undefined,
  );

  /** Settles what a crash (or a failed enqueue) left in the event journal. */
  async function replayJournal(): Promise<void> {
    if (!journal || !outbox) return;
    const [sink, entries] = [outbox, journal];
    let recovered = 0;
    await exclusively('registry:journal', async () => {
      recovered = await entries.replay(
        (name) => registry.repository(name).manifests,
        (event) => sink.enqueue(event),
        shared ? { minAgeMs: settleAgeMs } : {},
      );
    });
    if (recovered > 0)
      logger.info({ events: recovered }, 'enqueued events recovered from the journal');
  }

  const clientIp = createClientIpResolver(config.trustedProxies ?? []);
  const accessLog = createAccessLog({
    logger: logger.child({ component: 'access' }),
    level: config.accessLog ?? 'info',
    clientAddress: (req) =>
      clientIp.resolve(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for']),
  });

  let purgeTimer: NodeJS.Timeout | undefined;
  let journalTimer: NodeJS.Timeout | undefined;
  const purge = (): void => {
    exclusively('registry:uploads', () => registry.uploads.purgeExpired()).catch((err: unknown) =>
      logger.warn({ err }, 'failed to purge upload sessions'),
    );
  };

  return {
    name: 'registry',
    registry,
    handler(req, res) {
      // Probes and scrapes stay off express too (see createOperationalEndpoints).
      // The registry API gets the access log; other paths log through the service app.
      if (accessLog && req.url?.startsWith('/v2')) accessLog(req, res);
      if (!v2(req, res) && !app.operational(req, res)) app(req, res);
    },
    async start() {
      await replayJournal();
      await outbox?.start();
      if (shared && journal) {
        journalTimer = setInterval(() => {
          replayJournal().catch((err: unknown) =>
            logger.warn({ err }, 'failed to replay the event journal'),
          );
        }, JOURNAL_REPLAY_INTERVAL_MS);
        journalTimer.unref();
      }
      purge();
      purgeTimer = setInterval(
        purge,
        Math.min(PURGE_INTERVAL_MS, Math.max(config.uploadTtlMs, 1000)),
      );
      purgeTimer.unref();
    },
    async stop() {
      if (purgeTimer) clearInterval(purgeTimer);
      if (journalTimer) clearInterval(journalTimer);
      if (replayTimer) clearTimeout(replayTimer);
      authFiles.stop();
      await outbox?.stop();
      await ownStore?.close();
      await digester.close();
    },
    async ready() {
      await driver.list('').catch(() => undefined);
    },
    async flushEvents() {
      await outbox?.flush();
    },
  };
}

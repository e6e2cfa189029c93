import { createMetrics, createServiceApp, type ServiceInstance, type ServiceMetrics } from '@flotilla/kit';
import { createOutbox, type Bus, type Outbox } from '@flotilla/bus';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { accessFileSchema, createAccessPolicy, type AccessFile } from './auth/access.js';
import { createAuthenticator } from './auth/authenticator.js';
import { createUserDirectory, parseHtpasswd } from './auth/htpasswd.js';
import type { RegistryConfig } from './config.js';
import { createManifestCache, withManifestCache } from './domain/cached-manifests.js';
import { createRegistry, type ManifestDecorator, type Registry } from './domain/registry.js';
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
  /** The outbox's store; default: an embedded store in `<storageDir>/outbox`. */
  store?: Store;
  metrics?: ServiceMetrics;
}

export interface RegistryServiceInstance extends ServiceInstance {
  /** The registry logic (for tests and the CLI). */
  readonly registry: Registry;
  /** Dispatches pending events now (tests). */
  flushEvents(): Promise<void>;
}

const PURGE_INTERVAL_MS = 3_600_000;

/** The composition of storage, logic, auth, events and HTTP; `main.ts` adds config and listen. */
export async function createRegistryService(deps: RegistryServiceDeps): Promise<RegistryServiceInstance> {
  const { config } = deps;
  const logger = deps.logger.child({ service: 'registry' });
  const metrics = deps.metrics ?? createMetrics('registry');

  const htpasswd = config.htpasswdFile ? parseHtpasswd(await readFile(config.htpasswdFile, 'utf8')) : undefined;
  let accessFile: AccessFile | undefined;
  if (config.accessFile) accessFile = accessFileSchema.parse(JSON.parse(await readFile(config.accessFile, 'utf8')));
  const users = createUserDirectory({
    ...(htpasswd ? { htpasswd } : {}),
    ...(config.adminPassword ? { adminPassword: config.adminPassword } : {}),
  });
  const authenticator = createAuthenticator({ users });
  const policy = createAccessPolicy({ anonymousPull: config.anonymousPull, ...(accessFile ? { accessFile } : {}) });

  const driver = createFilesystemDriver(config.storageDir);
  await removeTemporaryFiles(driver, logger);
  const cache = createManifestCache();
  const decorators: ManifestDecorator[] = [withManifestCache(cache)];
  let outbox: Outbox | undefined;
  let ownStore: Store | undefined;
  if (deps.bus) {
    const store = deps.store ?? (ownStore = createEmbeddedStore({ dir: outboxDirectory(config.storageDir), logger }));
    outbox = createOutbox({ store, bus: deps.bus, logger });
    decorators.push(withManifestEvents(outbox, logger));
  }
  const registry = createRegistry({ driver, logger, uploadTtlMs: config.uploadTtlMs, decorateManifests: decorators });
  const v2 = createV2Handler(
    { registry, cache, authenticator, policy, deleteEnabled: config.deleteEnabled, logger: logger.child({ component: 'http' }) },
    metrics,
  );
  const app = createServiceApp(
    {
      name: 'registry',
      logger,
      metrics,
      readiness: {
        storage: async () => {
          await driver.list('');
        },
        ...(deps.bus ? { bus: () => deps.bus?.ping() } : {}),
      },
    },
    () => undefined,
  );

  let purgeTimer: NodeJS.Timeout | undefined;
  const purge = (): void => {
    registry.uploads.purgeExpired().catch((err: unknown) => logger.warn({ err }, 'failed to purge upload sessions'));
  };

  return {
    name: 'registry',
    registry,
    handler(req, res) {
      // Probes and scrapes stay off express too (see createOperationalEndpoints).
      if (!v2(req, res) && !app.operational(req, res)) app(req, res);
    },
    async start() {
      await outbox?.start();
      purge();
      purgeTimer = setInterval(purge, Math.min(PURGE_INTERVAL_MS, Math.max(config.uploadTtlMs, 1000)));
      purgeTimer.unref();
    },
    async stop() {
      if (purgeTimer) clearInterval(purgeTimer);
      await outbox?.stop();
      await ownStore?.close();
    },
    async ready() {
      await driver.list('').catch(() => undefined);
    },
    async flushEvents() {
      await outbox?.flush();
    },
  };
}

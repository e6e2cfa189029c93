import {
  createLogger,
  exitOnConfigError,
  isEntryPoint,
  listen,
  loadOrCreateSecret,
  runUntilSignal,
  type Env,
} from '@flotilla/kit';
import { openBus } from '@flotilla/bus';
import { openStore } from '@flotilla/store';
import { loadRegistryConfig } from './config.js';
import { createRegistryService } from './service.js';

/** `flotilla serve registry`: config, logger, bus, service, listen, run until a signal. */
export async function main(env: Env = process.env): Promise<void> {
  let config;
  try {
    config = loadRegistryConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger({
    name: 'registry',
    ...(config.logLevel ? { level: config.logLevel } : {}),
  });
  const admin = await loadOrCreateSecret(config.dataDir, 'admin-password', {
    env: config.adminPassword,
  });
  if (admin.created) logger.info({ path: admin.path }, 'generated admin password');
  const bus = await openBus({ ...(config.amqpUrl ? { amqpUrl: config.amqpUrl } : {}), logger });
  // MONGODB_URL makes this one replica of several over a shared storage directory (shared outbox
  // and leases); without it the outbox is embedded under the storage and the process its only user.
  const store = config.mongoUrl
    ? openStore({
        dataDir: config.dataDir,
        mongoUrl: config.mongoUrl,
        logger: logger.child({ component: 'store' }),
      })
    : undefined;
  const service = await createRegistryService({
    config: { ...config, adminPassword: admin.value },
    logger,
    bus,
    ...(store ? { store } : {}),
  });
  await service.start();
  const server = await listen(service.handler, { host: config.host, port: config.port, logger });
  logger.info({ url: server.url, storage: config.storageDir }, 'registry listening');
  runUntilSignal({
    logger,
    closers: [
      () => server.close(),
      () => service.stop(),
      () => bus.close(),
      async () => store?.close(),
    ],
  });
}

if (isEntryPoint(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `registry failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}

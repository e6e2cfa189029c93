import { openBus } from '@flotilla/bus';
import {
  createLogger,
  exitOnConfigError,
  isEntryPoint,
  listen,
  loadOrCreateSecret,
  runUntilSignal,
} from '@flotilla/kit';
import { openStore } from '@flotilla/store';
import { loadMirrorsConfig } from './config.js';
import { createMirrorsService } from './service.js';

/** Suite mode: one process for the mirrors service (`flotilla serve mirrors`). */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadMirrorsConfig(env);
  } catch (error) {
    exitOnConfigError(error);
  }
  const logger = createLogger({ name: 'mirrors' });
  if (config.apiToken === undefined) {
    const secret = await loadOrCreateSecret(config.dataDir, 'api-token');
    config = { ...config, apiToken: secret.value };
    if (secret.created) logger.info({ path: secret.path }, 'api token generated');
  }
  const store = openStore({
    dataDir: config.dataDir,
    mongoUrl: config.mongoUrl,
    logger: logger.child({ component: 'store' }),
  });
  const bus = await openBus({
    amqpUrl: config.amqpUrl,
    logger: logger.child({ component: 'bus' }),
  });
  const service = await createMirrorsService({ config, logger, store, bus });
  const server = await listen(service.handler, { host: config.host, port: config.port, logger });
  runUntilSignal({
    logger,
    closers: [() => server.close(), () => service.stop(), () => bus.close(), () => store.close()],
  });
  await service.start();
  logger.info({ url: server.url, snapshot: config.snapshotFile }, 'mirrors listening');
}

if (isEntryPoint(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`mirrors: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

// First, before anything can tick: see packages/kit/src/tick-shape.ts.
import '@flotilla/kit/tick-shape';
// Second: see packages/kit/src/heap-growth.ts.
import '@flotilla/kit/heap-growth';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openBus } from '@flotilla/bus';
import { createLogger, exitOnConfigError, listen, loadOrCreateSecret, runUntilSignal } from '@flotilla/kit';
import { openStore } from '@flotilla/store';
import { loadMirrorsConfig } from './config.js';
import { startRedirectThread } from './redirect-thread.js';
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
  const store = openStore({ dataDir: config.dataDir, mongoUrl: config.mongoUrl, logger: logger.child({ component: 'store' }) });
  const bus = await openBus({ amqpUrl: config.amqpUrl, logger: logger.child({ component: 'bus' }) });
  const service = await createMirrorsService({ config, logger, store, bus });
  // The service's own listener, on loopback only: the redirect thread owns the public port and
  // passes it everything that is not a redirect (redirect-thread.ts explains why).
  const internal = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  let threadFailed = false;
  const front = await startRedirectThread({
    config,
    service,
    upstream: internal.url,
    logger,
    onFailure(error) {
      logger.fatal({ err: error }, 'the redirect thread stopped; shutting down');
      threadFailed = true;
      // Events arrive only after this function has returned, so `handle` is set by then.
      void handle.shutdown('redirect thread failed');
    },
  });
  const handle = runUntilSignal({
    logger,
    exit: (code) => process.exit(threadFailed ? 1 : code),
    closers: [() => front.close(), () => service.stop(), () => internal.close(), () => bus.close(), () => store.close()],
  });
  await service.start();
  front.follow(service);
  logger.info({ url: front.url }, 'mirrors listening');
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((error: unknown) => {
    process.stderr.write(`mirrors: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

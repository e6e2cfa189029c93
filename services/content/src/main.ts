import { openBus } from '@flotilla/bus';
import {
  createLogger,
  exitOnConfigError,
  isEntryPoint,
  listen,
  runUntilSignal,
  type RunningServer,
} from '@flotilla/kit';
import { openStore } from '@flotilla/store';
import { loadContentConfig, type ContentConfig } from './config.js';
import { createContentService, type ContentService } from './service.js';

/** Suite mode (`flotilla serve content`): config, logger, store, bus, service, listen, signals. */
export async function main(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ service: ContentService; server: RunningServer }> {
  let config: ContentConfig;
  try {
    config = loadContentConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger({ name: 'content' });
  const store = openStore({ dataDir: config.dataDir, mongoUrl: config.mongoUrl, logger });
  const bus = await openBus({ amqpUrl: config.amqpUrl, logger });
  const service = await createContentService({ config, logger, store, bus });
  const server = await listen(service.handler, { host: config.host, port: config.port, logger });
  await service.start();
  logger.info({ url: server.url, publishDir: config.publishDir }, 'content listening');
  runUntilSignal({
    logger,
    closers: [() => server.close(), () => service.stop(), () => bus.close(), () => store.close()],
  });
  return { service, server };
}

if (isEntryPoint(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `content: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  });
}

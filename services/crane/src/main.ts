import { openBus } from '@flotilla/bus';
import {
  createLogger,
  exitOnConfigError,
  isEntryPoint,
  listen,
  runUntilSignal,
  type Env,
} from '@flotilla/kit';
import { loadCraneConfig, type CraneConfig } from './config.js';
import { createCraneService } from './service.js';

/**
 * The composition root for `flotilla serve crane`: config, logger, the bus (only with
 * AMQP_URL: a local bus in a process of its own would never hear an event), the service,
 * the listener, and a clean stop on SIGINT/SIGTERM. No store: crane has no database
 * credentials.
 */
export async function main(env: Env = process.env): Promise<void> {
  let config: CraneConfig;
  try {
    config = loadCraneConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger({ name: 'crane' });
  const bus = config.amqpUrl ? await openBus({ amqpUrl: config.amqpUrl, logger }) : undefined;
  const service = await createCraneService({ config, logger, ...(bus ? { bus } : {}) });
  await service.start();
  const server = await listen(service.handler, {
    host: config.host,
    port: config.port,
    logger,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    maxHeaderSize: config.maxHeaderSize,
  });
  logger.info({ url: server.url, publication: service.catalog().publication }, 'crane listening');
  runUntilSignal({
    logger,
    closers: [() => server.close(), () => service.stop(), ...(bus ? [() => bus.close()] : [])],
  });
}

if (isEntryPoint(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `crane failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}

import {
  createLogger,
  exitOnConfigError,
  isEntryPoint,
  listen,
  runUntilSignal,
  type Env,
} from '@flotilla/kit';
import { loadRedirectorConfig, type RedirectorConfig } from './config.js';
import { createRedirectorService } from './service.js';

/** `flotilla serve redirector`: config, logger, service, listen, run until a signal. No store, no bus. */
export async function main(env: Env = process.env): Promise<void> {
  let config: RedirectorConfig;
  try {
    config = loadRedirectorConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger({ name: 'redirector' });
  const service = await createRedirectorService({ config, logger });
  await service.start();
  const server = await listen(service.handler, { host: config.host, port: config.port, logger });
  logger.info({ url: server.url, snapshot: config.snapshotFile }, 'redirector listening');
  runUntilSignal({ logger, closers: [() => server.close(), () => service.stop()] });
}

if (isEntryPoint(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `redirector failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}

import type { DestinationStream } from 'pino';
import {
  createLogger,
  listen,
  type Logger,
  type RequestListener,
  type RunningServer,
} from '../src/index.js';

/** A logger whose JSON lines land in `lines` (parsed). */
export function capturingLogger(level = 'debug'): {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
} {
  const lines: Array<Record<string, unknown>> = [];
  const destination: DestinationStream = {
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  return { logger: createLogger({ level, destination }), lines };
}

const running: RunningServer[] = [];

/** Serves `handler` on 127.0.0.1:0; `closeAll()` in afterEach. */
export async function serve(
  handler: RequestListener,
  logger: Logger,
  drainMs = 2000,
): Promise<RunningServer> {
  const server = await listen(handler, { host: '127.0.0.1', port: 0, logger, drainMs });
  running.push(server);
  return server;
}

export async function closeAll(): Promise<void> {
  await Promise.all(running.splice(0).map((s) => s.close()));
}

/**
 * Graceful shutdown: on SIGINT/SIGTERM run the closers in order (typically: stop
 * listening and drain, stop the service, close the bus, close the store) within one
 * deadline, then exit 0 — or 1 when the deadline passes or a closer fails. A second
 * signal while shutting down exits at once with 128 + signal number (130 for Ctrl-C).
 */
import { constants } from 'node:os';
import type { Logger } from 'pino';

export type Closer = () => Promise<void> | void;

export interface RunUntilSignalOptions {
  logger: Logger;
  closers: readonly Closer[];
  /** Total time allowed for all closers (default 10 s). */
  deadlineMs?: number;
  /** Default SIGINT and SIGTERM. */
  signals?: readonly NodeJS.Signals[];
  /** How to leave (default `process.exit`); tests inject a recorder. */
  exit?: (code: number) => void;
}

export interface SignalHandle {
  /** Runs the shutdown as if a signal arrived; resolves with the exit code it used. */
  shutdown(reason?: string): Promise<number>;
  /** Removes the signal listeners (for callers that stop some other way). */
  dispose(): void;
}

export const DEFAULT_SHUTDOWN_DEADLINE_MS = 10_000;

export function runUntilSignal(options: RunUntilSignalOptions): SignalHandle {
  const { logger } = options;
  const deadlineMs = options.deadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS;
  const signals = options.signals ?? (['SIGINT', 'SIGTERM'] as const);
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let running: Promise<number> | undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    if (running) {
      const code = 128 + (constants.signals[signal] ?? 2);
      logger.warn({ signal, code }, 'second signal, exiting now');
      exit(code);
      return;
    }
    void shutdown(signal);
  };

  const dispose = () => {
    for (const signal of signals) process.off(signal, onSignal);
  };

  const shutdown = (reason = 'requested'): Promise<number> => {
    running ??= (async () => {
      logger.info({ reason, closers: options.closers.length, deadlineMs }, 'shutting down');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), deadlineMs);
      });
      const closeAll = (async () => {
        let failed = false;
        for (const [index, closer] of options.closers.entries()) {
          try {
            await closer();
          } catch (err) {
            failed = true;
            logger.error({ err, closer: closer.name || index }, 'failed to close');
          }
        }
        return failed ? 'failed' : 'done';
      })();
      const outcome = await Promise.race([closeAll, timedOut]);
      clearTimeout(timer);
      let code = 0;
      if (outcome === 'timeout') {
        code = 1;
        logger.error({ deadlineMs }, 'shutdown deadline passed');
      } else if (outcome === 'failed') {
        code = 1;
      } else {
        logger.info('shutdown complete');
      }
      logger.flush?.();
      exit(code);
      return code;
    })();
    return running;
  };

  for (const signal of signals) process.on(signal, onSignal);
  return { shutdown, dispose };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/** How loud the per-request access log of the registry and crane is. */
export type AccessLogLevel = 'info' | 'debug' | 'off';
export const ACCESS_LOG_LEVELS = ['info', 'debug', 'off'] as const;

export interface AccessLogOptions {
  logger: Logger;
  level: AccessLogLevel;
  /** The client's address after trusted proxies (default: the socket's peer). */
  clientAddress?: (req: IncomingMessage) => string;
}

/**
 * One line per request, written when the response ends: method, path, status, bytes sent
 * (on the connection while the request lasted, headers included), duration and client
 * address. Call it when the request arrives. Returns `undefined` when the level is off or
 * below the logger's, so the hot path pays nothing then.
 */
export function createAccessLog(
  options: AccessLogOptions,
): ((req: IncomingMessage, res: ServerResponse) => void) | undefined {
  const { logger, level } = options;
  if (level === 'off' || !logger.isLevelEnabled(level)) return undefined;
  const clientOf =
    options.clientAddress ?? ((req: IncomingMessage) => req.socket.remoteAddress ?? '');
  return (req, res) => {
    const started = performance.now();
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    res.once('close', () => {
      logger[level](
        {
          method: req.method,
          path: req.url,
          status: res.statusCode,
          bytes: socket.bytesWritten - bytesBefore,
          ms: Math.round((performance.now() - started) * 10) / 10,
          client: clientOf(req),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
  };
}

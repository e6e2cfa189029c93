/**
 * Listening and draining. `handler` is a plain `node:http` listener (an express app or a
 * lean dispatcher in front of one).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** What every service's `createXService(deps)` returns. */
export interface ServiceInstance {
  readonly name: string;
  /** A plain `node:http` listener: lean hot paths first, then the express app. */
  readonly handler: RequestListener;
  /** Starts background work (consumers, pollers, outbox). */
  start(): Promise<void>;
  /** Stops background work and releases what the service opened itself. */
  stop(): Promise<void>;
  /** Resolves once the service can answer (e.g. first metadata load done). */
  ready(): Promise<void>;
}

export interface ListenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port; the returned `url` and `port` carry the real one. */
  port: number;
  logger: Logger;
  /** Time to receive a request's headers (default 20 s). */
  headersTimeoutMs?: number;
  /** Time for a whole request; 0 (default) = none, so a 2 GiB upload is never cut. */
  requestTimeoutMs?: number;
  /** Idle keep-alive connections live this long (default 65 s, above common balancer idle timeouts). */
  keepAliveTimeoutMs?: number;
  /** Default 16 KiB. */
  maxHeaderSize?: number;
  /** `close()` waits this long for in-flight requests before cutting connections (default 8 s). */
  drainMs?: number;
}

export interface RunningServer {
  readonly server: Server;
  /** `http://host:port` with the bound port (`0.0.0.0`/`::` shown as loopback). */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish within `drainMs`, then cuts the rest. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
export const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
export const DEFAULT_DRAIN_MS = 8_000;

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * `Expect: 100-continue`: node answers `100 Continue` before any handler runs unless the server
 * listens for `checkContinue`, and then a client sends a whole body (a 2 GiB layer) that the
 * handler refuses unread (an unknown upload session, a failed login). Here the `100` goes out
 * when the handler starts reading the body (a `data` or `readable` listener, `pipe`, `resume`),
 * and never once the final response has begun. Node closes the connection after a response to
 * such a request whose body was not read, so an unsent body cannot be mistaken for a request.
 */
function continueWhenRead(req: IncomingMessage, res: ServerResponse): void {
  let sent = false;
  const send = (): void => {
    if (sent) return;
    sent = true;
    req.off('newListener', onListener);
    req.off('resume', send);
    if (!res.headersSent && !res.writableEnded) res.writeContinue();
  };
  const onListener = (event: string | symbol): void => {
    if (event === 'data' || event === 'readable') send();
  };
  req.on('newListener', onListener);
  req.once('resume', send);
}

export async function listen(
  handler: RequestListener,
  options: ListenOptions,
): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const log = options.logger;
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeout = options.requestTimeoutMs ?? 0;
  const keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  let closing = false;

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Responses finishing during a drain close their connection instead of idling.
    if (closing) res.setHeader('Connection', 'close');
    handler(req, res);
  };
  const server = createServer(
    {
      maxHeaderSize: options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE,
      headersTimeout,
      requestTimeout,
      keepAliveTimeout,
    },
    onRequest,
  );
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    continueWhenRead(req, res);
    onRequest(req, res);
  });
  server.headersTimeout = headersTimeout;
  server.requestTimeout = requestTimeout;
  server.keepAliveTimeout = keepAliveTimeout;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ code: err.code, error: err.message }, 'client connection error');
    if (socket.writable && !socket.writableEnded) {
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else {
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options.port, host);
  });

  const port = (server.address() as AddressInfo).port;
  const url = `http://${urlHost(host)}:${port}`;
  let closed: Promise<void> | undefined;

  return {
    server,
    url,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        const deadline = setTimeout(() => {
          log.warn({ drainMs }, 'drain deadline passed, closing remaining connections');
          server.closeAllConnections();
        }, drainMs);
        server.close(() => {
          clearInterval(sweep);
          clearTimeout(deadline);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

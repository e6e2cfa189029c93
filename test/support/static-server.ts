/**
 * A tiny static HTTP file server on a loopback port, standing in for a third-party mirror
 * (or any plain HTTP origin) in tests.
 *
 * ```ts
 * const mirror = await startStaticServer(treeDir);              // 127.0.0.1, ephemeral port
 * const v6 = await startStaticServer(treeDir, { families: ['ipv6'] });   // [::1]
 * // mirror.url → 'http://127.0.0.1:41234' (no trailing slash)
 * // mirror.requests → ['GET /PUBLICATION', 'HEAD /blobs/sha256/ab/ab…', …]
 * mirror.setDown('reset');  // from now on every connection is destroyed without an answer
 * mirror.setDown('hang');   // or accepted and never answered (exercises client timeouts)
 * mirror.setDown(false);    // answers again
 * await mirror.stop();
 * ```
 *
 * It serves regular files under `root` (GET and HEAD, `Content-Length`, `Content-Type:
 * application/octet-stream`), answers 404 for anything missing or outside `root`, 405 for
 * other methods, and logs every request it receives as `"<METHOD> <path>"` (also while down).
 * With `families: ['ipv4', 'ipv6']` it listens on both 127.0.0.1 and ::1 on the same port;
 * `url` is then the IPv4 one and `urls` holds both.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';

export type AddressFamily = 'ipv4' | 'ipv6';
export type DownMode = 'reset' | 'hang';

export interface StaticServerOptions {
  /** Loopback families to listen on; default `['ipv4']`. */
  families?: AddressFamily[];
}

export interface StaticServer {
  /** Base URL without a trailing slash (IPv4 when listening on both). */
  url: string;
  /** Base URL per family listened on. */
  urls: Partial<Record<AddressFamily, string>>;
  port: number;
  /** `"<METHOD> <path>"` of every request received, in order. */
  requests: string[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** `false` answers normally; `'reset'` destroys connections; `'hang'` never answers. */
  setDown(mode: DownMode | false): void;
  stop(): Promise<void>;
}

const LOOPBACK: Record<AddressFamily, string> = { ipv4: '127.0.0.1', ipv6: '::1' };

export async function startStaticServer(
  root: string,
  options: StaticServerOptions = {},
): Promise<StaticServer> {
  const families =
    options.families && options.families.length > 0 ? options.families : ['ipv4' as const];
  const absoluteRoot = path.resolve(root);
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  let down: DownMode | false = false;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    if (down === 'reset') {
      req.socket.destroy();
      return;
    }
    if (down === 'hang') return;
    void serveFile(absoluteRoot, req, res);
  };

  const servers: Server[] = [];
  let port = 0;
  for (let attempt = 0; attempt < 10 && servers.length < families.length; attempt += 1) {
    // The first server picks an ephemeral port; the others must get the same one, which may
    // be taken on the other family, so start over with a fresh port when that happens.
    port = 0;
    try {
      for (const family of families) {
        const server = createServer(handle);
        server.on('connection', (socket: Socket) => {
          connections += 1;
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          if (down === 'reset') socket.destroy();
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, LOOPBACK[family], () => {
            server.off('error', reject);
            resolve();
          });
        });
        servers.push(server);
        const address = server.address();
        if (address && typeof address === 'object') port = address.port;
      }
    } catch (error) {
      await Promise.all(servers.splice(0).map((server) => closeServer(server)));
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  if (servers.length < families.length)
    throw new Error('static server: could not listen on one port for all families');

  const urls: Partial<Record<AddressFamily, string>> = {};
  for (const family of families) {
    urls[family] = family === 'ipv6' ? `http://[::1]:${port}` : `http://127.0.0.1:${port}`;
  }
  const url = urls.ipv4 ?? urls.ipv6 ?? '';

  return {
    url,
    urls,
    port,
    requests,
    get connections() {
      return connections;
    },
    setDown(mode) {
      down = mode;
      if (mode === 'reset') for (const socket of sockets) socket.destroy();
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => closeServer(server)));
    },
  };
}

async function serveFile(root: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': '0' }).end();
    return;
  }
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://static.invalid').pathname);
  } catch {
    res.writeHead(400, { 'Content-Length': '0' }).end();
    return;
  }
  const file = path.resolve(root, `.${pathname}`);
  if (file !== root && !file.startsWith(root + path.sep)) {
    res.writeHead(404, { 'Content-Length': '0' }).end();
    return;
  }
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error('not a file');
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(info.size),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
    stream.pipe(res);
  } catch {
    if (!res.headersSent) res.writeHead(404, { 'Content-Length': '0' }).end();
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

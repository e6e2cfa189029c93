import { createServer } from 'node:net';

/**
 * A free TCP port on a loopback address, for a server started by another process (our own
 * in-process servers listen on port 0 instead). The port is released before it is returned,
 * so a race with another process is possible but harmless in practice on a test machine.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

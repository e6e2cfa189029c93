import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { problems, writeError } from '@flotilla/kit';
import type { Logger } from 'pino';

/**
 * Requests the redirect thread does not answer itself, carried to the service over the
 * thread's message port, not over HTTP: an HTTP client in the thread's isolate (undici,
 * `node:http`) would run node's stream and event code with its own object shapes, which is the
 * pollution the thread exists to avoid (redirect-thread.ts). The service's side makes the real
 * request to its own loopback listener and sends the answer back in chunks. Both directions
 * are flow-controlled: at most RELAY_WINDOW chunks are unacknowledged.
 */

/** Thread → service. */
export type RelayRequestMessage =
  | { type: 'relay-request'; id: number; method: string; url: string; headers: Record<string, string | string[]>; hasBody: boolean }
  | { type: 'relay-body'; id: number; chunk: Uint8Array }
  | { type: 'relay-end'; id: number }
  | { type: 'relay-abort'; id: number }
  | { type: 'relay-ack'; id: number };

/** Service → thread. */
export type RelayAnswerMessage =
  | { type: 'relay-head'; id: number; status: number; headers: Record<string, string | string[]> }
  | { type: 'relay-data'; id: number; chunk: Uint8Array }
  | { type: 'relay-done'; id: number }
  | { type: 'relay-fail'; id: number }
  | { type: 'relay-body-ack'; id: number };

/** Chunks either side may have sent and not yet seen acknowledged. */
export const RELAY_WINDOW = 16;

/** Hop-by-hop headers (RFC 9110 §7.6.1), and `expect`, which the thread's server answers itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);

export function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export function isRelayRequest(message: { type: string }): message is RelayRequestMessage {
  return message.type.startsWith('relay-');
}

/** The thread's side: hands a request over and writes the answer as it arrives. */
export function createRelayClient(send: (message: RelayRequestMessage) => void, logger: Logger) {
  let nextId = 1;
  const live = new Map<number, { req: IncomingMessage; res: ServerResponse; unacked: number }>();

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const id = nextId++;
    const headers = endToEnd(req.headers);
    const peer = req.socket.remoteAddress;
    // The service sees the thread as its peer; keep the chain a proxy would.
    if (peer !== undefined) {
      const prior = req.headers['x-forwarded-for'];
      headers['x-forwarded-for'] = prior === undefined ? peer : `${prior}, ${peer}`;
    }
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const entry = { req, res, unacked: 0 };
    live.set(id, entry);
    send({ type: 'relay-request', id, method: req.method ?? 'GET', url: req.url ?? '/', headers, hasBody });
    res.on('close', () => {
      // The client left before the answer was complete.
      if (live.delete(id)) send({ type: 'relay-abort', id });
    });
    if (hasBody) {
      req.on('data', (chunk: Buffer) => {
        send({ type: 'relay-body', id, chunk });
        entry.unacked += 1;
        if (entry.unacked >= RELAY_WINDOW) req.pause();
      });
      req.on('end', () => send({ type: 'relay-end', id }));
    }
  };

  const receive = (message: RelayAnswerMessage): void => {
    const entry = live.get(message.id);
    if (!entry) return;
    const { req, res } = entry;
    switch (message.type) {
      case 'relay-head':
        res.writeHead(message.status, message.headers);
        break;
      case 'relay-data':
        res.write(message.chunk, () => send({ type: 'relay-ack', id: message.id }));
        break;
      case 'relay-done':
        live.delete(message.id);
        res.end();
        break;
      case 'relay-fail':
        live.delete(message.id);
        if (res.headersSent) {
          res.destroy();
        } else {
          logger.error({ url: req.url }, 'the mirrors service did not answer a relayed request');
          writeError(res, problems.serviceUnavailable('the mirrors service is not answering'), { format: 'problem', instance: req.url ?? '/' });
        }
        break;
      case 'relay-body-ack':
        entry.unacked -= 1;
        if (entry.unacked < RELAY_WINDOW && req.isPaused()) req.resume();
        break;
    }
  };

  return { forward, receive };
}

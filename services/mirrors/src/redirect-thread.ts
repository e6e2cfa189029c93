import { PassThrough } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import type { MirrorsConfig } from './config.js';
import type { GeoDatabases } from './geo.js';
import { endToEnd, isRelayRequest, RELAY_WINDOW, type RelayAnswerMessage, type RelayRequestMessage } from './relay.js';
import type { ParsedCidr } from './selection/address.js';
import type { MasterTarget } from './selection/selector.js';
import type { MirrorsService, RedirectState } from './service.js';
import type { StatisticsDelta } from './statistics.js';

/**
 * The public listener of `flotilla serve mirrors`, on a worker thread of its own.
 *
 * Node's HTTP server runs the same internal code (streams, events, the parser's callbacks) for
 * every request, and V8 specialises that code to the object shapes it has seen. In a process
 * that also runs express, the store, the bus client and the crawler, dozens of those sites
 * see more shapes than V8 tracks and stay megamorphic (`--log-ic`: about 60 sites in
 * `_http_*`, `internal/streams` and `events` that a bare process keeps monomorphic). That cost
 * the redirect about 6 µs of CPU per request, ten times the redirector's own work, and one
 * express request in the same isolate costs more (docs/bench/mirrors.md). A worker thread is
 * a separate isolate: here the redirector gets one that runs nothing else.
 *
 * The thread owns the service's public port. It answers the redirector's paths itself from a
 * copy of the selection inputs and the blob index, which the service pushes on every change
 * (plain data; the thread builds its own selector). Every other request goes, streamed, over
 * the thread's message port to this side, which makes it to the service's own listener on
 * loopback (relay.ts: no HTTP client runs in the thread). Its redirect counts reach the
 * service's statistics once a second. Until the service has read the published tree, blob
 * paths answer 503, as `/readyz` does.
 */

/** What the thread starts with (structured-cloned into it). */
export interface RedirectThreadData {
  host: string;
  port: number;
  master: MasterTarget;
  trustedProxies: ParsedCidr[];
  geo: GeoDatabases;
  statisticsIntervalMs: number;
}

export type ToRedirectThread = { type: 'state'; state: RedirectState; ready: boolean } | { type: 'close' } | RelayAnswerMessage;

export type FromRedirectThread =
  | RelayRequestMessage
  | { type: 'listening'; url: string; port: number }
  | { type: 'failed'; message: string }
  | { type: 'statistics'; delta: StatisticsDelta }
  | { type: 'closed' };

export interface RedirectThread {
  readonly url: string;
  readonly port: number;
  /** Starts pushing the service's redirect state; blob paths are served from then on. */
  follow(service: MirrorsService): void;
  /** Stops accepting, drains, hands over the last counts, ends the thread. Idempotent. */
  close(): Promise<void>;
}

export interface RedirectThreadOptions {
  config: MirrorsConfig;
  service: MirrorsService;
  /** The service's own listener. */
  upstream: string;
  logger: Logger;
  /** How often the thread hands its redirect counts over (default 1 s). */
  statisticsIntervalMs?: number;
  /** Called when the thread dies on its own (the process should stop: nothing serves the port). */
  onFailure: (error: Error) => void;
}

/**
 * The worker: its compiled sibling, or, when this module runs from TypeScript source (tests,
 * `--import tsx`), the source through tsx, whose hooks a worker does not inherit.
 */
function spawnWorker(workerData: RedirectThreadData): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./redirect-thread-worker.js', here), { workerData });
  const source = new URL('./redirect-thread-worker.ts', here).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}

export async function startRedirectThread(options: RedirectThreadOptions): Promise<RedirectThread> {
  const { config, service, logger } = options;
  const data: RedirectThreadData = {
    host: config.host,
    port: config.port,
    master: { name: 'master', baseUrl: config.masterUrl },
    trustedProxies: config.trustedProxies,
    geo: {
      ...(config.geoipCountryDb !== undefined ? { countryDb: config.geoipCountryDb } : {}),
      ...(config.geoipAsnDb !== undefined ? { asnDb: config.geoipAsnDb } : {}),
    },
    statisticsIntervalMs: options.statisticsIntervalMs ?? 1000,
  };
  const worker = spawnWorker(data);
  const relay = createRelayServer(options.upstream, (message) => worker.postMessage(message), logger);
  let closing: Promise<void> | undefined;
  let unfollow: (() => void) | undefined;

  const listening = new Promise<{ url: string; port: number }>((resolve, reject) => {
    const onExit = (code: number): void => reject(new Error(`redirect thread exited with code ${code} before listening`));
    worker.once('exit', onExit);
    worker.once('error', reject);
    worker.on('message', (message: FromRedirectThread) => {
      if (isRelayRequest(message)) {
        relay.receive(message);
      } else if (message.type === 'listening') {
        worker.off('exit', onExit);
        worker.off('error', reject);
        resolve(message);
      } else if (message.type === 'failed') {
        reject(new Error(message.message));
      } else if (message.type === 'statistics') {
        service.statistics.add(message.delta);
      }
    });
  });
  let address: { url: string; port: number };
  try {
    address = await listening;
  } catch (error) {
    await worker.terminate();
    await relay.close();
    throw error;
  }

  worker.on('error', (error) => {
    if (!closing) options.onFailure(error);
  });
  worker.on('exit', (code) => {
    unfollow?.();
    if (!closing) options.onFailure(new Error(`redirect thread exited with code ${code}`));
  });

  return {
    url: address.url,
    port: address.port,
    follow(target) {
      unfollow?.();
      unfollow = target.watchRedirectState((state) => {
        worker.postMessage({ type: 'state', state, ready: true } satisfies ToRedirectThread);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        unfollow?.();
        unfollow = undefined;
        let finished = false;
        // Reached twice (the thread says it closed, then it exits); the relay closes once.
        const done = (): void => {
          if (finished) return;
          finished = true;
          clearTimeout(deadline);
          relay.close().then(resolve, (error: unknown) => {
            logger.warn({ err: error }, 'relay closed uncleanly');
            resolve();
          });
        };
        // The thread drains its connections (kit's listen: at most its drain time), then says so.
        const deadline = setTimeout(() => {
          logger.warn('redirect thread did not close in time; terminating it');
          void worker.terminate().then(done, done);
        }, 15_000);
        worker.on('message', (message: FromRedirectThread) => {
          if (message.type === 'closed') void worker.terminate().then(done, done);
        });
        worker.once('exit', done);
        worker.postMessage({ type: 'close' } satisfies ToRedirectThread);
      });
      return closing;
    },
  };
}

/** The service's side of the relay (relay.ts): makes each relayed request to its own listener and sends the answer back. */
function createRelayServer(upstream: string, send: (message: RelayAnswerMessage) => void, logger: Logger) {
  const pool = new Pool(upstream, { connections: 16 });
  const live = new Map<number, { body: PassThrough | undefined; abort: AbortController; unacked: number; resume: (() => void) | undefined }>();

  const start = (message: Extract<RelayRequestMessage, { type: 'relay-request' }>): void => {
    const { id } = message;
    const entry = { body: message.hasBody ? new PassThrough() : undefined, abort: new AbortController(), unacked: 0, resume: undefined as (() => void) | undefined };
    live.set(id, entry);
    pool
      .request({ method: message.method as 'GET', path: message.url, headers: message.headers, body: entry.body ?? null, signal: entry.abort.signal })
      .then(async (answer) => {
        send({ type: 'relay-head', id, status: answer.statusCode, headers: endToEnd(answer.headers) });
        for await (const chunk of answer.body) {
          send({ type: 'relay-data', id, chunk: chunk as Buffer });
          entry.unacked += 1;
          if (entry.unacked >= RELAY_WINDOW) await new Promise<void>((resolve) => (entry.resume = resolve));
          if (entry.abort.signal.aborted) return;
        }
        send({ type: 'relay-done', id });
      })
      .catch((error: unknown) => {
        if (entry.abort.signal.aborted) return; // the client went away
        logger.warn({ err: error, url: message.url }, 'relayed request failed');
        send({ type: 'relay-fail', id });
      })
      .finally(() => live.delete(id));
  };

  return {
    receive(message: RelayRequestMessage): void {
      if (message.type === 'relay-request') {
        start(message);
        return;
      }
      const entry = live.get(message.id);
      if (!entry) return;
      switch (message.type) {
        case 'relay-body':
          entry.body?.write(message.chunk, () => send({ type: 'relay-body-ack', id: message.id }));
          break;
        case 'relay-end':
          entry.body?.end();
          break;
        case 'relay-ack':
          entry.unacked -= 1;
          if (entry.resume && entry.unacked < RELAY_WINDOW) {
            const resume = entry.resume;
            entry.resume = undefined;
            resume();
          }
          break;
        case 'relay-abort':
          entry.abort.abort();
          entry.body?.destroy();
          entry.resume?.();
          break;
      }
    },
    async close(): Promise<void> {
      for (const entry of live.values()) {
        entry.abort.abort();
        entry.resume?.();
      }
      await pool.close();
    },
  };
}

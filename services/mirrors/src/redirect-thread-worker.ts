// First, before anything can tick in this isolate: see packages/kit/src/tick-shape.ts.
import '@flotilla/kit/tick-shape';
import type { ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger, listen, problems, writeError } from '@flotilla/kit';
import { openGeoLookup } from './geo.js';
import { createRelayClient, type RelayAnswerMessage } from './relay.js';
import { createRedirector } from './redirector.js';
import { createAddressSet } from './selection/address.js';
import { buildSelector, type SelectableMirror, type Selector } from './selection/selector.js';
import { RedirectStatistics } from './statistics.js';
import type { RedirectThreadData, ToRedirectThread, FromRedirectThread } from './redirect-thread.js';

/**
 * The redirect thread: the public listener of `flotilla serve mirrors`, in an isolate that runs
 * nothing but the redirector (redirect-thread.ts says why). Everything that is not a redirect
 * goes to the service over the message port (relay.ts).
 */

async function run(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('redirect-thread-worker runs only as a worker thread');
  const send = (message: FromRedirectThread): void => port.postMessage(message);
  const data = workerData as RedirectThreadData;
  const base = createLogger({ name: 'mirrors' }).child({ thread: 'redirect' });
  const logger = base.child({ component: 'redirector' });
  const geo = await openGeoLookup(data.geo, base.child({ component: 'geo' }));
  const master = data.master;

  let blobs: ReadonlyMap<string, number> = new Map<string, number>();
  let selector: Selector = buildSelector([], { master });
  // Until the service has read the tree, a blob path has no right answer yet.
  let ready = false;
  let nextEligible: SelectableMirror[] | undefined;
  const rebuildSelector = (): void => {
    if (nextEligible === undefined) return;
    selector = buildSelector(nextEligible, { master });
    nextEligible = undefined;
  };
  const statistics = new RedirectStatistics();
  const redirector = createRedirector({
    index: { introducedIn: (hex) => blobs.get(hex) },
    selector: () => selector,
    geo,
    trustedProxies: createAddressSet(data.trustedProxies),
    statistics,
    logger,
  });

  const relay = createRelayClient(send, logger);

  const notReady = (res: ServerResponse, url: string): void => {
    writeError(res, problems.serviceUnavailable('the published tree has not been read yet', { headers: { 'Retry-After': '1' } }), {
      format: 'problem',
      instance: url,
    });
  };

  const server = await listen(
    (req, res) => {
      // Not ready until the service's state has arrived: blob paths have no right answer yet,
      // and /readyz must not say ready before this thread is.
      if (!ready) {
        const url = req.url ?? '/';
        if (url.startsWith('/pub/') || url === '/readyz' || url.startsWith('/readyz?')) {
          notReady(res, url);
          return;
        }
      }
      if (!redirector.handle(req, res)) relay.forward(req, res);
    },
    { host: data.host, port: data.port, logger },
  );

  const flush = (): void => {
    const delta = statistics.takeDelta();
    if (delta.redirects.length > 0 || delta.notFound > 0) send({ type: 'statistics', delta });
  };
  const timer = setInterval(flush, data.statisticsIntervalMs);

  port.on('message', (message: ToRedirectThread) => {
    if (message.type.startsWith('relay-')) {
      relay.receive(message as RelayAnswerMessage);
      return;
    }
    if (message.type === 'state') {
      if (message.state.blobs) blobs = message.state.blobs;
      if (message.state.eligible) {
        if (ready) {
          // A crawl cycle sends a new mirror list per crawled mirror, and a build takes ~0.1 s
          // of this thread at 1,000 mirrors: messages already queued collapse into one build.
          const first = nextEligible === undefined;
          nextEligible = message.state.eligible;
          if (first) setImmediate(rebuildSelector);
        } else {
          selector = buildSelector(message.state.eligible, { master });
        }
      }
      if (message.ready) ready = true;
      return;
    }
    if (message.type === 'close') {
      clearInterval(timer);
      void server
        .close()
        .catch((error: unknown) => logger.warn({ err: error }, 'redirect thread closed uncleanly'))
        .finally(() => {
          flush();
          send({ type: 'closed' });
          port.close();
        });
    }
  });
  send({ type: 'listening', url: server.url, port: server.port });
}

run().catch((error: unknown) => {
  parentPort?.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies FromRedirectThread);
});

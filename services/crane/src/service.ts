import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Bus, Subscription } from '@flotilla/bus';
import {
  createAccessLog,
  createMetrics,
  Readiness,
  type ServiceInstance,
  type ServiceMetrics,
} from '@flotilla/kit';
import {
  parsePublishedKeys,
  PublishedPaths,
  type ContentPublishedData,
  type PublishedKeys,
} from '@flotilla/protocol';
import type { Logger } from 'pino';
import { createCredentialCheck, loadHtpasswd } from './access/credentials.js';
import { compileProtectedGlobs } from './access/protected-globs.js';
import { createApp } from './app.js';
import type { Catalog } from './catalog/catalog.js';
import { createCatalogLoader } from './catalog/loader.js';
import type { CraneConfig } from './config.js';
import { createClientIpResolver } from './http/client-ip.js';
import { createRateLimiter } from './http/rate-limit.js';
import { createV2Handler, type CacheControl } from './http/v2-handler.js';
import { createCraneMetrics } from './metrics.js';
import { createDirectorySource } from './source/directory-source.js';
import { createHttpSource } from './source/http-source.js';
import type { TreeSource } from './source/tree-source.js';

export interface CraneServiceDeps {
  config: CraneConfig;
  logger: Logger;
  /** When given, crane reloads on `content.published` (queue `flotilla.crane.reload.<instance>`). */
  bus?: Bus;
  metrics?: ServiceMetrics;
  /** Overrides the source the config names (tests). */
  source?: TreeSource;
}

export interface CraneService extends ServiceInstance {
  /** The catalog being served. */
  catalog(): Catalog;
  /** Loads what changed now (what a poll or an event does); `full` re-reads everything. */
  reload(options?: { full?: boolean }): Promise<Catalog>;
  readonly metrics: ServiceMetrics;
}

const SWEEP_INTERVAL_MS = 10_000;

export function reloadQueueName(instanceId: string): string {
  return `flotilla.crane.reload.${instanceId}`;
}

/**
 * Crane: the public, read-only pull endpoint. Serves `/v2/` from an in-memory catalog of one
 * channel's view of the published tree (`FLOTILLA_CRANE_CHANNEL`, default stable) (lean `node:http` path), redirects blobs to the mirror redirector, reloads on
 * `content.published` and by polling `PUBLICATION`. It holds no store and no credentials.
 */
export async function createCraneService(deps: CraneServiceDeps): Promise<CraneService> {
  const { config } = deps;
  const logger = deps.logger.child({ service: 'crane' });
  const metrics = deps.metrics ?? createMetrics('crane');
  const craneMetrics = createCraneMetrics(metrics);
  const isProtected = compileProtectedGlobs(config.protectedGlobs);
  const users = config.htpasswdFile ? await loadHtpasswd(config.htpasswdFile) : undefined;
  const credentials = createCredentialCheck({
    ...(users ? { users } : {}),
    ...(config.clientCertHeader ? { certificateValue: config.clientCertValue } : {}),
  });
  const cache: CacheControl = {
    byDigest: 'public, max-age=31536000, immutable',
    byTag: `public, max-age=${config.tagMaxAgeSeconds}`,
    private: 'private, no-store',
  };
  const source =
    deps.source ??
    (config.sourceUrl
      ? createHttpSource(config.sourceUrl)
      : createDirectorySource(config.publishDir));
  const loader = createCatalogLoader({
    source,
    channel: config.channel,
    ...(config.pulpDir ? { pulpDir: config.pulpDir } : {}),
    logger,
    metrics: craneMetrics,
    isProtected,
    cache: { byDigest: cache.byDigest, byTag: cache.byTag },
    privateCache: { byDigest: cache.private, byTag: cache.private },
  });
  const rateLimiter =
    config.rateLimit > 0
      ? createRateLimiter({ rate: config.rateLimit, burst: config.rateBurst })
      : null;
  const clientIp = createClientIpResolver(config.trustedProxies);
  const v2 = createV2Handler({
    catalog: loader.current,
    logger,
    observe: metrics.observe,
    rateLimited: craneMetrics.rateLimited,
    clientIp,
    rateLimiter,
    credentials,
    ...(config.clientCertHeader
      ? { certificateHeader: config.clientCertHeader.toLowerCase() }
      : {}),
    blobBaseUrl: config.blobBaseUrl,
    cache,
    maxUrlLength: config.maxUrlLength,
  });

  const accessLog = createAccessLog({
    logger: logger.child({ component: 'access' }),
    level: config.accessLog ?? 'info',
    clientAddress: (req) =>
      clientIp.resolve(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for']),
  });

  const readiness = new Readiness({
    catalog: () => {
      if (!loader.loaded()) throw new Error('no publication loaded yet');
    },
  });
  let keys: PublishedKeys | null = null;
  const app = createApp({ logger, metrics, readiness, keys: () => keys });

  /** `keys/index.json` beside the publication; a bad or unreadable file keeps the previous keys. */
  async function reloadKeys(): Promise<void> {
    try {
      const text = await source.readText(PublishedPaths.keys);
      keys = text === null ? null : parsePublishedKeys(text);
    } catch (err) {
      logger.warn({ err }, 'failed to load published keys, keeping the previous ones');
    }
  }

  let resolveReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const timers: NodeJS.Timeout[] = [];
  let subscription: Subscription | undefined;
  let stopped = false;

  async function reload(options: { full?: boolean } = {}): Promise<Catalog> {
    const catalog = await loader.reload(options);
    await reloadKeys();
    if (loader.loaded()) resolveReady();
    return catalog;
  }

  function reloadInBackground(): void {
    // failures are logged and counted by the loader; the previous catalog keeps being served
    reload().catch(() => undefined);
  }

  return {
    name: 'crane',
    metrics,
    catalog: loader.current,
    reload,
    handler(req: IncomingMessage, res: ServerResponse) {
      // Probes and scrapes stay off express too (see createOperationalEndpoints).
      // The registry API gets the access log; other paths log through the service app.
      if (accessLog && req.url?.startsWith('/v2')) accessLog(req, res);
      if (!v2(req, res) && !app.operational(req, res)) app(req, res);
    },
    async start() {
      stopped = false;
      await reload({ full: true }).catch(() => undefined);
      if (config.pollIntervalMs > 0) {
        const poll = setInterval(reloadInBackground, config.pollIntervalMs);
        poll.unref();
        timers.push(poll);
      }
      if (rateLimiter) {
        const sweep = setInterval(() => rateLimiter.sweep(), SWEEP_INTERVAL_MS);
        sweep.unref();
        timers.push(sweep);
      }
      if (deps.bus) {
        subscription = await deps.bus.subscribe(
          reloadQueueName(config.instanceId),
          ['content.published'],
          async (event) => {
            if (stopped) return;
            const data = event.data as ContentPublishedData;
            // another channel's publication never changes this view
            if (data.channel !== config.channel) return;
            const served = loader.current().publication;
            if (served !== null && data.publication <= served) return; // already serving it (redelivery)
            logger.info(
              { publication: data.publication, channel: data.channel },
              'reloading on content.published',
            );
            const catalog = await reload();
            if ((catalog.publication ?? -1) < data.publication) {
              // the tree we read is behind the event (a lagging master copy): let the bus retry
              throw new Error(
                `publication ${data.publication} announced, ${catalog.publication} readable`,
              );
            }
          },
        );
      }
    },
    async stop() {
      stopped = true;
      for (const timer of timers.splice(0)) clearInterval(timer);
      await subscription?.cancel();
      subscription = undefined;
    },
    ready: () => readyPromise,
  };
}

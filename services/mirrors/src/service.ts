import type { Bus, Subscription } from '@flotilla/bus';
import { createOutbox, type Outbox } from '@flotilla/bus';
import { createMetrics, Readiness, type ServiceInstance, type ServiceMetrics } from '@flotilla/kit';
import { createEvent } from '@flotilla/protocol';
import type { Store } from '@flotilla/store';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import { BlobIndex } from './blob-index.js';
import type { MirrorsConfig } from './config.js';
import { Crawler } from './crawler/crawler.js';
import { openGeoLookup, type GeoLookup } from './geo.js';
import { toSelectable } from './mirrors/model.js';
import { CrawlLog, MirrorRepository } from './mirrors/repository.js';
import { createRedirector } from './redirector.js';
import { createAddressSet } from './selection/address.js';
import { buildSelector, type SelectableMirror, type Selector } from './selection/selector.js';
import { RedirectStatistics } from './statistics.js';
import { createDirectoryTreeReader, createHttpTreeReader, type TreeReader } from './tree/reader.js';

/**
 * The composition root of the mirrors service: store repositories, the blob index over the
 * master tree, the selection snapshot, the crawler, the redirector's lean dispatch in front
 * of the express app, the outbox for `mirrors.crawled`, and the background work (a consumer
 * of `content.published`, the crawl interval, the tree poll).
 */
export interface MirrorsServiceDeps {
  config: MirrorsConfig;
  logger: Logger;
  store: Store;
  bus: Bus;
  /** Default: the MMDB files from config (or the bundled country database). */
  geo?: GeoLookup;
  /** Default: the publish directory or the master URL, per config. */
  reader?: TreeReader;
  /** Selection and sampling randomness; tests pass a seeded generator. */
  random?: () => number;
  metrics?: ServiceMetrics;
}

/** What a redirector elsewhere (the redirect thread) needs to answer as this one does; plain data. */
export interface RedirectState {
  /** The mirrors the selection snapshot is built from, when they changed. */
  eligible?: SelectableMirror[];
  /** `sha256 hex → introducing publication`, when the index changed; valid until the next change. */
  blobs?: ReadonlyMap<string, number>;
}

export interface MirrorsService extends ServiceInstance {
  readonly index: BlobIndex;
  readonly crawler: Crawler;
  readonly statistics: RedirectStatistics;
  /** The current selection snapshot. */
  selector(): Selector;
  /** Re-reads the tree and the mirrors and swaps the selection snapshot. */
  refresh(): Promise<void>;
  /**
   * Calls `listener` at once with the whole state, then with what changed each time the
   * selection snapshot or the blob index changes. Returns the unsubscribe function.
   */
  watchRedirectState(listener: (change: RedirectState) => void): () => void;
}

const PUBLISHED_QUEUE = 'flotilla.mirrors.published';

export async function createMirrorsService(deps: MirrorsServiceDeps): Promise<MirrorsService> {
  const { config, store, bus } = deps;
  const logger = deps.logger.child({ service: 'mirrors' });
  const metrics = deps.metrics ?? createMetrics('mirrors');
  const random = deps.random ?? Math.random;
  const reader =
    deps.reader ??
    (config.treeSource === 'master-url'
      ? createHttpTreeReader(config.masterUrl, { timeoutMs: config.crawlTimeoutMs })
      : createDirectoryTreeReader(config.publishDir));
  const geo =
    deps.geo ??
    (await openGeoLookup({ countryDb: config.geoipCountryDb, asnDb: config.geoipAsnDb }, logger.child({ component: 'geo' })));

  const repository = new MirrorRepository(store);
  const crawlLog = new CrawlLog(store);
  const index = new BlobIndex(reader, logger.child({ component: 'blob-index' }));
  const statistics = new RedirectStatistics(metrics.registry);
  const outbox: Outbox = createOutbox({ store, bus, logger, collection: 'mirrors_outbox' });
  const master = { name: 'master', baseUrl: config.masterUrl };

  let selector: Selector = buildSelector([], { master, random });
  let eligibleNow: SelectableMirror[] = [];
  const stateListeners = new Set<(change: RedirectState) => void>();
  index.onChange(() => {
    if (stateListeners.size === 0) return;
    const blobs = index.entries();
    for (const listener of stateListeners) listener({ blobs });
  });
  let rebuilding: Promise<void> | null = null;
  let lastFingerprint = '';
  let rebuildAgain = false;
  /** Loads the mirrors and swaps in a new snapshot; calls during a rebuild coalesce into one more. */
  const rebuild = async (): Promise<void> => {
    if (rebuilding) {
      rebuildAgain = true;
      return rebuilding;
    }
    rebuilding = (async () => {
      do {
        rebuildAgain = false;
        const docs = await repository.list();
        const eligible = docs.map(toSelectable).filter((m) => m !== null);
        // The poll rebuilds too (another replica may have crawled); skip when nothing changed.
        const fingerprint = JSON.stringify(eligible);
        if (fingerprint === lastFingerprint) continue;
        selector = buildSelector(eligible, { master, random });
        lastFingerprint = fingerprint;
        eligibleNow = eligible;
        for (const listener of stateListeners) listener({ eligible });
        logger.debug({ mirrors: docs.length, eligible: eligible.length }, 'selection snapshot rebuilt');
      } while (rebuildAgain);
    })().finally(() => {
      rebuilding = null;
    });
    return rebuilding;
  };

  const crawler = new Crawler({
    repository,
    crawlLog,
    index,
    reader,
    sampleSize: config.crawlSample,
    concurrency: config.crawlConcurrency,
    timeoutMs: config.crawlTimeoutMs,
    logger,
    random,
    async onCrawled(mirror, record) {
      const current = index.marker;
      await outbox.enqueue(
        createEvent('mirrors.crawled', 'mirrors', {
          mirror: mirror.name,
          publication: mirror.publication ?? 0,
          upToDate: mirror.publication !== null && current !== null && mirror.publication >= current,
        }),
      );
      logger.debug({ mirror: mirror.name, crawl: record._id }, 'crawl event enqueued');
      await rebuild();
    },
  });

  const redirector = createRedirector({
    index,
    selector: () => selector,
    geo,
    trustedProxies: createAddressSet(config.trustedProxies),
    statistics,
    logger,
  });

  let treeRead = false;
  const readiness = new Readiness({
    store: () => store.ping(),
    bus: () => bus.ping(),
    tree: () => {
      if (!treeRead) throw new Error('the published tree has not been read yet');
    },
  });
  const app = createApp({
    logger,
    metrics,
    readiness,
    repository,
    crawlLog,
    crawler,
    statistics,
    apiToken: config.apiToken,
    masterDir: config.serveMaster ? config.publishDir : undefined,
    currentPublication: () => index.marker,
    changed: rebuild,
  });

  let crawlAllRunning: Promise<unknown> | null = null;
  let crawlAllAgain = false;
  const crawlAllInBackground = (): void => {
    if (crawlAllRunning) {
      crawlAllAgain = true;
      return;
    }
    crawlAllRunning = (async () => {
      do {
        crawlAllAgain = false;
        await crawler.crawlAll();
      } while (crawlAllAgain);
    })()
      .catch((error: unknown) => logger.error({ err: error }, 'failed to crawl mirrors'))
      .finally(() => {
        crawlAllRunning = null;
      });
  };

  const refresh = async (): Promise<void> => {
    await index.refresh();
    treeRead = true;
    await rebuild();
  };

  const timers: NodeJS.Timeout[] = [];
  let subscription: Subscription | undefined;
  let started: Promise<void> | undefined;

  return {
    name: 'mirrors',
    index,
    crawler,
    statistics,
    selector: () => selector,
    refresh,
    watchRedirectState(listener) {
      stateListeners.add(listener);
      listener({ eligible: eligibleNow, blobs: index.entries() });
      return () => {
        stateListeners.delete(listener);
      };
    },
    handler(req, res) {
      // Probes and scrapes stay off express too (see createOperationalEndpoints).
      if (!redirector.handle(req, res) && !app.operational(req, res)) app(req, res);
    },
    start() {
      started ??= (async () => {
        await repository.ensureIndexes();
        await crawlLog.ensureIndexes();
        // An unreadable tree must not keep the service down: the poll and the next event retry.
        await refresh().catch((error: unknown) => logger.error({ err: error }, 'failed to read the published tree'));
        await outbox.start();
        subscription = await bus.subscribe(PUBLISHED_QUEUE, ['content.published'], async (event) => {
          logger.info({ event: event.id, type: event.type }, 'publication announced');
          await refresh();
          crawlAllInBackground();
        });
        if (config.crawlIntervalMs > 0) {
          const timer = setInterval(crawlAllInBackground, config.crawlIntervalMs);
          timer.unref();
          timers.push(timer);
          crawlAllInBackground();
        }
        if (config.treePollIntervalMs > 0) {
          // Each tick also re-reads the mirrors, so crawls recorded by another replica count.
          const timer = setInterval(() => {
            index
              .refresh()
              .then(() => {
                treeRead = true;
                return rebuild();
              })
              .catch((error: unknown) => logger.error({ err: error }, 'failed to poll the published tree'));
          }, config.treePollIntervalMs);
          timer.unref();
          timers.push(timer);
        }
        logger.info({ marker: index.marker, blobs: index.size, tree: reader.location }, 'mirrors service started');
      })();
      return started;
    },
    async stop() {
      for (const timer of timers.splice(0)) clearInterval(timer);
      await subscription?.cancel();
      subscription = undefined;
      await crawlAllRunning;
      await crawler.close();
      await outbox.stop();
    },
    async ready() {
      await (started ?? Promise.resolve());
    },
  };
}

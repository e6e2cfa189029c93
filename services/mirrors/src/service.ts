import { randomUUID } from 'node:crypto';
import type { Bus, Subscription } from '@flotilla/bus';
import { createOutbox, type Outbox } from '@flotilla/bus';
import {
  createMetrics,
  createStorageSpace,
  Readiness,
  type ServiceInstance,
  type ServiceMetrics,
} from '@flotilla/kit';
import {
  createEvent,
  groupBlobsByPublication,
  SELECTION_SNAPSHOT_VERSION,
  type RedirectStatisticsSummary,
  type SelectableMirror,
  type SelectionSnapshot,
} from '@flotilla/protocol';
import { createLeases, runExclusive, type Store } from '@flotilla/store';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import { BlobIndex } from './blob-index.js';
import type { MirrorsConfig } from './config.js';
import { Crawler } from './crawler/crawler.js';
import { toSelectable } from './mirrors/model.js';
import { CrawlLog, MirrorRepository } from './mirrors/repository.js';
import { readRedirectStatistics, SnapshotWriter } from './snapshot-writer.js';
import { createDirectoryTreeReader, createHttpTreeReader, type TreeReader } from './tree/reader.js';

/**
 * The composition root of the mirrors service: store repositories, the blob index over the
 * master tree, the crawler, the selection snapshot it writes for the redirectors, the express
 * app (admin API, public list, master tree), the outbox for `mirrors.crawled`, and the
 * background work (a consumer of `content.published`, the crawl interval, the tree poll).
 */
export interface MirrorsServiceDeps {
  config: MirrorsConfig;
  logger: Logger;
  store: Store;
  bus: Bus;
  /** Default: the publish directory or the master URL, per config. */
  reader?: TreeReader;
  /** Crawl sampling randomness; tests pass a seeded generator. */
  random?: () => number;
  metrics?: ServiceMetrics;
  /**
   * The redirectors' counts for `/api/v1/statistics`. Default: the files redirector processes
   * write beside the snapshot; all-in-one passes its in-process redirector's.
   */
  statistics?: () => Promise<RedirectStatisticsSummary>;
}

export interface MirrorsService extends ServiceInstance {
  readonly index: BlobIndex;
  readonly crawler: Crawler;
  /** The current selection snapshot (as last written). */
  snapshot(): SelectionSnapshot;
  /** Re-reads the tree and the mirrors; resolves once a changed snapshot is written. */
  refresh(): Promise<void>;
  /**
   * Calls `listener` at once with the current snapshot, then with each new one (before it is
   * written). Returns the unsubscribe function.
   */
  onSnapshot(listener: (snapshot: SelectionSnapshot) => void): () => void;
}

const PUBLISHED_QUEUE = 'flotilla.mirrors.published';

/** How long a crawl lease outlives a replica that died while crawling (renewed while it crawls). */
const CRAWL_LEASE_MS = 60_000;

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

  const repository = new MirrorRepository(store);
  const crawlLog = new CrawlLog(store);
  const index = new BlobIndex(reader, logger.child({ component: 'blob-index' }));
  const statistics = deps.statistics ?? (() => readRedirectStatistics(config.snapshotFile, logger));
  const writer = new SnapshotWriter(config.snapshotFile, logger.child({ component: 'snapshot' }));
  const outbox: Outbox = createOutbox({ store, bus, logger, collection: 'mirrors_outbox' });
  const master = { name: 'master', baseUrl: config.masterUrl };

  let eligibleNow: SelectableMirror[] = [];
  const snapshotOf = (): SelectionSnapshot => ({
    version: SELECTION_SNAPSHOT_VERSION,
    writtenAt: new Date().toISOString(),
    master,
    marker: index.marker,
    mirrors: eligibleNow,
    blobs: groupBlobsByPublication(index.entries()),
  });
  let current = snapshotOf();
  const snapshotListeners = new Set<(snapshot: SelectionSnapshot) => void>();
  /** A new snapshot for the listeners and the file; resolves once it is on disk. */
  const publishSnapshot = (): Promise<void> => {
    current = snapshotOf();
    for (const listener of snapshotListeners) listener(current);
    return writer.write(current);
  };
  let indexChanged = false;
  index.onChange(() => {
    indexChanged = true;
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
        if (fingerprint === lastFingerprint && !indexChanged) continue;
        lastFingerprint = fingerprint;
        eligibleNow = eligible;
        indexChanged = false;
        await publishSnapshot();
        logger.debug(
          { mirrors: docs.length, eligible: eligible.length },
          'selection snapshot rebuilt',
        );
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
          upToDate:
            mirror.publication !== null && current !== null && mirror.publication >= current,
        }),
      );
      logger.debug({ mirror: mirror.name, crawl: record._id }, 'crawl event enqueued');
      await rebuild();
    },
  });

  // The store and the selection snapshot live on the data directory's volume.
  const space = createStorageSpace({
    directory: config.dataDir,
    reserveBytes: config.minFreeBytes,
    volume: 'mirrors',
    metrics,
  });
  let treeRead = false;
  const readiness = new Readiness({
    store: () => store.ping(),
    bus: () => bus.ping(),
    tree: () => {
      if (!treeRead) throw new Error('the published tree has not been read yet');
    },
    storage: () => space.readinessCheck(),
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
    ensureWritable: () => space.ensureWritable(),
  });

  // Replicas share the schedule: one replica at a time crawls, holding this lease.
  const leases = createLeases(store);
  const leaseHolder = randomUUID();
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
        const { ran } = await runExclusive(
          leases,
          'mirrors:crawl',
          leaseHolder,
          CRAWL_LEASE_MS,
          () => crawler.crawlAll(),
        );
        if (!ran) logger.debug('another replica is crawling');
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
    snapshot: () => current,
    refresh,
    onSnapshot(listener) {
      snapshotListeners.add(listener);
      listener(current);
      return () => {
        snapshotListeners.delete(listener);
      };
    },
    handler(req, res) {
      // Probes and scrapes stay off express (see createOperationalEndpoints).
      if (!app.operational(req, res)) app(req, res);
    },
    start() {
      started ??= (async () => {
        await repository.ensureIndexes();
        await crawlLog.ensureIndexes();
        // An unreadable tree must not keep the service down: the poll and the next event retry.
        await refresh().catch((error: unknown) =>
          logger.error({ err: error }, 'failed to read the published tree'),
        );
        await outbox.start();
        subscription = await bus.subscribe(
          PUBLISHED_QUEUE,
          ['content.published'],
          async (event) => {
            logger.info({ event: event.id, type: event.type }, 'publication announced');
            await refresh();
            crawlAllInBackground();
          },
        );
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
              .catch((error: unknown) =>
                logger.error({ err: error }, 'failed to poll the published tree'),
              );
          }, config.treePollIntervalMs);
          timer.unref();
          timers.push(timer);
        }
        logger.info(
          { marker: index.marker, blobs: index.size, tree: reader.location },
          'mirrors service started',
        );
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

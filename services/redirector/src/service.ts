import { mkdir, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import {
  createAddressSet,
  createMetrics,
  createOperationalEndpoints,
  problems,
  Readiness,
  writeError,
  type LeanHandler,
  type ServiceInstance,
  type ServiceMetrics,
} from '@flotilla/kit';
import { REDIRECT_STATISTICS_DIR, type SelectionSnapshot } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { RedirectorConfig } from './config.js';
import { openGeoLookup, type GeoLookup } from './geo.js';
import { createRedirector } from './redirector.js';
import { emptySelection, selectionFrom, type Selection } from './selection-state.js';
import { followSnapshotFile, type SnapshotFollower } from './snapshot-file.js';
import { RedirectStatistics } from './statistics.js';

/**
 * The composition root of the redirector: the selection built from the snapshot, the GeoIP
 * lookup, the counters, and a bare `node:http` handler for the redirect and mirror-list
 * routes plus /healthz, /readyz and /metrics. No store, no bus: everything it knows comes
 * from the snapshot file, so replicas scale with nothing but that file.
 */
export interface RedirectorServiceDeps {
  config: RedirectorConfig;
  logger: Logger;
  /** Default: the MMDB files from config (or the bundled country database). */
  geo?: GeoLookup;
  /** Selection randomness; tests pass a seeded generator. */
  random?: () => number;
  /** All-in-one passes the mirrors service's, so one /metrics carries both. */
  metrics?: ServiceMetrics;
  /**
   * `file` (default): follow the snapshot file and write this process's counts beside it.
   * `push`: the caller hands snapshots over with `apply` (all-in-one, in the same process as
   * the mirrors service) and reads the counts from `statistics`.
   */
  source?: 'file' | 'push';
}

export interface RedirectorService extends ServiceInstance {
  /** The redirect and mirror-list routes only: answers and returns true, or leaves the request alone. */
  readonly handle: LeanHandler;
  readonly statistics: RedirectStatistics;
  /** Swaps in the selection built from this snapshot. */
  apply(snapshot: SelectionSnapshot): void;
  selection(): Selection;
}

export async function createRedirectorService(
  deps: RedirectorServiceDeps,
): Promise<RedirectorService> {
  const { config } = deps;
  const logger = deps.logger;
  const random = deps.random ?? Math.random;
  const metrics = deps.metrics ?? createMetrics('redirector');
  const source = deps.source ?? 'file';
  const geo =
    deps.geo ??
    (await openGeoLookup(
      { countryDb: config.geoipCountryDb, asnDb: config.geoipAsnDb },
      logger.child({ component: 'geo' }),
    ));
  const statistics = new RedirectStatistics(metrics.registry);

  let selection = emptySelection(random);
  const apply = (snapshot: SelectionSnapshot): void => {
    selection = selectionFrom(snapshot, random);
    logger.info(
      {
        writtenAt: snapshot.writtenAt,
        marker: snapshot.marker,
        mirrors: snapshot.mirrors.length,
        blobs: selection.blobs.size,
      },
      'selection snapshot loaded',
    );
  };
  const redirector = createRedirector({
    selection: () => selection,
    geo,
    trustedProxies: createAddressSet(config.trustedProxies),
    statistics,
    logger,
  });
  const readiness = new Readiness({
    snapshot: () => {
      if (selection.writtenAt === null) throw new Error('no selection snapshot loaded yet');
    },
  });
  const operational = createOperationalEndpoints({
    name: 'redirector',
    logger,
    metrics,
    readiness,
  });

  const statsFile = path.join(
    path.dirname(config.snapshotFile),
    REDIRECT_STATISTICS_DIR,
    `${hostname()}-${process.pid}.json`.replace(/[^A-Za-z0-9._-]/g, '_'),
  );
  let statsWritten = '';
  const writeStatistics = async (): Promise<void> => {
    const text = JSON.stringify(statistics.summary());
    if (text === statsWritten) return;
    await mkdir(path.dirname(statsFile), { recursive: true });
    const temp = `${statsFile}.${process.pid}.tmp`;
    await writeFile(temp, text);
    await rename(temp, statsFile);
    statsWritten = text;
  };
  const writeStatisticsLogged = (): Promise<void> =>
    writeStatistics().catch((error: unknown) =>
      logger.warn({ err: error, file: statsFile }, 'failed to write redirect statistics'),
    );

  let follower: SnapshotFollower | undefined;
  let timer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;

  return {
    name: 'redirector',
    handle: redirector.handle,
    statistics,
    apply,
    selection: () => selection,
    handler(req, res) {
      if (redirector.handle(req, res) || operational(req, res)) return;
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      writeError(
        res,
        problems.notFound('the redirector serves /pub/containers/ and /mirrorlist only'),
        {
          format: 'problem',
          instance: q === -1 ? url : url.slice(0, q),
        },
      );
    },
    start() {
      started ??= (async () => {
        if (source !== 'file') return;
        follower = followSnapshotFile({
          file: config.snapshotFile,
          pollIntervalMs: config.pollIntervalMs,
          logger: logger.child({ component: 'snapshot' }),
          onSnapshot: apply,
        });
        await follower.check();
        if (selection.writtenAt === null)
          logger.warn(
            { file: config.snapshotFile },
            'no selection snapshot yet; answering 404 until one appears',
          );
        if (config.statsIntervalMs > 0) {
          timer = setInterval(() => void writeStatisticsLogged(), config.statsIntervalMs);
          timer.unref();
        }
        logger.info({ snapshot: config.snapshotFile }, 'redirector started');
      })();
      return started;
    },
    async stop() {
      if (timer) clearInterval(timer);
      follower?.close();
      if (source === 'file' && started) await writeStatisticsLogged();
    },
    async ready() {
      await (started ?? Promise.resolve());
    },
  };
}

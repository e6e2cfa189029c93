import path from 'node:path';
import {
  bool,
  durationMs,
  host,
  int,
  loadConfig,
  port,
  sizeBytes,
  url,
  type Env,
} from '@flotilla/kit';
import { z } from 'zod';
import { DEFAULT_SELECTION_SNAPSHOT } from '@flotilla/protocol';

export const mirrorsConfigSchema = z.object({
  FLOTILLA_MIRRORS_PORT: port().default(5002),
  FLOTILLA_MIRRORS_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_PUBLISH_DIR: z.string().optional(),
  FLOTILLA_MIRRORS_MASTER_URL: url().default('http://127.0.0.1:5002/master'),
  /** Where the blob index and the crawler read the master tree: the publish directory or the master URL. */
  FLOTILLA_MIRRORS_TREE_SOURCE: z.enum(['publish-dir', 'master-url']).default('publish-dir'),
  /** Serve the publish directory at /master/ (all-in-one); off when another server carries the master. */
  FLOTILLA_MIRRORS_SERVE_MASTER: bool().default(true),
  /** Where the selection snapshot for the redirectors is written. */
  FLOTILLA_SELECTION_SNAPSHOT: z.string().optional(),
  FLOTILLA_API_TOKEN: z.string().min(1).optional(),
  FLOTILLA_MIRRORS_CRAWL_INTERVAL: durationMs().default(300_000),
  FLOTILLA_MIRRORS_CRAWL_SAMPLE: int({ min: 1, max: 100_000 }).default(32),
  FLOTILLA_MIRRORS_CRAWL_CONCURRENCY: int({ min: 1, max: 256 }).default(8),
  FLOTILLA_MIRRORS_CRAWL_TIMEOUT: durationMs().default(10_000),
  FLOTILLA_MIRRORS_TREE_POLL_INTERVAL: durationMs().default(30_000),
  /** Below this much free space on the data directory's volume, admin writes answer 507. */
  FLOTILLA_MIRRORS_MIN_FREE_BYTES: sizeBytes().default(64 * 1024 * 1024),
  MONGODB_URL: z.string().optional(),
  AMQP_URL: z.string().optional(),
});

export interface MirrorsConfig {
  host: string;
  port: number;
  dataDir: string;
  publishDir: string;
  masterUrl: string;
  treeSource: 'publish-dir' | 'master-url';
  serveMaster: boolean;
  /** The selection snapshot file (FLOTILLA_SELECTION_SNAPSHOT). */
  snapshotFile: string;
  /** The admin bearer token; without one every admin route answers 401. */
  apiToken: string | undefined;
  /** 0 = crawl only on events and on request. */
  crawlIntervalMs: number;
  crawlSample: number;
  crawlConcurrency: number;
  crawlTimeoutMs: number;
  /** 0 = no polling (events only). */
  treePollIntervalMs: number;
  /** Free-space reserve of the data directory's volume (its store and the selection snapshot). */
  minFreeBytes: number;
  mongoUrl: string | undefined;
  amqpUrl: string | undefined;
}

export function loadMirrorsConfig(env: Env = process.env): MirrorsConfig {
  const raw = loadConfig(mirrorsConfigSchema, env);
  const dataDir = path.resolve(raw.FLOTILLA_DATA_DIR);
  return {
    host: raw.FLOTILLA_MIRRORS_HOST,
    port: raw.FLOTILLA_MIRRORS_PORT,
    dataDir,
    publishDir: path.resolve(raw.FLOTILLA_PUBLISH_DIR ?? path.join(dataDir, 'publish')),
    masterUrl: raw.FLOTILLA_MIRRORS_MASTER_URL,
    treeSource: raw.FLOTILLA_MIRRORS_TREE_SOURCE,
    serveMaster: raw.FLOTILLA_MIRRORS_SERVE_MASTER,
    snapshotFile: path.resolve(
      raw.FLOTILLA_SELECTION_SNAPSHOT ?? path.join(dataDir, DEFAULT_SELECTION_SNAPSHOT),
    ),
    apiToken: raw.FLOTILLA_API_TOKEN,
    crawlIntervalMs: raw.FLOTILLA_MIRRORS_CRAWL_INTERVAL,
    crawlSample: raw.FLOTILLA_MIRRORS_CRAWL_SAMPLE,
    crawlConcurrency: raw.FLOTILLA_MIRRORS_CRAWL_CONCURRENCY,
    crawlTimeoutMs: raw.FLOTILLA_MIRRORS_CRAWL_TIMEOUT,
    treePollIntervalMs: raw.FLOTILLA_MIRRORS_TREE_POLL_INTERVAL,
    minFreeBytes: raw.FLOTILLA_MIRRORS_MIN_FREE_BYTES,
    mongoUrl: raw.MONGODB_URL,
    amqpUrl: raw.AMQP_URL,
  };
}

import path from 'node:path';
import { bool, csv, durationMs, host, int, loadConfig, port, url, type Env } from '@flotilla/kit';
import { z } from 'zod';
import { parseAddress, parseCidr, type ParsedCidr } from './selection/address.js';

/** A CIDR, or a bare address meaning /32 or /128. */
const cidrItem = z.string().transform((raw, ctx): ParsedCidr => {
  const text = raw.includes('/') ? raw : (() => {
    const address = parseAddress(raw);
    return address ? `${address.text}/${address.family === 'ipv4' ? 32 : 128}` : raw;
  })();
  const cidr = parseCidr(text);
  if (!cidr) {
    ctx.addIssue({ code: 'custom', message: 'is not an IPv4 or IPv6 CIDR' });
    return z.NEVER;
  }
  return cidr;
});

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
  FLOTILLA_TRUSTED_PROXIES: csv(cidrItem).default([]),
  FLOTILLA_API_TOKEN: z.string().min(1).optional(),
  FLOTILLA_MIRRORS_CRAWL_INTERVAL: durationMs().default(300_000),
  FLOTILLA_MIRRORS_CRAWL_SAMPLE: int({ min: 1, max: 100_000 }).default(32),
  FLOTILLA_MIRRORS_CRAWL_CONCURRENCY: int({ min: 1, max: 256 }).default(8),
  FLOTILLA_MIRRORS_CRAWL_TIMEOUT: durationMs().default(10_000),
  FLOTILLA_MIRRORS_TREE_POLL_INTERVAL: durationMs().default(30_000),
  FLOTILLA_MIRRORS_GEOIP_COUNTRY_DB: z.string().optional(),
  FLOTILLA_MIRRORS_GEOIP_ASN_DB: z.string().optional(),
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
  trustedProxies: ParsedCidr[];
  /** The admin bearer token; without one every admin route answers 401. */
  apiToken: string | undefined;
  /** 0 = crawl only on events and on request. */
  crawlIntervalMs: number;
  crawlSample: number;
  crawlConcurrency: number;
  crawlTimeoutMs: number;
  /** 0 = no polling (events only). */
  treePollIntervalMs: number;
  geoipCountryDb: string | undefined;
  geoipAsnDb: string | undefined;
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
    trustedProxies: raw.FLOTILLA_TRUSTED_PROXIES,
    apiToken: raw.FLOTILLA_API_TOKEN,
    crawlIntervalMs: raw.FLOTILLA_MIRRORS_CRAWL_INTERVAL,
    crawlSample: raw.FLOTILLA_MIRRORS_CRAWL_SAMPLE,
    crawlConcurrency: raw.FLOTILLA_MIRRORS_CRAWL_CONCURRENCY,
    crawlTimeoutMs: raw.FLOTILLA_MIRRORS_CRAWL_TIMEOUT,
    treePollIntervalMs: raw.FLOTILLA_MIRRORS_TREE_POLL_INTERVAL,
    geoipCountryDb: raw.FLOTILLA_MIRRORS_GEOIP_COUNTRY_DB,
    geoipAsnDb: raw.FLOTILLA_MIRRORS_GEOIP_ASN_DB,
    mongoUrl: raw.MONGODB_URL,
    amqpUrl: raw.AMQP_URL,
  };
}

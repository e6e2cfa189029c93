import { hostname } from 'node:os';
import path from 'node:path';
import {
  ACCESS_LOG_LEVELS,
  csv,
  durationMs,
  host,
  int,
  loadConfig,
  port,
  trustedProxies,
  url,
  type AccessLogLevel,
  type Env,
  type ParsedCidr,
} from '@flotilla/kit';
import { DEFAULT_PUBLISHED_CHANNEL, isValidChannelName } from '@flotilla/protocol';
import { z } from 'zod';

/** Every setting crane reads, by environment variable (documented in services/crane/README.md). */
export const craneConfigSchema = z.object({
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_CRANE_PORT: port().default(5001),
  FLOTILLA_CRANE_HOST: host().default('127.0.0.1'),
  FLOTILLA_PUBLISH_DIR: z.string().optional(),
  FLOTILLA_CRANE_SOURCE_URL: url().optional(),
  FLOTILLA_CRANE_CHANNEL: z
    .string()
    .refine(isValidChannelName, { message: 'must be a channel name (a lowercase word)' })
    .default(DEFAULT_PUBLISHED_CHANNEL),
  FLOTILLA_CRANE_BLOB_BASE_URL: url().default('http://127.0.0.1:5002/pub/containers'),
  FLOTILLA_CRANE_POLL_INTERVAL: durationMs().default(10_000),
  FLOTILLA_CRANE_PULP_DIR: z.string().optional(),
  FLOTILLA_CRANE_RATE_LIMIT: int({ min: 0 }).default(100),
  FLOTILLA_CRANE_RATE_BURST: int({ min: 1 }).optional(),
  FLOTILLA_TRUSTED_PROXIES: trustedProxies().default([]),
  /** One line per request at info (default), at debug, or none. */
  FLOTILLA_CRANE_ACCESS_LOG: z.enum(ACCESS_LOG_LEVELS).default('info'),
  FLOTILLA_CRANE_PROTECTED: csv().default([]),
  FLOTILLA_CRANE_HTPASSWD: z.string().optional(),
  FLOTILLA_CRANE_CLIENT_CERT_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, { message: 'must be an HTTP header name' })
    .optional(),
  FLOTILLA_CRANE_CLIENT_CERT_VALUE: z.string().default('SUCCESS'),
  FLOTILLA_CRANE_MAX_URL_LENGTH: int({ min: 256, max: 65_536 }).default(4096),
  FLOTILLA_CRANE_MAX_HEADER_SIZE: int({ min: 1024, max: 65_536 }).default(16_384),
  FLOTILLA_CRANE_HEADERS_TIMEOUT: durationMs().default(10_000),
  FLOTILLA_CRANE_REQUEST_TIMEOUT: durationMs().default(30_000),
  FLOTILLA_CRANE_TAG_MAX_AGE: int({ min: 0 }).default(30),
  FLOTILLA_CRANE_INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, {
      message: 'must be letters, digits, dot, dash or underscore',
    })
    .optional(),
  AMQP_URL: url({ protocols: ['amqp:', 'amqps:'] }).optional(),
});

export interface CraneConfig {
  host: string;
  port: number;
  /** The published tree: a directory, or (when `sourceUrl` is set) that URL instead. */
  publishDir: string;
  sourceUrl?: string;
  /** The channel whose view of the tree this instance serves (one channel per instance). */
  channel: string;
  blobBaseUrl: string;
  /** 0 disables polling. */
  pollIntervalMs: number;
  pulpDir?: string;
  /** Requests per second per client; 0 disables rate limiting. */
  rateLimit: number;
  rateBurst: number;
  trustedProxies: ParsedCidr[];
  /** Default `info`. */
  accessLog?: AccessLogLevel;
  protectedGlobs: string[];
  htpasswdFile?: string;
  clientCertHeader?: string;
  clientCertValue: string;
  maxUrlLength: number;
  maxHeaderSize: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  tagMaxAgeSeconds: number;
  /** Names this instance's reload queue, `flotilla.crane.reload.<instanceId>`. */
  instanceId: string;
  amqpUrl?: string;
}

export function loadCraneConfig(env: Env = process.env): CraneConfig {
  const raw = loadConfig(craneConfigSchema, env);
  const rate = raw.FLOTILLA_CRANE_RATE_LIMIT;
  return {
    host: raw.FLOTILLA_CRANE_HOST,
    port: raw.FLOTILLA_CRANE_PORT,
    publishDir: raw.FLOTILLA_PUBLISH_DIR ?? path.join(raw.FLOTILLA_DATA_DIR, 'publish'),
    ...(raw.FLOTILLA_CRANE_SOURCE_URL ? { sourceUrl: raw.FLOTILLA_CRANE_SOURCE_URL } : {}),
    channel: raw.FLOTILLA_CRANE_CHANNEL,
    blobBaseUrl: raw.FLOTILLA_CRANE_BLOB_BASE_URL,
    pollIntervalMs: raw.FLOTILLA_CRANE_POLL_INTERVAL,
    ...(raw.FLOTILLA_CRANE_PULP_DIR ? { pulpDir: raw.FLOTILLA_CRANE_PULP_DIR } : {}),
    rateLimit: rate,
    rateBurst: raw.FLOTILLA_CRANE_RATE_BURST ?? Math.max(1, rate * 2),
    trustedProxies: raw.FLOTILLA_TRUSTED_PROXIES,
    accessLog: raw.FLOTILLA_CRANE_ACCESS_LOG,
    protectedGlobs: raw.FLOTILLA_CRANE_PROTECTED,
    ...(raw.FLOTILLA_CRANE_HTPASSWD ? { htpasswdFile: raw.FLOTILLA_CRANE_HTPASSWD } : {}),
    ...(raw.FLOTILLA_CRANE_CLIENT_CERT_HEADER
      ? { clientCertHeader: raw.FLOTILLA_CRANE_CLIENT_CERT_HEADER }
      : {}),
    clientCertValue: raw.FLOTILLA_CRANE_CLIENT_CERT_VALUE,
    maxUrlLength: raw.FLOTILLA_CRANE_MAX_URL_LENGTH,
    maxHeaderSize: raw.FLOTILLA_CRANE_MAX_HEADER_SIZE,
    headersTimeoutMs: raw.FLOTILLA_CRANE_HEADERS_TIMEOUT,
    requestTimeoutMs: raw.FLOTILLA_CRANE_REQUEST_TIMEOUT,
    tagMaxAgeSeconds: raw.FLOTILLA_CRANE_TAG_MAX_AGE,
    instanceId:
      raw.FLOTILLA_CRANE_INSTANCE_ID ??
      hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 100),
    ...(raw.AMQP_URL ? { amqpUrl: raw.AMQP_URL } : {}),
  };
}

import path from 'node:path';
import { z } from 'zod';
import {
  ConfigError,
  csv,
  durationMs,
  host,
  int,
  loadConfig,
  port,
  sizeBytes,
} from '@flotilla/kit';

const CHANNEL_NAME = /^[a-z][a-z0-9-]{0,63}$/;

/**
 * The `…_SECONDS` settings take kit durations (`30s`, `1h`); a bare number still means whole
 * seconds, as these settings were documented.
 */
const seconds = (fallback: number, min: number, max: number) =>
  durationMs({ bareUnit: 's', minMs: min * 1000, maxMs: max * 1000 })
    .transform((ms) => Math.round(ms / 1000))
    .default(fallback);

/** One channel may require that content already be in another before it is promoted in. */
export const channelPolicySchema = z.record(
  z.string().regex(CHANNEL_NAME),
  z.object({ requires: z.string().regex(CHANNEL_NAME) }).strict(),
);
export type ChannelPolicy = z.infer<typeof channelPolicySchema>;

const policyFromEnv = z
  .string()
  .default('{"stable":{"requires":"testing"}}')
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'must be JSON like {"stable":{"requires":"testing"}}',
      });
      return z.NEVER;
    }
  })
  .pipe(channelPolicySchema);

const trustedByRepositoryFromEnv = z
  .string()
  .default('{}')
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'must be JSON like {"fedora/httpd":["/etc/flotilla/httpd-build.pub"]}',
      });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().min(1), z.array(z.string().min(1))));

/** The environment content reads (zod over env names; validated once at start). */
export const contentConfigSchema = z.object({
  FLOTILLA_CONTENT_PORT: port().default(5003),
  FLOTILLA_CONTENT_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().min(1).default('./var'),
  FLOTILLA_PUBLISH_DIR: z.string().min(1).optional(),
  FLOTILLA_REGISTRY_URL: z.url().default('http://127.0.0.1:5000'),
  /** The mirrors API the console reaches through content (packages/console). */
  FLOTILLA_MIRRORS_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:5002'),
  FLOTILLA_REGISTRY_USERNAME: z.string().min(1).default('admin'),
  FLOTILLA_REGISTRY_PASSWORD: z.string().min(1).optional(),
  FLOTILLA_ADMIN_PASSWORD: z.string().min(1).optional(),
  FLOTILLA_API_TOKEN: z.string().min(1).optional(),
  FLOTILLA_CONTENT_READ_TOKENS: csv().default([]),
  FLOTILLA_WEBHOOK_SECRET: z.string().min(1).optional(),
  FLOTILLA_CONTENT_CHANNELS: csv(z.string().regex(CHANNEL_NAME, 'is not a lowercase word'))
    .refine((channels) => channels.length > 0, 'must name at least one channel')
    .default(['candidate', 'testing', 'stable']),
  FLOTILLA_CONTENT_POLICY: policyFromEnv,
  FLOTILLA_CONTENT_RETAIN_PUBLICATIONS: int({ min: 1, max: 10_000 }).default(5),
  FLOTILLA_CONTENT_BLOB_GRACE_SECONDS: seconds(3600, 0, 365 * 86_400),
  FLOTILLA_CONTENT_SYNC_CONCURRENCY: int({ min: 1, max: 64 }).default(16),
  FLOTILLA_CONTENT_WORKERS: int({ min: 0, max: 32 }).default(2),
  FLOTILLA_CONTENT_TASK_LEASE_SECONDS: seconds(30, 2, 3600),
  FLOTILLA_WEBHOOK_MAX_SKEW_SECONDS: seconds(300, 1, 3600),
  FLOTILLA_CONTENT_KEEP_VERSIONS: int({ min: 1, max: 1_000_000 }).default(10),
  FLOTILLA_CONTENT_GC_GRACE: durationMs().default(3_600_000),
  FLOTILLA_CONTENT_GC_INTERVAL: durationMs().default(86_400_000),
  FLOTILLA_CONTENT_RECONCILE_INTERVAL: durationMs().default(600_000),
  FLOTILLA_CONTENT_MIN_FREE_BYTES: sizeBytes().default(64 * 1024 * 1024),
  /** `none` turns signing on promotion off (a blank variable means the default, like every other). */
  FLOTILLA_CONTENT_SIGNING_CHANNELS: csv(z.string().regex(CHANNEL_NAME, 'is not a lowercase word'))
    .transform((list) => (list.length === 1 && list[0] === 'none' ? [] : list))
    .default(['stable']),
  FLOTILLA_CONTENT_SIGNING_KEY: z.string().min(1).optional(),
  FLOTILLA_CONTENT_SIGNING_PASSPHRASE: z.string().optional(),
  FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE: z.string().min(1).optional(),
  FLOTILLA_CONTENT_RETIRED_KEYS: csv().default([]),
  FLOTILLA_CONTENT_SIGNING_IDENTITY: z
    .string()
    .regex(
      /^[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[a-z0-9._/-]+)?$/,
      'a registry host[:port], optionally with a path prefix',
    )
    .default('127.0.0.1:5001'),
  FLOTILLA_CONTENT_TRUSTED_KEYS: csv().default([]),
  FLOTILLA_CONTENT_TRUSTED_KEYS_BY_REPOSITORY: trustedByRepositoryFromEnv,
  MONGODB_URL: z.string().min(1).optional(),
  AMQP_URL: z.string().min(1).optional(),
});

export interface SigningConfig {
  /** Promotion into these channels signs what it promotes. */
  channels: string[];
  /** The current key (encrypted sigstore PEM); unset = `<dataDir>/secrets/signing-key`, generated. */
  keyFile?: string;
  passphrase?: string;
  passphraseFile?: string;
  /** Public keys of former signing keys: still published, still named in `flotilla repos`. */
  retiredKeyFiles: string[];
  /** `<identity>/<repository>` is the reference each signature names. */
  identity: string;
  /** Build keys promotion into a signing channel requires (every repository without its own). */
  trustedKeyFiles: string[];
  trustedKeyFilesByRepository: Record<string, string[]>;
}

export interface ContentConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Content-addressed store of everything synced: `<dataDir>/content`. */
  contentDir: string;
  publishDir: string;
  registry: { url: string; username: string; password?: string };
  /** The mirrors service's base URL: the console's pages about mirrors are forwarded there. */
  mirrorsUrl: string;
  /** Admin bearer token; main fills it from the secrets dir when unset. */
  apiToken?: string;
  readTokens: string[];
  webhookSecret?: string;
  /** Ordered: content moves from each channel to the next. The first receives syncs. */
  channels: string[];
  policy: ChannelPolicy;
  retainPublications: number;
  blobGraceSeconds: number;
  syncConcurrency: number;
  /** Tasks one process runs at once; 0 makes a process that only serves the API. */
  workers: number;
  taskLeaseSeconds: number;
  /** Channel versions gc keeps per channel (newest first), besides any a publication needs. */
  keepVersions: number;
  /** gc keeps records and files used more recently than this (milliseconds). */
  gcGraceMs: number;
  /** How often a gc task is queued; 0 = only on request. */
  gcIntervalMs: number;
  /** How often (and at start) the registry is compared with candidate; 0 = never. */
  reconcileIntervalMs: number;
  webhookMaxSkewSeconds: number;
  /** The content store and the published tree refuse writes while their volume has less free space (default 0 when unset here; the env default is 64 MiB). */
  minFreeBytes?: number;
  signing: SigningConfig;
  mongoUrl?: string;
  amqpUrl?: string;
}

export function loadContentConfig(env: NodeJS.ProcessEnv = process.env): ContentConfig {
  const raw = loadConfig(contentConfigSchema, env);
  const dataDir = path.resolve(raw.FLOTILLA_DATA_DIR);
  for (const [channel, rule] of Object.entries(raw.FLOTILLA_CONTENT_POLICY)) {
    if (
      !raw.FLOTILLA_CONTENT_CHANNELS.includes(channel) ||
      !raw.FLOTILLA_CONTENT_CHANNELS.includes(rule.requires)
    ) {
      throw new ConfigError(
        `invalid configuration: FLOTILLA_CONTENT_POLICY names channel ${channel} or ${rule.requires}, not in FLOTILLA_CONTENT_CHANNELS`,
        ['FLOTILLA_CONTENT_POLICY'],
      );
    }
  }
  for (const channel of raw.FLOTILLA_CONTENT_SIGNING_CHANNELS) {
    if (!raw.FLOTILLA_CONTENT_CHANNELS.includes(channel)) {
      throw new ConfigError(
        `invalid configuration: FLOTILLA_CONTENT_SIGNING_CHANNELS names ${channel}, not in FLOTILLA_CONTENT_CHANNELS`,
        ['FLOTILLA_CONTENT_SIGNING_CHANNELS'],
      );
    }
  }
  if (
    raw.FLOTILLA_CONTENT_SIGNING_KEY &&
    raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE === undefined &&
    !raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE
  ) {
    throw new ConfigError(
      'invalid configuration: FLOTILLA_CONTENT_SIGNING_KEY needs FLOTILLA_CONTENT_SIGNING_PASSPHRASE or FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE',
      ['FLOTILLA_CONTENT_SIGNING_KEY'],
    );
  }
  return {
    port: raw.FLOTILLA_CONTENT_PORT,
    host: raw.FLOTILLA_CONTENT_HOST,
    dataDir,
    contentDir: path.join(dataDir, 'content'),
    publishDir: path.resolve(raw.FLOTILLA_PUBLISH_DIR ?? path.join(dataDir, 'publish')),
    registry: {
      url: raw.FLOTILLA_REGISTRY_URL,
      username: raw.FLOTILLA_REGISTRY_USERNAME,
      password: raw.FLOTILLA_REGISTRY_PASSWORD ?? raw.FLOTILLA_ADMIN_PASSWORD,
    },
    mirrorsUrl: raw.FLOTILLA_MIRRORS_URL,
    apiToken: raw.FLOTILLA_API_TOKEN,
    readTokens: raw.FLOTILLA_CONTENT_READ_TOKENS,
    webhookSecret: raw.FLOTILLA_WEBHOOK_SECRET,
    channels: [...new Set(raw.FLOTILLA_CONTENT_CHANNELS)],
    policy: raw.FLOTILLA_CONTENT_POLICY,
    retainPublications: raw.FLOTILLA_CONTENT_RETAIN_PUBLICATIONS,
    blobGraceSeconds: raw.FLOTILLA_CONTENT_BLOB_GRACE_SECONDS,
    syncConcurrency: raw.FLOTILLA_CONTENT_SYNC_CONCURRENCY,
    workers: raw.FLOTILLA_CONTENT_WORKERS,
    taskLeaseSeconds: raw.FLOTILLA_CONTENT_TASK_LEASE_SECONDS,
    keepVersions: raw.FLOTILLA_CONTENT_KEEP_VERSIONS,
    gcGraceMs: raw.FLOTILLA_CONTENT_GC_GRACE,
    gcIntervalMs: raw.FLOTILLA_CONTENT_GC_INTERVAL,
    reconcileIntervalMs: raw.FLOTILLA_CONTENT_RECONCILE_INTERVAL,
    webhookMaxSkewSeconds: raw.FLOTILLA_WEBHOOK_MAX_SKEW_SECONDS,
    minFreeBytes: raw.FLOTILLA_CONTENT_MIN_FREE_BYTES,
    signing: {
      channels: raw.FLOTILLA_CONTENT_SIGNING_CHANNELS,
      ...(raw.FLOTILLA_CONTENT_SIGNING_KEY
        ? { keyFile: path.resolve(raw.FLOTILLA_CONTENT_SIGNING_KEY) }
        : {}),
      ...(raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE !== undefined
        ? { passphrase: raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE }
        : {}),
      ...(raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE
        ? { passphraseFile: path.resolve(raw.FLOTILLA_CONTENT_SIGNING_PASSPHRASE_FILE) }
        : {}),
      retiredKeyFiles: raw.FLOTILLA_CONTENT_RETIRED_KEYS.map((f) => path.resolve(f)),
      identity: raw.FLOTILLA_CONTENT_SIGNING_IDENTITY,
      trustedKeyFiles: raw.FLOTILLA_CONTENT_TRUSTED_KEYS.map((f) => path.resolve(f)),
      trustedKeyFilesByRepository: Object.fromEntries(
        Object.entries(raw.FLOTILLA_CONTENT_TRUSTED_KEYS_BY_REPOSITORY).map(([r, files]) => [
          r,
          files.map((f) => path.resolve(f)),
        ]),
      ),
    },
    mongoUrl: raw.MONGODB_URL,
    amqpUrl: raw.AMQP_URL,
  };
}

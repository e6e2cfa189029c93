import {
  ACCESS_LOG_LEVELS,
  bool,
  durationMs,
  host,
  loadConfig,
  logLevel,
  port,
  sizeBytes,
  trustedProxies,
  url,
  type AccessLogLevel,
  type Env,
  type ParsedCidr,
} from '@flotilla/kit';
import { z } from 'zod';
import { defaultStorageDirectory } from './storage/paths.js';

/** GC's default grace period (Harbor protects the last two hours too). */
export const DEFAULT_GC_GRACE_MS = 2 * 3_600_000;

/** Free bytes the storage volume keeps: below them uploads and manifest puts answer 507. */
export const DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024;

/** The registry's environment (documented in services/registry/README.md). */
export const registryConfigSchema = z.object({
  FLOTILLA_REGISTRY_PORT: port().default(5000),
  FLOTILLA_REGISTRY_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_REGISTRY_STORAGE_DIR: z.string().optional(),
  FLOTILLA_REGISTRY_DELETE_ENABLED: bool().default(true),
  FLOTILLA_REGISTRY_UPLOAD_TTL: durationMs().default(24 * 3_600_000),
  FLOTILLA_REGISTRY_MIN_FREE_BYTES: sizeBytes().default(DEFAULT_MIN_FREE_BYTES),
  FLOTILLA_REGISTRY_GC_GRACE: durationMs().default(DEFAULT_GC_GRACE_MS),
  FLOTILLA_ADMIN_PASSWORD: z.string().optional(),
  FLOTILLA_REGISTRY_HTPASSWD: z.string().optional(),
  FLOTILLA_REGISTRY_ACCESS_FILE: z.string().optional(),
  FLOTILLA_REGISTRY_AUTH_RELOAD_INTERVAL: durationMs().default(5_000),
  FLOTILLA_REGISTRY_ANONYMOUS_PULL: bool().default(true),
  AMQP_URL: url({ protocols: ['amqp:', 'amqps:'] }).optional(),
  /** Replicas over one shared storage directory share their outbox and leases here. */
  MONGODB_URL: z.string().optional(),
  LOG_LEVEL: logLevel().optional(),
  /** One line per request at info (default), at debug, or none. */
  FLOTILLA_REGISTRY_ACCESS_LOG: z.enum(ACCESS_LOG_LEVELS).default('info'),
  /** Peers whose X-Forwarded-For the access log believes (CIDRs or addresses). */
  FLOTILLA_TRUSTED_PROXIES: trustedProxies().default([]),
});

export interface RegistryConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Root of blobs/ and repositories/ (default `$FLOTILLA_DATA_DIR/registry`). */
  storageDir: string;
  deleteEnabled: boolean;
  uploadTtlMs: number;
  /** Uploads and manifest puts are refused (507) while the storage volume has less free space (default 0 when unset here; the env default is 64 MiB). */
  minFreeBytes?: number | undefined;
  /** GC never sweeps a blob younger than this, nor one linked more recently: a push in progress finishes (default 2 h). */
  gcGraceMs?: number | undefined;
  /** The `admin` user's password; main fills it from the secrets dir when unset. */
  adminPassword?: string | undefined;
  htpasswdFile?: string | undefined;
  accessFile?: string | undefined;
  /** How often the htpasswd and access files are checked for changes; 0 = never. */
  authReloadIntervalMs: number;
  anonymousPull: boolean;
  amqpUrl?: string | undefined;
  /** The shared store of replicas (outbox, leases); unset: an embedded outbox under the storage, one process. */
  mongoUrl?: string | undefined;
  logLevel?: string | undefined;
  /** Default `info`. */
  accessLog?: AccessLogLevel;
  /** Default none. */
  trustedProxies?: ParsedCidr[];
}

export function loadRegistryConfig(env: Env = process.env): RegistryConfig {
  const raw = loadConfig(registryConfigSchema, env);
  return {
    port: raw.FLOTILLA_REGISTRY_PORT,
    host: raw.FLOTILLA_REGISTRY_HOST,
    dataDir: raw.FLOTILLA_DATA_DIR,
    storageDir: raw.FLOTILLA_REGISTRY_STORAGE_DIR ?? defaultStorageDirectory(raw.FLOTILLA_DATA_DIR),
    deleteEnabled: raw.FLOTILLA_REGISTRY_DELETE_ENABLED,
    uploadTtlMs: raw.FLOTILLA_REGISTRY_UPLOAD_TTL,
    minFreeBytes: raw.FLOTILLA_REGISTRY_MIN_FREE_BYTES,
    gcGraceMs: raw.FLOTILLA_REGISTRY_GC_GRACE,
    adminPassword: raw.FLOTILLA_ADMIN_PASSWORD,
    htpasswdFile: raw.FLOTILLA_REGISTRY_HTPASSWD,
    accessFile: raw.FLOTILLA_REGISTRY_ACCESS_FILE,
    authReloadIntervalMs: raw.FLOTILLA_REGISTRY_AUTH_RELOAD_INTERVAL,
    anonymousPull: raw.FLOTILLA_REGISTRY_ANONYMOUS_PULL,
    amqpUrl: raw.AMQP_URL,
    mongoUrl: raw.MONGODB_URL,
    logLevel: raw.LOG_LEVEL,
    accessLog: raw.FLOTILLA_REGISTRY_ACCESS_LOG,
    trustedProxies: raw.FLOTILLA_TRUSTED_PROXIES,
  };
}

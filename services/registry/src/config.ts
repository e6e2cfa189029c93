import {
  ACCESS_LOG_LEVELS,
  bool,
  csv,
  durationMs,
  host,
  loadConfig,
  logLevel,
  parseTrustedProxies,
  port,
  url,
  type AccessLogLevel,
  type Env,
} from '@flotilla/kit';
import { z } from 'zod';
import { defaultStorageDirectory } from './storage/paths.js';

const trustedProxy = z.string().refine(
  (entry) => {
    try {
      parseTrustedProxies([entry]);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected CIDRs or addresses, e.g. 10.0.0.0/8,2001:db8::/32' },
);

/** The registry's environment (documented in services/registry/README.md). */
export const registryConfigSchema = z.object({
  FLOTILLA_REGISTRY_PORT: port().default(5000),
  FLOTILLA_REGISTRY_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_REGISTRY_STORAGE_DIR: z.string().optional(),
  FLOTILLA_REGISTRY_DELETE_ENABLED: bool().default(true),
  FLOTILLA_REGISTRY_UPLOAD_TTL: durationMs().default(24 * 3_600_000),
  FLOTILLA_ADMIN_PASSWORD: z.string().optional(),
  FLOTILLA_REGISTRY_HTPASSWD: z.string().optional(),
  FLOTILLA_REGISTRY_ACCESS_FILE: z.string().optional(),
  FLOTILLA_REGISTRY_AUTH_RELOAD_INTERVAL: durationMs().default(5_000),
  FLOTILLA_REGISTRY_ANONYMOUS_PULL: bool().default(true),
  AMQP_URL: url({ protocols: ['amqp:', 'amqps:'] }).optional(),
  LOG_LEVEL: logLevel().optional(),
  /** One line per request at info (default), at debug, or none. */
  FLOTILLA_REGISTRY_ACCESS_LOG: z.enum(ACCESS_LOG_LEVELS).default('info'),
  /** Peers whose X-Forwarded-For the access log believes (CIDRs or addresses). */
  FLOTILLA_TRUSTED_PROXIES: csv(trustedProxy).default([]),
});

export interface RegistryConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Root of blobs/ and repositories/ (default `$FLOTILLA_DATA_DIR/registry`). */
  storageDir: string;
  deleteEnabled: boolean;
  uploadTtlMs: number;
  /** The `admin` user's password; main fills it from the secrets dir when unset. */
  adminPassword?: string | undefined;
  htpasswdFile?: string | undefined;
  accessFile?: string | undefined;
  /** How often the htpasswd and access files are checked for changes; 0 = never. */
  authReloadIntervalMs: number;
  anonymousPull: boolean;
  amqpUrl?: string | undefined;
  logLevel?: string | undefined;
  /** Default `info`. */
  accessLog?: AccessLogLevel;
  /** Default none. */
  trustedProxies?: string[];
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
    adminPassword: raw.FLOTILLA_ADMIN_PASSWORD,
    htpasswdFile: raw.FLOTILLA_REGISTRY_HTPASSWD,
    accessFile: raw.FLOTILLA_REGISTRY_ACCESS_FILE,
    authReloadIntervalMs: raw.FLOTILLA_REGISTRY_AUTH_RELOAD_INTERVAL,
    anonymousPull: raw.FLOTILLA_REGISTRY_ANONYMOUS_PULL,
    amqpUrl: raw.AMQP_URL,
    logLevel: raw.LOG_LEVEL,
    accessLog: raw.FLOTILLA_REGISTRY_ACCESS_LOG,
    trustedProxies: raw.FLOTILLA_TRUSTED_PROXIES,
  };
}

import path from 'node:path';
import {
  durationMs,
  host,
  loadConfig,
  port,
  trustedProxies,
  type Env,
  type ParsedCidr,
} from '@flotilla/kit';
import { DEFAULT_SELECTION_SNAPSHOT } from '@flotilla/protocol';
import { z } from 'zod';

/** Every setting the redirector reads (documented in services/redirector/README.md). No database. */
export const redirectorConfigSchema = z.object({
  FLOTILLA_REDIRECTOR_PORT: port().default(5004),
  FLOTILLA_REDIRECTOR_HOST: host().default('127.0.0.1'),
  FLOTILLA_DATA_DIR: z.string().default('./var'),
  FLOTILLA_SELECTION_SNAPSHOT: z.string().optional(),
  FLOTILLA_REDIRECTOR_POLL_INTERVAL: durationMs().default(5_000),
  FLOTILLA_REDIRECTOR_STATS_INTERVAL: durationMs().default(10_000),
  FLOTILLA_TRUSTED_PROXIES: trustedProxies().default([]),
  FLOTILLA_MIRRORS_GEOIP_COUNTRY_DB: z.string().optional(),
  FLOTILLA_MIRRORS_GEOIP_ASN_DB: z.string().optional(),
});

export interface RedirectorConfig {
  host: string;
  port: number;
  /** The selection snapshot the mirrors service writes. */
  snapshotFile: string;
  /** How often the snapshot file is checked besides fs.watch; 0 = watch only. */
  pollIntervalMs: number;
  /** How often this process writes its counts for the mirrors service; 0 = only at stop. */
  statsIntervalMs: number;
  trustedProxies: ParsedCidr[];
  geoipCountryDb: string | undefined;
  geoipAsnDb: string | undefined;
}

export function loadRedirectorConfig(env: Env = process.env): RedirectorConfig {
  const raw = loadConfig(redirectorConfigSchema, env);
  return {
    host: raw.FLOTILLA_REDIRECTOR_HOST,
    port: raw.FLOTILLA_REDIRECTOR_PORT,
    snapshotFile: path.resolve(
      raw.FLOTILLA_SELECTION_SNAPSHOT ??
        path.join(raw.FLOTILLA_DATA_DIR, DEFAULT_SELECTION_SNAPSHOT),
    ),
    pollIntervalMs: raw.FLOTILLA_REDIRECTOR_POLL_INTERVAL,
    statsIntervalMs: raw.FLOTILLA_REDIRECTOR_STATS_INTERVAL,
    trustedProxies: raw.FLOTILLA_TRUSTED_PROXIES,
    geoipCountryDb: raw.FLOTILLA_MIRRORS_GEOIP_COUNTRY_DB,
    geoipAsnDb: raw.FLOTILLA_MIRRORS_GEOIP_ASN_DB,
  };
}

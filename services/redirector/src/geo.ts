import { createRequire } from 'node:module';
import path from 'node:path';
import maxmind, { type Reader, type Response } from 'maxmind';
import type { Logger } from 'pino';
import type { ParsedAddress } from '@flotilla/kit';

/**
 * Offline GeoIP and ASN: the client's country (for the country and continent tiers) and its
 * autonomous system (for the ASN tier), read from MMDB files with the `maxmind` reader, which
 * memory-maps nothing and needs no network. The country database ships with the service
 * (@ip-location-db/geo-whois-asn-country-mmdb, CC0 / CC BY 4.0 data); no npm package of that
 * family ships an ASN MMDB, so the ASN tier needs a configured file (MaxMind's GeoLite2-ASN
 * or any MMDB with `autonomous_system_number`). Both paths can point at MaxMind GeoLite2
 * files instead (`country.iso_code`).
 */
export interface GeoInfo {
  /** Upper-case ISO 3166-1 alpha-2, or `null`. */
  country: string | null;
  asn: number | null;
}

export interface GeoLookup {
  lookup(address: ParsedAddress): GeoInfo;
}

export const NO_GEO: GeoLookup = { lookup: () => ({ country: null, asn: null }) };

/** The country MMDB shipped by the npm package, resolved from this module. */
export function bundledCountryDatabase(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json');
  return path.join(path.dirname(manifest), 'geo-whois-asn-country.mmdb');
}

type CountryRecord = Response & {
  country_code?: string;
  country?: { iso_code?: string };
  registered_country?: { iso_code?: string };
};
type AsnRecord = Response & { autonomous_system_number?: number; asn?: number | string };

function countryOf(record: CountryRecord | null): string | null {
  const code =
    record?.country_code ?? record?.country?.iso_code ?? record?.registered_country?.iso_code;
  return typeof code === 'string' && /^[A-Za-z]{2}$/.test(code) ? code.toUpperCase() : null;
}

function asnOf(record: AsnRecord | null): number | null {
  const raw = record?.autonomous_system_number ?? record?.asn;
  const value = typeof raw === 'string' ? Number(raw.replace(/^AS/i, '')) : raw;
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : null;
}

export interface GeoDatabases {
  /** Country MMDB; default: the bundled one. */
  countryDb?: string;
  /** ASN MMDB; none by default. */
  asnDb?: string;
}

export async function openGeoLookup(databases: GeoDatabases, logger: Logger): Promise<GeoLookup> {
  const countryPath = databases.countryDb ?? bundledCountryDatabase();
  const countries: Reader<CountryRecord> = await maxmind.open<CountryRecord>(countryPath, {
    watchForUpdates: false,
  });
  const asns: Reader<AsnRecord> | null = databases.asnDb
    ? await maxmind.open<AsnRecord>(databases.asnDb, { watchForUpdates: false })
    : null;
  logger.info({ countryDb: countryPath, asnDb: databases.asnDb ?? null }, 'geoip databases loaded');
  return {
    lookup(address) {
      return {
        country: countryOf(countries.get(address.text)),
        asn: asns ? asnOf(asns.get(address.text)) : null,
      };
    },
  };
}

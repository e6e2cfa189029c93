import type { RedirectStatisticsSummary } from '@flotilla/protocol';
import { Counter, type Registry } from 'prom-client';
import type { Tier } from './selection/selector.js';

/**
 * Redirect counters. The hot path only bumps a number in a Map keyed by mirror and client
 * country; Prometheus' counter is brought up to date when it is scraped (`collect`), so a
 * redirect never hashes a label set.
 */
export type StatisticsSummary = RedirectStatisticsSummary;

const UNKNOWN_COUNTRY = '--';

export class RedirectStatistics {
  /** mirror → client country → redirects. */
  private readonly counts = new Map<string, Map<string, number>>();
  /** Already handed to Prometheus, keyed `mirror\u0000country`. */
  private readonly reported = new Map<string, number>();
  private readonly tiers = new Map<Tier, number>();
  private total = 0;
  private misses = 0;
  private reportedMisses = 0;
  private readonly since = new Date().toISOString();

  constructor(registry?: Registry) {
    if (!registry) return;
    const { counts, reported } = this;
    const takeMisses = (): number => {
      const delta = this.misses - this.reportedMisses;
      this.reportedMisses = this.misses;
      return delta;
    };
    new Counter({
      name: 'flotilla_mirrors_redirects_total',
      help: 'Blob redirects by target mirror and client country (-- when unknown)',
      labelNames: ['mirror', 'country'],
      registers: [registry],
      collect() {
        for (const [mirror, byCountry] of counts) {
          for (const [country, count] of byCountry) {
            const key = `${mirror}\u0000${country}`;
            const delta = count - (reported.get(key) ?? 0);
            if (delta <= 0) continue;
            this.inc({ mirror, country }, delta);
            reported.set(key, count);
          }
        }
      },
    });
    new Counter({
      name: 'flotilla_mirrors_blob_not_found_total',
      help: 'Redirect requests for blobs in no publication',
      registers: [registry],
      collect() {
        const delta = takeMisses();
        if (delta > 0) this.inc(delta);
      },
    });
  }

  record(mirror: string, country: string | null, tier: Tier): void {
    let byCountry = this.counts.get(mirror);
    if (byCountry === undefined) {
      byCountry = new Map();
      this.counts.set(mirror, byCountry);
    }
    const key = country ?? UNKNOWN_COUNTRY;
    byCountry.set(key, (byCountry.get(key) ?? 0) + 1);
    this.tiers.set(tier, (this.tiers.get(tier) ?? 0) + 1);
    this.total += 1;
  }

  recordNotFound(): void {
    this.misses += 1;
  }

  summary(): StatisticsSummary {
    const byMirror: Record<string, number> = {};
    const byCountry: Record<string, number> = {};
    for (const [mirror, countries] of this.counts) {
      for (const [country, count] of countries) {
        byMirror[mirror] = (byMirror[mirror] ?? 0) + count;
        byCountry[country] = (byCountry[country] ?? 0) + count;
      }
    }
    return {
      since: this.since,
      redirects: this.total,
      notFound: this.misses,
      byMirror,
      byCountry,
      byTier: Object.fromEntries(this.tiers),
    };
  }
}

import { Counter, type Registry } from 'prom-client';
import type { Tier } from './selection/selector.js';

/**
 * Redirect counters. The hot path only bumps a number in a Map keyed by mirror and client
 * country; Prometheus' counter is brought up to date when it is scraped (`collect`), so a
 * redirect never hashes a label set.
 */
export interface StatisticsSummary {
  since: string;
  redirects: number;
  notFound: number;
  byMirror: Record<string, number>;
  byCountry: Record<string, number>;
  byTier: Record<string, number>;
}

/** Counts gathered elsewhere (the redirect thread) since the last hand-over; plain data. */
export interface StatisticsDelta {
  /** [mirror, client country, redirects] */
  redirects: Array<[string, string, number]>;
  /** [tier, redirects] */
  tiers: Array<[Tier, number]>;
  notFound: number;
}

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

  /** Whether Prometheus counters read this instance (then its counts never go back to zero). */
  private readonly exported: boolean;

  constructor(registry?: Registry) {
    this.exported = registry !== undefined;
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
    this.count(mirror, country ?? UNKNOWN_COUNTRY, 1);
    this.tiers.set(tier, (this.tiers.get(tier) ?? 0) + 1);
  }

  private count(mirror: string, country: string, redirects: number): void {
    let byCountry = this.counts.get(mirror);
    if (byCountry === undefined) {
      byCountry = new Map();
      this.counts.set(mirror, byCountry);
    }
    byCountry.set(country, (byCountry.get(country) ?? 0) + redirects);
    this.total += redirects;
  }

  recordNotFound(): void {
    this.misses += 1;
  }

  /** Adds counts gathered elsewhere; the Prometheus counters pick them up at the next scrape. */
  add(delta: StatisticsDelta): void {
    for (const [mirror, country, redirects] of delta.redirects) this.count(mirror, country, redirects);
    for (const [tier, count] of delta.tiers) this.tiers.set(tier, (this.tiers.get(tier) ?? 0) + count);
    this.misses += delta.notFound;
  }

  /**
   * Everything counted since the last call, which starts the next delta at zero; for an instance
   * that only counts (no registry) and hands its counts to another with `add`.
   */
  takeDelta(): StatisticsDelta {
    if (this.exported) throw new Error('takeDelta on statistics that Prometheus reads');
    const redirects: Array<[string, string, number]> = [];
    for (const [mirror, byCountry] of this.counts) {
      for (const [country, count] of byCountry) redirects.push([mirror, country, count]);
    }
    const delta: StatisticsDelta = { redirects, tiers: [...this.tiers], notFound: this.misses };
    this.counts.clear();
    this.tiers.clear();
    this.total = 0;
    this.misses = 0;
    return delta;
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

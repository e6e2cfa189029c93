/**
 * A token bucket per client: `rate` tokens per second, up to `burst`. Idle buckets that have
 * refilled are dropped on a sweep, so memory follows the number of recently active clients.
 */
export interface RateLimiter {
  /** 0 when the request may go ahead, else the seconds to wait (for `Retry-After`). */
  take(client: string): number;
  /** Drops buckets that are full again; called periodically. */
  sweep(): void;
  readonly size: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

export function createRateLimiter(options: {
  rate: number;
  burst: number;
  now?: () => number;
}): RateLimiter {
  const { rate, burst } = options;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, Bucket>();
  return {
    take(client) {
      const t = now();
      let bucket = buckets.get(client);
      if (bucket === undefined) {
        bucket = { tokens: burst, updated: t };
        buckets.set(client, bucket);
      } else {
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.updated) / 1000) * rate);
        bucket.updated = t;
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / rate));
    },
    sweep() {
      const t = now();
      for (const [client, bucket] of buckets) {
        if (bucket.tokens + ((t - bucket.updated) / 1000) * rate >= burst) buckets.delete(client);
      }
    },
    get size() {
      return buckets.size;
    },
  };
}

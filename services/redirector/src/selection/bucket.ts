/**
 * A bucket is one tier's candidates for one address family, sorted by verified publication,
 * newest first, with running bandwidth totals. The mirrors that hold publication `p` are then
 * a prefix of the array (found by binary search), and a bandwidth-weighted pick among them is
 * one random number and a second binary search over the running totals: no allocation, no
 * filtering per request.
 */
export interface Weighted {
  readonly publication: number;
  readonly bandwidth: number;
}

export interface Bucket<M extends Weighted> {
  readonly mirrors: readonly M[];
  /** `publications[i]` = `mirrors[i].publication`, non-increasing. */
  readonly publications: readonly number[];
  /** `cumulative[i]` = bandwidth of `mirrors[0..i]`. */
  readonly cumulative: readonly number[];
}

export function buildBucket<M extends Weighted>(
  mirrors: readonly M[],
  tieBreak: (a: M, b: M) => number,
): Bucket<M> {
  const sorted = [...mirrors].sort((a, b) => b.publication - a.publication || tieBreak(a, b));
  // Plain arrays: thousands of tiny typed arrays cost more to allocate and collect.
  const publications: number[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const mirror of sorted) {
    publications.push(mirror.publication);
    total += mirror.bandwidth;
    cumulative.push(total);
  }
  return { mirrors: sorted, publications, cumulative };
}

/** How many mirrors of the bucket hold publication `required` (they come first). */
export function countHolding(bucket: Bucket<Weighted>, required: number): number {
  const pubs = bucket.publications;
  let lo = 0;
  let hi = pubs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pubs[mid]! >= required) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One of the first `count` mirrors, with probability proportional to its bandwidth. */
export function pickWeighted<M extends Weighted>(
  bucket: Bucket<M>,
  count: number,
  random: () => number,
): M {
  const cumulative = bucket.cumulative;
  const target = random() * cumulative[count - 1]!;
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cumulative[mid]! > target) hi = mid;
    else lo = mid + 1;
  }
  return bucket.mirrors[lo]!;
}

/**
 * The first `count` mirrors in a bandwidth-weighted random order (Efraimidis–Spirakis: each
 * gets the key u^(1/w); descending keys). The head of this order has the same distribution
 * as `pickWeighted`.
 */
export function weightedOrder<M extends Weighted>(
  bucket: Bucket<M>,
  count: number,
  random: () => number,
): M[] {
  const keyed: Array<{ mirror: M; key: number }> = [];
  for (let i = 0; i < count; i += 1) {
    const mirror = bucket.mirrors[i]!;
    keyed.push({ mirror, key: Math.log(random()) / mirror.bandwidth });
  }
  keyed.sort((a, b) => b.key - a.key);
  return keyed.map((entry) => entry.mirror);
}

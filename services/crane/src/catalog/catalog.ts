import type { PulpRepository } from './pulp.js';
import { compareCodeUnits, type RepositoryView } from './repository.js';

/**
 * Everything crane serves, as one immutable value. A load builds a complete new catalog and
 * the service swaps a single reference, so a request sees one publication or the next, never
 * half of one.
 */
export interface Catalog {
  /** The publication served (`PUBLICATION`), or null before the first load of a tree. */
  readonly publication: number | null;
  readonly repositories: ReadonlyMap<string, RepositoryView>;
  /** Repositories served by redirect from Pulp 2 redirect files (the migration aid). */
  readonly pulp: ReadonlyMap<string, PulpRepository>;
  /** Every repository name (ours and Pulp's), sorted, for `_catalog`. */
  readonly names: readonly string[];
  /** The same without protected repositories: what an anonymous client may list. */
  readonly publicNames: readonly string[];
  readonly tagCount: number;
}

export function createCatalog(
  publication: number | null,
  repositories: ReadonlyMap<string, RepositoryView>,
  pulp: ReadonlyMap<string, PulpRepository>,
): Catalog {
  const names: string[] = [];
  const publicNames: string[] = [];
  const seen = new Set<string>();
  let tagCount = 0;
  for (const repo of repositories.values()) {
    seen.add(repo.name);
    names.push(repo.name);
    if (!repo.protected) publicNames.push(repo.name);
    tagCount += repo.tags.size;
  }
  for (const repo of pulp.values()) {
    if (seen.has(repo.name)) continue; // a published repository wins over Pulp's copy
    names.push(repo.name);
    if (!repo.protected) publicNames.push(repo.name);
  }
  names.sort(compareCodeUnits);
  publicNames.sort(compareCodeUnits);
  return Object.freeze({ publication, repositories, pulp, names, publicNames, tagCount });
}

export const EMPTY_CATALOG: Catalog = createCatalog(null, new Map(), new Map());

/**
 * One page of a sorted list: the entries after `last` (exclusive), at most `n`. `more` says
 * whether entries remain after the page (then the caller sends a `Link` header).
 */
export function pageAfter(
  sorted: readonly string[],
  last: string | undefined,
  n: number | undefined,
): { items: string[]; more: boolean } {
  let start = 0;
  if (last !== undefined) {
    // first index whose entry is > last (binary search over code-unit order)
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! <= last) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const end = n === undefined ? sorted.length : Math.min(sorted.length, start + n);
  return { items: sorted.slice(start, end), more: end < sorted.length };
}

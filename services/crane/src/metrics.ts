import type { ServiceMetrics } from '@flotilla/kit';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Catalog } from './catalog/catalog.js';
import type { LoaderMetrics } from './catalog/loader.js';

/** Crane's own series, on the service's registry (requests by route and status come from kit). */
export function createCraneMetrics(
  metrics: ServiceMetrics,
): LoaderMetrics & { rateLimited(): void } {
  const registers = [metrics.registry];
  const repositories = new Gauge({
    name: 'flotilla_crane_repositories',
    help: 'Repositories loaded, by origin (published tree or Pulp redirect files)',
    labelNames: ['origin'],
    registers,
  });
  const tags = new Gauge({
    name: 'flotilla_crane_tags',
    help: 'Tags loaded from the published tree',
    registers,
  });
  const publication = new Gauge({
    name: 'flotilla_crane_publication',
    help: 'The publication being served (-1 before the first load)',
    registers,
  });
  publication.set(-1);
  const reloads = new Counter({
    name: 'flotilla_crane_reloads_total',
    help: 'Catalog reloads by result: loaded (a new catalog was swapped in), unchanged, failed',
    labelNames: ['result'],
    registers,
  });
  const reloadSeconds = new Histogram({
    name: 'flotilla_crane_reload_duration_seconds',
    help: 'Time to read and build a catalog',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers,
  });
  const metadataErrors = new Counter({
    name: 'flotilla_crane_metadata_errors_total',
    help: 'Metadata files that could not be read or were invalid and were skipped, by kind',
    labelNames: ['kind'],
    registers,
  });
  const limited = new Counter({
    name: 'flotilla_crane_rate_limited_total',
    help: 'Requests refused with 429 by the per-client rate limit',
    registers,
  });
  return {
    reloaded(result, seconds) {
      reloads.inc({ result });
      if (result !== 'unchanged') reloadSeconds.observe(seconds);
    },
    metadataError(kind) {
      metadataErrors.inc({ kind });
    },
    served(catalog: Catalog) {
      repositories.set({ origin: 'tree' }, catalog.repositories.size);
      repositories.set({ origin: 'pulp' }, catalog.pulp.size);
      tags.set(catalog.tagCount);
      publication.set(catalog.publication ?? -1);
    },
    rateLimited() {
      limited.inc();
    },
  };
}

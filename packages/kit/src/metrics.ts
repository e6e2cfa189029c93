/**
 * Prometheus metrics per service: a private registry (so four services in one process
 * never collide), default process metrics and one request-duration histogram. Every
 * series carries `service` as a default label.
 */
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export const HTTP_DURATION_METRIC = 'flotilla_http_request_duration_seconds';

/** Seconds; up to 5 minutes because blob uploads and downloads are long requests. */
export const HTTP_DURATION_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

export type HttpDurationLabels = 'route' | 'method' | 'status';

export interface ServiceMetrics {
  readonly service: string;
  readonly registry: Registry;
  readonly httpDuration: Histogram<HttpDurationLabels>;
  /**
   * Records one request. `route` must be a route pattern (`/v2/:name/blobs/:digest`),
   * never a raw URL: every distinct value is a new time series.
   */
  observe(route: string, method: string, status: number, seconds: number): void;
}

export interface CreateMetricsOptions {
  /** Collect the process metrics (CPU, memory, event loop, GC); default true. */
  defaultMetrics?: boolean;
  buckets?: readonly number[];
}

export function createMetrics(
  serviceName: string,
  options: CreateMetricsOptions = {},
): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: serviceName });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram<HttpDurationLabels>({
    name: HTTP_DURATION_METRIC,
    help: 'HTTP request duration in seconds, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [...(options.buckets ?? HTTP_DURATION_BUCKETS)],
    registers: [registry],
  });
  // Bound children avoid re-hashing the label set on every hot-path request. The key
  // space is bounded by routes × methods × statuses.
  const children = new Map<string, { observe(value: number): void }>();
  return {
    service: serviceName,
    registry,
    httpDuration,
    observe(route, method, status, seconds) {
      const key = `${route}\u0000${method}\u0000${status}`;
      let child = children.get(key);
      if (child === undefined) {
        child = httpDuration.labels({ route, method, status: String(status) });
        children.set(key, child);
      }
      child.observe(seconds);
    },
  };
}

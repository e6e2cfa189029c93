import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TaskKind } from './collections.js';

/** Content's own series, on the service's registry (served by the kit at `/metrics`). */
export class ContentMetrics {
  private readonly tasks: Counter<'kind' | 'state'>;
  private readonly taskDuration: Histogram<'kind' | 'state'>;
  private readonly syncBytes: Counter;
  private readonly publishedBlobs: Counter;
  private readonly publication: Gauge;

  constructor(registry: Registry) {
    this.tasks = new Counter({
      name: 'flotilla_content_tasks_total',
      help: 'Tasks this process ended, by kind and final state',
      labelNames: ['kind', 'state'],
      registers: [registry],
    });
    this.taskDuration = new Histogram({
      name: 'flotilla_content_task_duration_seconds',
      help: 'Run time of the tasks this process ended',
      labelNames: ['kind', 'state'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
      registers: [registry],
    });
    this.syncBytes = new Counter({
      name: 'flotilla_content_sync_bytes_total',
      help: 'Blob bytes downloaded by syncs',
      registers: [registry],
    });
    this.publishedBlobs = new Counter({
      name: 'flotilla_content_published_blobs_total',
      help: 'Files added to the published tree',
      registers: [registry],
    });
    this.publication = new Gauge({
      name: 'flotilla_content_publication',
      help: 'Number of the newest publication this process completed',
      registers: [registry],
    });
  }

  taskEnded(kind: TaskKind, state: string, seconds: number): void {
    this.tasks.inc({ kind, state });
    this.taskDuration.observe({ kind, state }, seconds);
  }

  synced(bytes: number): void {
    this.syncBytes.inc(bytes);
  }

  published(publication: number, newBlobs: number): void {
    this.publication.set(publication);
    this.publishedBlobs.inc(newBlobs);
  }
}

import type { ContentConfig } from '../config.js';
import type { SyncParams } from '../sync/synchronizer.js';
import type { StoredTask, TaskQueue } from './task-queue.js';

export interface SyncSubmission {
  repository: string;
  upstream?: { url: string; repository?: string; username?: string; password?: string };
  includeTags?: string[];
  excludeTags?: string[];
  mirror?: boolean;
  allowEmpty?: boolean;
  signedOnly?: boolean;
}

/**
 * The kinds of task content runs and how each is queued. A sync without an upstream stores no
 * credentials: the worker uses the configured registry's at run time.
 */
export class ContentTasks {
  constructor(
    private readonly queue: TaskQueue,
    private readonly config: ContentConfig,
    private readonly onSubmitted: () => void = () => undefined,
  ) {}

  /** With `coalesce`, a waiting sync of the repository (same parameters) absorbs this one. */
  async submitSync(
    request: SyncSubmission,
    coalesce = false,
  ): Promise<{ task: StoredTask; coalesced: boolean }> {
    const params: Record<string, unknown> = { repository: request.repository };
    if (request.upstream) params.upstream = request.upstream;
    if (request.includeTags) params.includeTags = request.includeTags;
    if (request.excludeTags) params.excludeTags = request.excludeTags;
    if (request.mirror !== undefined) params.mirror = request.mirror;
    if (request.allowEmpty !== undefined) params.allowEmpty = request.allowEmpty;
    if (request.signedOnly !== undefined) params.signedOnly = request.signedOnly;
    const out = await this.queue.submit({
      kind: 'sync',
      key: `sync:${request.repository}`,
      repository: request.repository,
      params,
      coalesce,
    });
    this.onSubmitted();
    return out;
  }

  async submitPublish(request: { channel: string; repositories?: string[] }): Promise<StoredTask> {
    const params: Record<string, unknown> = { channel: request.channel };
    if (request.repositories) params.repositories = request.repositories;
    const { task } = await this.queue.submit({
      kind: 'publish',
      key: 'publish',
      channel: request.channel,
      params,
    });
    this.onSubmitted();
    return task;
  }

  /** Re-signing a channel: one at a time per channel. */
  async submitSign(request: { channel: string; repositories?: string[] }): Promise<StoredTask> {
    const params: Record<string, unknown> = { channel: request.channel };
    if (request.repositories) params.repositories = request.repositories;
    const { task } = await this.queue.submit({
      kind: 'sign',
      key: `sign:${request.channel}`,
      channel: request.channel,
      params,
    });
    this.onSubmitted();
    return task;
  }

  /** Retention shares the publish key: it never runs during a publish. Coalesced. */
  async submitRetention(): Promise<StoredTask> {
    const { task } = await this.queue.submit({
      kind: 'retention',
      key: 'publish',
      params: {},
      coalesce: true,
    });
    this.onSubmitted();
    return task;
  }

  /** One reconcile at a time (key `reconcile`); a waiting one absorbs later requests. */
  async submitReconcile(): Promise<{ task: StoredTask; coalesced: boolean }> {
    const out = await this.queue.submit({
      kind: 'reconcile',
      key: 'reconcile',
      params: {},
      coalesce: true,
    });
    this.onSubmitted();
    return out;
  }

  /** One gc at a time (key `gc`); a waiting gc with the same `dryRun` absorbs this one. */
  async submitGc(
    request: { dryRun?: boolean } = {},
  ): Promise<{ task: StoredTask; coalesced: boolean }> {
    const out = await this.queue.submit({
      kind: 'gc',
      key: 'gc',
      params: { dryRun: request.dryRun === true },
      coalesce: true,
    });
    this.onSubmitted();
    return out;
  }

  /** A stored sync task's parameters with the configured registry filled in. */
  syncParams(task: StoredTask): SyncParams {
    const p = task.params as unknown as SyncSubmission;
    const registry = this.config.registry;
    return {
      repository: p.repository,
      upstream: p.upstream ?? {
        url: registry.url,
        username: registry.username,
        password: registry.password,
      },
      includeTags: p.includeTags,
      excludeTags: p.excludeTags,
      mirror: p.mirror,
      allowEmpty: p.allowEmpty,
      signedOnly: p.signedOnly,
    };
  }
}

import { request } from 'undici';
import type { TaskView } from './api-schemas.js';

export type { TaskView } from './api-schemas.js';

export interface RepositorySummary {
  name: string;
  /** channel → current version number */
  channels: Record<string, number>;
  published?: { channel: string; version: number; publication: number };
}

export interface RepositoryDetail {
  name: string;
  createdAt: string;
  channels: {
    name: string;
    version: number;
    tags: Record<string, string>;
    /** Tagged digest → ids of the known keys whose signature of it the channel carries. */
    signedBy?: Record<string, string[]>;
    createdAt: string;
  }[];
  versions?: { number: number; createdAt: string; tags: number }[];
  diff?: unknown;
}

export interface KeysView {
  current: string;
  identity: string;
  signingChannels: string[];
  keys: { id: string; status: 'current' | 'retired'; publicKey: string }[];
  trusted: { id: string; source: string; repository?: string }[];
}

export interface PromoteInput {
  repository: string;
  from: string;
  to: string;
  tags?: string[];
  digest?: string;
  targetTags?: string[];
  reason?: string;
}

export interface ChangeOutcome {
  promotion: Record<string, unknown> & { id: string };
  version: number;
  changed: boolean;
  tags: Record<string, string>;
}

/** A problem JSON answer from the content API. */
export class ContentApiError extends Error {
  override readonly name = 'ContentApiError';
  constructor(
    readonly status: number,
    readonly problem: { title?: string; detail?: string; type?: string; [key: string]: unknown },
  ) {
    super(`content API ${status}: ${problem.detail ?? problem.title ?? 'error'}`);
  }
}

/** The content API for the CLI and scripts: `new ContentClient({url, token})`. */
export class ContentClient {
  private readonly base: string;

  constructor(private readonly endpoint: { url: string; token: string }) {
    this.base = endpoint.url.replace(/\/+$/, '');
  }

  /** Every repository (with `channel`: only those with content in that channel). */
  async repositories(query: { channel?: string; q?: string } = {}): Promise<RepositorySummary[]> {
    return (
      await this.call<{ repositories: RepositorySummary[] }>(
        'GET',
        '/api/v1/repositories',
        undefined,
        query,
      )
    ).repositories;
  }

  repository(
    name: string,
    query: { channel?: string; version?: number; compare?: number } = {},
  ): Promise<RepositoryDetail> {
    return this.call('GET', `/api/v1/repositories/${name}`, undefined, query);
  }

  sync(input: {
    repository: string;
    upstream?: { url: string; repository?: string; username?: string; password?: string };
    includeTags?: string[];
    excludeTags?: string[];
    mirror?: boolean;
    allowEmpty?: boolean;
    signedOnly?: boolean;
  }): Promise<TaskView> {
    return this.call<{ task: TaskView }>('POST', '/api/v1/syncs', input).then((r) => r.task);
  }

  promote(input: PromoteInput): Promise<ChangeOutcome> {
    const body: Record<string, unknown> = {
      repository: input.repository,
      from: input.from,
      to: input.to,
    };
    for (const key of ['tags', 'digest', 'targetTags', 'reason'] as const)
      if (input[key] !== undefined) body[key] = input[key];
    return this.call('POST', '/api/v1/promotions', body);
  }

  untag(input: {
    repository: string;
    channel: string;
    tags: string[];
    reason?: string;
  }): Promise<ChangeOutcome> {
    return this.call('POST', '/api/v1/untags', input);
  }

  rollback(input: {
    repository: string;
    channel: string;
    version: number;
    reason?: string;
  }): Promise<ChangeOutcome> {
    return this.call('POST', '/api/v1/rollbacks', input);
  }

  async promotions(
    query: { repository?: string; channel?: string } = {},
  ): Promise<Record<string, unknown>[]> {
    return (
      await this.call<{ promotions: Record<string, unknown>[] }>(
        'GET',
        '/api/v1/promotions',
        undefined,
        query,
      )
    ).promotions;
  }

  async publish(input: { channel?: string; repositories?: string[] } = {}): Promise<TaskView> {
    const body: Record<string, unknown> = {};
    if (input.channel) body.channel = input.channel;
    if (input.repositories && input.repositories.length > 0) body.repositories = input.repositories;
    return (await this.call<{ task: TaskView }>('POST', '/api/v1/publications', body)).task;
  }

  /** Queues a content store gc (`dryRun`: report only). */
  async gc(input: { dryRun?: boolean } = {}): Promise<TaskView> {
    return (
      await this.call<{ task: TaskView }>(
        'POST',
        '/api/v1/gc',
        input.dryRun ? { dryRun: true } : {},
      )
    ).task;
  }

  keys(): Promise<KeysView> {
    return this.call('GET', '/api/v1/keys');
  }

  /** Re-signs what a channel holds with the current key (a task). */
  async sign(input: { channel: string; repositories?: string[] }): Promise<TaskView> {
    const body: Record<string, unknown> = { channel: input.channel };
    if (input.repositories && input.repositories.length > 0) body.repositories = input.repositories;
    return (await this.call<{ task: TaskView }>('POST', '/api/v1/signatures', body)).task;
  }

  async publications(): Promise<Record<string, unknown>[]> {
    return (
      await this.call<{ publications: Record<string, unknown>[] }>('GET', '/api/v1/publications')
    ).publications;
  }

  async tasks(
    query: { state?: string; kind?: string; repository?: string } = {},
  ): Promise<TaskView[]> {
    return (await this.call<{ tasks: TaskView[] }>('GET', '/api/v1/tasks', undefined, query)).tasks;
  }

  /** One task; with `waitSeconds` (at most 60) the server answers once it ends or that time has passed. */
  task(id: string, options: { waitSeconds?: number } = {}): Promise<TaskView> {
    const query = options.waitSeconds ? { wait: String(options.waitSeconds) } : undefined;
    return this.call('GET', `/api/v1/tasks/${encodeURIComponent(id)}`, undefined, query);
  }

  cancelTask(id: string): Promise<TaskView> {
    return this.call('DELETE', `/api/v1/tasks/${encodeURIComponent(id)}`);
  }

  private async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    query?: Record<string, unknown>,
  ): Promise<T> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const res = await request(url, {
      method,
      headers: {
        authorization: `Bearer ${this.endpoint.token}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { detail: text.slice(0, 300) };
    }
    if (res.statusCode >= 400)
      throw new ContentApiError(res.statusCode, (parsed ?? {}) as ContentApiError['problem']);
    return parsed as T;
  }
}

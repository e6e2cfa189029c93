import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { Logger } from 'pino';
import type { Bus } from '@flotilla/bus';
import { createEvent } from '@flotilla/protocol';
import type { Filter } from '@flotilla/store';
import type {
  ContentCollections,
  TaskDoc,
  TaskKind,
  TaskProgress,
  TaskState,
} from '../collections.js';
import { contentProblem } from '../domain/errors.js';

export const FINAL_STATES: readonly TaskState[] = ['completed', 'failed', 'canceled'];
/** A task whose worker died is put back this many times before it is failed. */
const MAX_ATTEMPTS = 3;
const CLAIM_SCAN = 20;
/** How often `waitFinal` re-reads a task that another process runs (its own tasks wake it at once). */
const WAIT_POLL_MS = 250;

export type StoredTask = TaskDoc & { _id: string };

/** Who holds a task key: one worker running one task. */
function keyHolder(owner: string, taskId: string): string {
  return `${owner}/${taskId}`;
}

export interface SubmitOptions {
  kind: TaskKind;
  key: string;
  params: Record<string, unknown>;
  repository?: string;
  channel?: string;
  /** Reuse a waiting task with the same key and params instead of queueing another. */
  coalesce?: boolean;
}

/**
 * Persisted tasks. The store is the truth: a task is inserted `waiting`, claimed atomically
 * (`waiting` → `running` with a lease), kept alive by heartbeats, and finished by its lease
 * owner only. The bus carries a wake-up (`content.task.queued` on `flotilla.content.tasks`) so
 * idle workers in any process start at once; polling covers a lost message.
 */
export class TaskQueue {
  constructor(
    private readonly c: ContentCollections,
    private readonly bus: Bus | undefined,
    private readonly logger: Logger,
    private readonly leaseMs: number,
    /** How often `waitFinal` re-reads a task that another process runs. */
    private readonly waitPollMs = WAIT_POLL_MS,
  ) {}

  /** Emits a task's id when this process records its final state. */
  private readonly settled = new EventEmitter().setMaxListeners(0);

  /** Coalescing submissions of one key run one after another (events arrive concurrently). */
  private readonly submitting = new Map<string, Promise<unknown>>();

  async submit(options: SubmitOptions): Promise<{ task: StoredTask; coalesced: boolean }> {
    if (!options.coalesce) return this.insert(options);
    const previous = this.submitting.get(options.key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.insert(options));
    this.submitting.set(options.key, next);
    try {
      return await next;
    } finally {
      if (this.submitting.get(options.key) === next) this.submitting.delete(options.key);
    }
  }

  private async insert(options: SubmitOptions): Promise<{ task: StoredTask; coalesced: boolean }> {
    if (options.coalesce) {
      const waiting = await this.c.tasks.find(
        { key: options.key, state: 'waiting' },
        { sort: { createdAt: 1 } },
      );
      const same = waiting.find((t) => JSON.stringify(t.params) === JSON.stringify(options.params));
      if (same) return { task: same, coalesced: true };
    }
    const doc: StoredTask = {
      _id: randomUUID(),
      kind: options.kind,
      state: 'waiting',
      key: options.key,
      params: options.params,
      createdAt: new Date().toISOString(),
      attempts: 0,
      progress: {},
      ...(options.repository ? { repository: options.repository } : {}),
      ...(options.channel ? { channel: options.channel } : {}),
    };
    const task = await this.c.tasks.insertOne(doc);
    await this.announce(task);
    return { task, coalesced: false };
  }

  async announce(task: StoredTask): Promise<void> {
    if (!this.bus) return;
    try {
      await this.bus.publish(
        createEvent('content.task.queued', 'content', { task: task._id, kind: task.kind }),
      );
    } catch (err) {
      this.logger.warn(
        { err, task: task._id },
        'failed to announce task; workers will find it by polling',
      );
    }
  }

  async get(id: string): Promise<StoredTask> {
    const task = await this.c.tasks.findOne({ _id: id });
    if (!task) throw contentProblem('unknown-task', `task ${id} is unknown`);
    return task;
  }

  /**
   * The task once it is final, or as it stands when `timeoutMs` has passed or `signal` aborts
   * (a long poll). Tasks that end in this process answer at once; tasks run elsewhere are seen
   * within `waitPollMs`.
   */
  async waitFinal(id: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredTask> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const task = await this.get(id);
      const left = deadline - Date.now();
      if (FINAL_STATES.includes(task.state) || left <= 0 || signal?.aborted) return task;
      const stop = new AbortController();
      const wake = (settledId: string): void => {
        if (settledId === id) stop.abort();
      };
      const onAbort = (): void => stop.abort();
      this.settled.on('settled', wake);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => stop.abort(), Math.min(this.waitPollMs, left));
      try {
        await once(stop.signal, 'abort');
      } finally {
        clearTimeout(timer);
        this.settled.off('settled', wake);
        signal?.removeEventListener('abort', onAbort);
      }
    }
  }

  list(filter: {
    state?: TaskState;
    kind?: TaskKind;
    repository?: string;
    limit?: number;
  }): Promise<StoredTask[]> {
    const query: Filter<TaskDoc> = {};
    if (filter.state) query.state = filter.state;
    if (filter.kind) query.kind = filter.kind;
    if (filter.repository) query.repository = filter.repository;
    return this.c.tasks.find(query, { sort: { createdAt: -1 }, limit: filter.limit ?? 100 });
  }

  /** Cancels a waiting task at once; asks a running one to stop (its worker ends it `canceled`). */
  async cancel(id: string): Promise<StoredTask> {
    const task = await this.get(id);
    if (task.state === 'waiting') {
      const canceled = await this.c.tasks.findOneAndUpdate(
        { _id: id, state: 'waiting' },
        { $set: { state: 'canceled', finishedAt: new Date().toISOString() } },
      );
      if (canceled) {
        this.settled.emit('settled', id);
        return canceled;
      }
    }
    const fresh = await this.get(id);
    if (FINAL_STATES.includes(fresh.state)) {
      throw contentProblem('task-finished', `task ${id} already ${fresh.state}`, {
        state: fresh.state,
      });
    }
    const updated = await this.c.tasks.findOneAndUpdate(
      { _id: id, state: 'running' },
      { $set: { cancelRequested: true } },
    );
    return updated ?? (await this.get(id));
  }

  /**
   * Claims the oldest waiting task whose key is free, or null. The key is taken first, by a
   * lease the store hands to one claimer (compare-and-set, across replicas), then the task; the
   * key lease expires with its holder, so a dead worker never blocks its key for longer than a
   * lease.
   */
  async claim(owner: string): Promise<StoredTask | null> {
    const candidates = await this.c.tasks.find(
      { state: 'waiting' },
      { sort: { createdAt: 1 }, limit: CLAIM_SCAN },
    );
    const busyKeys = new Set<string>();
    for (const candidate of candidates) {
      if (busyKeys.has(candidate.key)) continue;
      const holder = keyHolder(owner, candidate._id);
      if (!(await this.c.taskKeys.tryAcquire(candidate.key, holder, this.leaseMs))) {
        busyKeys.add(candidate.key);
        continue;
      }
      const now = Date.now();
      const claimed = await this.c.tasks.findOneAndUpdate(
        { _id: candidate._id, state: 'waiting' },
        {
          $set: {
            state: 'running',
            worker: owner,
            startedAt: new Date(now).toISOString(),
            lease: { owner, expiresAt: new Date(now + this.leaseMs).toISOString() },
          },
          $inc: { attempts: 1 },
        },
      );
      if (claimed) return claimed;
      // Canceled or claimed meanwhile: give the key back.
      await this.c.taskKeys.release(candidate.key, holder);
    }
    return null;
  }

  /** Extends the task's and its key's leases; returns the task (to see a cancel request) or null when either was lost. */
  async heartbeat(id: string, owner: string): Promise<StoredTask | null> {
    const task = await this.c.tasks.findOneAndUpdate(
      { _id: id, state: 'running', 'lease.owner': owner },
      { $set: { 'lease.expiresAt': new Date(Date.now() + this.leaseMs).toISOString() } },
    );
    if (!task) return null;
    if (!(await this.c.taskKeys.renew(task.key, keyHolder(owner, id), this.leaseMs))) {
      this.logger.warn({ task: id, key: task.key }, 'lost the lease on a task key');
      return null;
    }
    return task;
  }

  async saveProgress(id: string, owner: string, progress: TaskProgress): Promise<void> {
    await this.c.tasks.updateOne(
      { _id: id, state: 'running', 'lease.owner': owner },
      { $set: { progress } },
    );
  }

  async finish(
    id: string,
    owner: string,
    outcome: {
      state: 'completed' | 'failed' | 'canceled';
      result?: Record<string, unknown>;
      error?: TaskDoc['error'];
      progress?: TaskProgress;
    },
  ): Promise<void> {
    const set: Record<string, unknown> = {
      state: outcome.state,
      finishedAt: new Date().toISOString(),
    };
    if (outcome.result) set.result = outcome.result;
    if (outcome.error) set.error = outcome.error;
    if (outcome.progress) set.progress = outcome.progress;
    const task = await this.c.tasks.findOneAndUpdate(
      { _id: id, state: 'running', 'lease.owner': owner },
      { $set: set, $unset: { lease: '' } },
    );
    if (task) await this.c.taskKeys.release(task.key, keyHolder(owner, id));
    this.settled.emit('settled', id);
  }

  /** Gives a running task back to the queue (its worker is shutting down). */
  async release(id: string, owner: string): Promise<void> {
    const r = await this.c.tasks.updateOne(
      { _id: id, state: 'running', 'lease.owner': owner },
      { $set: { state: 'waiting' }, $unset: { lease: '', startedAt: '' }, $inc: { attempts: -1 } },
    );
    if (r.modifiedCount > 0) {
      const task = await this.c.tasks.findOne({ _id: id });
      if (task) {
        await this.c.taskKeys.release(task.key, keyHolder(owner, id));
        await this.announce(task);
      }
    }
  }

  /** Puts tasks whose worker stopped heart-beating back in the queue (or fails them). */
  async requeueExpired(): Promise<number> {
    const now = new Date().toISOString();
    const expired = await this.c.tasks.find(
      { state: 'running', 'lease.expiresAt': { $lt: now } },
      { limit: 100 },
    );
    let requeued = 0;
    for (const task of expired) {
      const filter = { _id: task._id, state: 'running', 'lease.expiresAt': task.lease?.expiresAt };
      if (task.cancelRequested) {
        await this.c.tasks.updateOne(filter, {
          $set: { state: 'canceled', finishedAt: now },
          $unset: { lease: '' },
        });
        this.settled.emit('settled', task._id);
      } else if (task.attempts >= MAX_ATTEMPTS) {
        await this.c.tasks.updateOne(filter, {
          $set: {
            state: 'failed',
            finishedAt: now,
            error: { message: `worker lost ${task.attempts} times`, code: 'worker-lost' },
          },
          $unset: { lease: '' },
        });
        this.settled.emit('settled', task._id);
      } else {
        const r = await this.c.tasks.updateOne(filter, {
          $set: { state: 'waiting' },
          $unset: { lease: '' },
        });
        if (r.modifiedCount > 0) {
          requeued++;
          this.logger.warn({ task: task._id, kind: task.kind }, 'requeued task of a lost worker');
        }
      }
    }
    return requeued;
  }
}

import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { isStorageFullError } from '@flotilla/kit';
import type { Logger } from 'pino';
import type { TaskKind } from '../collections.js';
import { ThrottledProgress, type ProgressReporter } from './progress.js';
import type { StoredTask, TaskQueue } from './task-queue.js';

export type TaskHandler = (
  task: StoredTask,
  context: { signal: AbortSignal; progress: ProgressReporter },
) => Promise<Record<string, unknown>>;

export interface TaskWorkerOptions {
  queue: TaskQueue;
  handlers: Record<TaskKind, TaskHandler>;
  logger: Logger;
  concurrency: number;
  leaseMs: number;
  pollMs?: number;
  /** Told about every task this worker ends (metrics). */
  onEnded?: (task: StoredTask, state: 'completed' | 'failed' | 'canceled', seconds: number) => void;
}

class CanceledError extends Error {
  override readonly name = 'CanceledError';
}
class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}
class ShutdownError extends Error {
  override readonly name = 'ShutdownError';
}

/**
 * Runs tasks claimed from the queue, up to `concurrency` at once. Wakes on a bus nudge, on a
 * local submit and on a poll timer (which also requeues tasks of dead workers). Each running task
 * heart-beats its lease; a cancel request or a lost lease aborts its signal.
 */
export class TaskWorker {
  readonly owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly running = new Map<string, AbortController>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private pumping = false;
  private again = false;
  private stopped = true;

  constructor(private readonly options: TaskWorkerOptions) {}

  start(): void {
    if (this.options.concurrency <= 0) return;
    this.stopped = false;
    const tick = async () => {
      try {
        await this.options.queue.requeueExpired();
      } catch (err) {
        this.options.logger.warn({ err }, 'failed to requeue expired tasks');
      }
      this.wake();
    };
    this.timer = setInterval(() => void tick(), this.options.pollMs ?? 2000);
    this.timer.unref();
    void tick();
  }

  /** Claims and starts tasks while there is capacity. */
  wake(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Aborts a task this process runs (a cancel arrived here): faster than the next heartbeat. */
  abortLocal(id: string): void {
    this.running.get(id)?.abort(new CanceledError('canceled'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // Running tasks stop and go back to the queue for the next worker (their work is idempotent).
    for (const controller of this.running.values())
      controller.abort(new ShutdownError('shutting down'));
    await Promise.allSettled([...this.inFlight]);
  }

  private async pump(): Promise<void> {
    while (!this.stopped && this.running.size < this.options.concurrency) {
      let task: StoredTask | null;
      try {
        task = await this.options.queue.claim(this.owner);
      } catch (err) {
        this.options.logger.error({ err }, 'failed to claim a task');
        return;
      }
      if (!task) return;
      const run = this.run(task)
        .catch((err: unknown) => {
          // Finishing the task failed (the store is down): its lease runs out and it is retried.
          this.options.logger.error({ err, task: task._id }, 'failed to record the end of a task');
        })
        .finally(() => {
          this.inFlight.delete(run);
          this.wake();
        });
      this.inFlight.add(run);
    }
  }

  private async run(task: StoredTask): Promise<void> {
    const { queue, logger, leaseMs } = this.options;
    const log = logger.child({ task: task._id, kind: task.kind });
    const controller = new AbortController();
    // Every concurrent download listens on the task's signal.
    setMaxListeners(0, controller.signal);
    this.running.set(task._id, controller);
    const progress = new ThrottledProgress((p) => queue.saveProgress(task._id, this.owner, p));
    const heartbeat = setInterval(
      () => {
        void queue.heartbeat(task._id, this.owner).then(
          (fresh) => {
            if (!fresh) controller.abort(new LeaseLostError('lease lost'));
            else if (fresh.cancelRequested) controller.abort(new CanceledError('canceled'));
          },
          (err: unknown) => log.warn({ err }, 'failed to renew task lease'),
        );
      },
      Math.max(500, Math.floor(leaseMs / 3)),
    );
    heartbeat.unref();
    log.info('task started');
    const started = process.hrtime.bigint();
    const ended = (state: 'completed' | 'failed' | 'canceled') =>
      this.options.onEnded?.(task, state, Number(process.hrtime.bigint() - started) / 1e9);
    try {
      if (task.cancelRequested) throw new CanceledError('canceled');
      const handler = this.options.handlers[task.kind];
      const result = await handler(task, { signal: controller.signal, progress });
      await progress.flush();
      await queue.finish(task._id, this.owner, {
        state: 'completed',
        result,
        progress: progress.value,
      });
      ended('completed');
      log.info('task completed');
    } catch (err) {
      await progress.flush();
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
      if (reason instanceof LeaseLostError) {
        log.warn('task lease lost; another worker may run it');
      } else if (reason instanceof ShutdownError) {
        await queue.release(task._id, this.owner);
        log.info('task released at shutdown');
      } else if (reason instanceof CanceledError) {
        await queue.finish(task._id, this.owner, { state: 'canceled', progress: progress.value });
        ended('canceled');
        log.info('task canceled');
      } else {
        const message = err instanceof Error ? err.message : String(err);
        // A full disk, however deep it was wrapped, is said plainly: it heals once space is freed.
        const full = isStorageFullError(err);
        const rawCode = (err as { code?: unknown }).code;
        const code = full ? 'STORAGE_FULL' : typeof rawCode === 'string' ? rawCode : undefined;
        // Errors that explain themselves further (an upstream's URL, status, what was fetched) keep it.
        const details = (err as { details?: unknown }).details;
        await queue.finish(task._id, this.owner, {
          state: 'failed',
          error: {
            message:
              full && !message.includes('storage is full')
                ? `storage is full: ${message}`
                : message,
            ...(code === undefined ? {} : { code }),
            ...(details && typeof details === 'object'
              ? { details: details as Record<string, unknown> }
              : {}),
          },
          progress: progress.value,
        });
        ended('failed');
        log.warn({ err }, 'task failed');
      }
    } finally {
      clearInterval(heartbeat);
      this.running.delete(task._id);
    }
  }
}

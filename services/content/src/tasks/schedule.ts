import type { Logger } from 'pino';
import type { TaskKind } from '../collections.js';
import type { TaskQueue } from './task-queue.js';

export interface TaskScheduleOptions {
  queue: TaskQueue;
  kind: TaskKind;
  /** 0 disables the schedule. */
  intervalMs: number;
  /** Queues the task (coalesced with a waiting one by its key). */
  submit: () => Promise<unknown>;
  logger: Logger;
}

/**
 * Queues a task every `intervalMs`. Every replica runs a schedule; one that finds a task of the
 * kind queued within the last half interval (by any replica) skips its turn, and the task's key
 * keeps two from ever running at once.
 */
export class TaskSchedule {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly o: TaskScheduleOptions) {}

  /** With `now`, queues one at once (reconcile at start). */
  start(options: { now?: boolean } = {}): void {
    if (this.o.intervalMs <= 0) return;
    this.timer = setInterval(() => this.run(false), this.o.intervalMs);
    this.timer.unref();
    if (options.now) this.run(true);
  }

  /** Stops the timer and waits for a submission in flight (the store may close next). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private run(force: boolean): void {
    this.inFlight = this.inFlight.then(() => this.tick(force));
  }

  private async tick(force: boolean): Promise<void> {
    try {
      if (!force) {
        const [last] = await this.o.queue.list({ kind: this.o.kind, limit: 1 });
        if (last && Date.now() - Date.parse(last.createdAt) < this.o.intervalMs / 2) return;
      }
      await this.o.submit();
    } catch (err) {
      this.o.logger.warn({ err, kind: this.o.kind }, 'failed to queue a scheduled task');
    }
  }
}

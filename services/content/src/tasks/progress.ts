import type { TaskProgress } from '../collections.js';

export interface ProgressReporter {
  update(progress: Partial<TaskProgress>): void;
}

/** A reporter that keeps the latest progress and persists it at most every `intervalMs`. */
export class ThrottledProgress implements ProgressReporter {
  private current: TaskProgress = {};
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly persist: (progress: TaskProgress) => Promise<void>,
    private readonly intervalMs = 500,
  ) {}

  update(progress: Partial<TaskProgress>): void {
    this.current = { ...this.current, ...progress };
    this.dirty = true;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  get value(): TaskProgress {
    return this.current;
  }

  /** Writes pending progress now; resolves when it is stored. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.dirty) {
      this.dirty = false;
      const snapshot = { ...this.current };
      this.writing = this.writing.then(() => this.persist(snapshot)).catch(() => undefined);
    }
    await this.writing;
  }
}

export const noProgress: ProgressReporter = { update: () => undefined };

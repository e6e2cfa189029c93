import type { ContentClient } from '@flotilla/content/client';
import { CliError, emit, type OutputOptions } from '../output.js';
import { ProgressLine } from '../progress.js';

const FINAL = new Set(['completed', 'failed', 'canceled']);

/** Polls a task until it ends, drawing its progress; a failed or canceled task exits non-zero. */
export async function watchTask(
  client: ContentClient,
  id: string,
  options: OutputOptions,
  intervalMs = 500,
): Promise<void> {
  const line = new ProgressLine();
  for (;;) {
    const task = await client.task(id);
    if (!options.json) {
      const p = task.progress ?? {};
      line.update({
        state: task.state,
        done: p.done,
        total: p.total,
        bytesDone: p.bytesDone,
        bytesTotal: p.bytesTotal,
        message: p.message,
      });
    }
    if (FINAL.has(task.state)) {
      line.end();
      emit(
        task,
        options,
        (t) =>
          `task ${t.id} ${t.state}${t.error ? `: ${t.error.message ?? JSON.stringify(t.error)}` : ''}`,
      );
      if (task.state !== 'completed') throw new CliError(`task ${id} ${task.state}`);
      return;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

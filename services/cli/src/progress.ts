import { formatBytes } from './output.js';

/** One line of task progress: a bar when the total is known, counters otherwise. */
export interface ProgressView {
  state: string;
  done?: number;
  total?: number;
  bytesDone?: number;
  bytesTotal?: number;
  message?: string;
}

export function renderProgress(view: ProgressView, width = 30): string {
  const parts: string[] = [];
  if (view.total && view.total > 0) {
    const ratio = Math.min(1, Math.max(0, (view.done ?? 0) / view.total));
    const filled = Math.round(ratio * width);
    parts.push(
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%`,
    );
    parts.push(`${view.done ?? 0}/${view.total}`);
  } else if (view.done !== undefined) {
    parts.push(`${view.done} done`);
  }
  if (view.bytesDone !== undefined) {
    parts.push(
      view.bytesTotal
        ? `${formatBytes(view.bytesDone)}/${formatBytes(view.bytesTotal)}`
        : formatBytes(view.bytesDone),
    );
  }
  parts.push(view.state);
  if (view.message) parts.push(view.message);
  return parts.join('  ');
}

/** Redraws in place on a terminal; prints only changed lines when piped. */
export class ProgressLine {
  private last = '';
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(view: ProgressView): void {
    const line = renderProgress(view);
    if (line === this.last) return;
    this.last = line;
    if (this.stream.isTTY) this.stream.write(`\r\x1b[2K${line}`);
    else this.stream.write(`${line}\n`);
  }

  end(): void {
    if (this.stream.isTTY && this.last) this.stream.write('\n');
  }
}

import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseSelectionSnapshot, type SelectionSnapshot } from '@flotilla/protocol';
import type { Logger } from 'pino';

/**
 * Follows the selection snapshot file the mirrors service writes (temp file, then rename).
 * fs.watch on the directory notices the rename at once where it works; a poll of the file's
 * identity (inode, size, mtime) catches what it misses (network file systems, some container
 * volumes). A file that cannot be read or parsed is logged and skipped: the redirector keeps
 * answering from the snapshot it has.
 */
export interface SnapshotFileOptions {
  file: string;
  pollIntervalMs: number;
  logger: Logger;
  onSnapshot(snapshot: SelectionSnapshot): void;
}

export interface SnapshotFollower {
  /** Reads the file now (if it changed); resolves when done. */
  check(): Promise<void>;
  close(): void;
}

export function followSnapshotFile(options: SnapshotFileOptions): SnapshotFollower {
  const { file, logger } = options;
  const name = path.basename(file);
  let identity = '';
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;

  const readOnce = async (): Promise<void> => {
    let info;
    try {
      info = await stat(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        logger.error({ err: error, file }, 'failed to stat the selection snapshot');
      return;
    }
    const seen = `${info.ino}:${info.size}:${info.mtimeMs}`;
    if (seen === identity) return;
    let snapshot: SelectionSnapshot;
    try {
      snapshot = parseSelectionSnapshot(await readFile(file, 'utf8'));
    } catch (error) {
      logger.error(
        { err: error, file },
        'failed to load the selection snapshot; keeping the current one',
      );
      identity = seen;
      return;
    }
    identity = seen;
    if (!closed) options.onSnapshot(snapshot);
  };

  const check = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await readOnce();
      } while (again && !closed);
    })().finally(() => {
      running = null;
    });
    return running;
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), (_event, changed) => {
      if (changed === null || changed === name) void check();
    });
    watcher.on('error', (error) =>
      logger.warn({ err: error }, 'snapshot directory watch failed; polling only'),
    );
    watcher.unref();
  } catch (error) {
    logger.warn({ err: error, file }, 'cannot watch the snapshot directory; polling only');
  }
  const timer =
    options.pollIntervalMs > 0
      ? setInterval(() => void check(), options.pollIntervalMs)
      : undefined;
  timer?.unref();

  return {
    check,
    close() {
      closed = true;
      watcher?.close();
      if (timer) clearInterval(timer);
    },
  };
}

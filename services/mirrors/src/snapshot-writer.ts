import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  REDIRECT_STATISTICS_DIR,
  redirectStatisticsSchema,
  sumRedirectStatistics,
  type RedirectStatisticsSummary,
  type SelectionSnapshot,
} from '@flotilla/protocol';
import type { Logger } from 'pino';

/**
 * Writes the selection snapshot for the redirectors: to a temporary file beside it, then a
 * rename, so a reader sees the old file or the new one and never half of one. Writes are
 * serialised and coalesced: while one is on disk, only the newest pending snapshot follows.
 */
export class SnapshotWriter {
  private pending: SelectionSnapshot | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
  ) {}

  /** Resolves once `snapshot` (or a newer one) is in place. */
  write(snapshot: SelectionSnapshot): Promise<void> {
    this.pending = snapshot;
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  private async drain(): Promise<void> {
    while (this.pending !== null) {
      const snapshot = this.pending;
      this.pending = null;
      try {
        await mkdir(path.dirname(this.file), { recursive: true });
        const temp = `${this.file}.${process.pid}.tmp`;
        await writeFile(temp, JSON.stringify(snapshot));
        await rename(temp, this.file);
        this.logger.debug(
          { file: this.file, mirrors: snapshot.mirrors.length, marker: snapshot.marker },
          'selection snapshot written',
        );
      } catch (error) {
        // The redirectors keep the previous snapshot; the next change or poll writes again.
        this.logger.error(
          { err: error, file: this.file },
          'failed to write the selection snapshot',
        );
      }
    }
  }
}

/**
 * The redirectors' counts: each redirector process writes its own file under
 * `<snapshot directory>/redirects/`; this sums them. Unreadable files are skipped.
 */
export async function readRedirectStatistics(
  snapshotFile: string,
  logger: Logger,
): Promise<RedirectStatisticsSummary> {
  const dir = path.join(path.dirname(snapshotFile), REDIRECT_STATISTICS_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.json'));
  } catch {
    names = [];
  }
  const parts: RedirectStatisticsSummary[] = [];
  for (const name of names) {
    try {
      parts.push(
        redirectStatisticsSchema.parse(JSON.parse(await readFile(path.join(dir, name), 'utf8'))),
      );
    } catch (error) {
      logger.warn({ err: error, file: name }, 'failed to read redirect statistics');
    }
  }
  return sumRedirectStatistics(parts);
}

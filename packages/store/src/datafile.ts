import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * nedb appends one JSON line per write and refuses to load a file in which more than 10% of
 * the lines are corrupt, so one line torn by a crash in the middle of an append would keep a
 * small collection from loading. A complete append always ends with a newline: anything after
 * the last newline is a write that never finished, and is cut off.
 *
 * Returns the number of bytes removed (0 when the file is whole or absent).
 */
export async function dropTornTail(file: string): Promise<number> {
  let handle;
  try {
    handle = await open(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return 0;
    const buffer = Buffer.alloc(CHUNK);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const { bytesRead } = await handle.read(buffer, 0, end - start, start);
      const at = buffer.subarray(0, bytesRead).lastIndexOf(NEWLINE);
      if (at !== -1) {
        const keep = start + at + 1;
        if (keep === size) return 0;
        await handle.truncate(keep);
        return size - keep;
      }
      end = start;
    }
    await handle.truncate(0);
    return size;
  } finally {
    await handle.close();
  }
}

/** At most this many corrupt lines are listed in an error (the repair handles all of them). */
const LISTED_CORRUPT_LINES = 5;

export interface CorruptLine {
  /** 1-based line number in the datafile. */
  line: number;
  text: string;
}

/**
 * A datafile line nedb can load: a JSON object with a string `_id` (a document or a deletion
 * mark) or an index record. nedb would skip any other line silently (up to 10 % of the file).
 */
function isLoadable(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  if (typeof record._id === 'string' && record._id.length > 0) return true;
  const created = record.$$indexCreated as { fieldName?: unknown } | undefined;
  if (created !== null && typeof created === 'object' && typeof created.fieldName === 'string')
    return true;
  return typeof record.$$indexRemoved === 'string';
}

async function* datafileLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line += 1;
    yield { line, text };
  }
}

/** The datafile's corrupt lines (none when it is whole or absent). */
export async function findCorruptLines(file: string, limit = Infinity): Promise<CorruptLine[]> {
  const corrupt: CorruptLine[] = [];
  try {
    for await (const { line, text } of datafileLines(file)) {
      if (text === '' || isLoadable(text)) continue;
      corrupt.push({ line, text });
      if (corrupt.length >= limit) break;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return corrupt;
}

/** Raised when a datafile holds a line nedb would skip: the collection refuses to load. */
export class CorruptDatafileError extends Error {
  override readonly name = 'CorruptDatafileError';
  constructor(
    readonly file: string,
    readonly lines: CorruptLine[],
  ) {
    const first = lines[0]?.line ?? 0;
    const listed = lines
      .slice(0, LISTED_CORRUPT_LINES)
      .map((l) => l.line)
      .join(', ');
    super(
      `corrupt datafile ${file} at line ${first} (corrupt lines: ${listed}${lines.length > LISTED_CORRUPT_LINES ? ', …' : ''}); ` +
        `stop the service and run \`flotilla store repair ${file}\`, which keeps a copy of every line it drops`,
    );
  }
}

/** Throws CorruptDatafileError when `file` holds any corrupt line. */
export async function assertDatafileWhole(file: string): Promise<void> {
  const corrupt = await findCorruptLines(file, LISTED_CORRUPT_LINES + 1);
  if (corrupt.length > 0) throw new CorruptDatafileError(file, corrupt);
}

export interface RepairReport {
  file: string;
  keptLines: number;
  droppedLines: number[];
  /** Where the dropped lines were copied (absent when nothing was dropped). */
  droppedFile?: string;
}

/**
 * Drops the corrupt lines of a datafile (the store must not have it open): the dropped lines
 * are first written to `<file>.dropped-<time>`, then the good lines to a temporary file that is
 * renamed over the datafile.
 */
export async function repairDatafile(file: string, now = new Date()): Promise<RepairReport> {
  const dropped: CorruptLine[] = [];
  const temporary = `${file}.repair~`;
  const out = createWriteStream(temporary, { flags: 'w' });
  let keptLines = 0;
  try {
    for await (const { line, text } of datafileLines(file)) {
      if (text === '') continue;
      if (!isLoadable(text)) {
        dropped.push({ line, text });
        continue;
      }
      keptLines += 1;
      if (!out.write(`${text}\n`)) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  if (dropped.length === 0) {
    await rm(temporary, { force: true });
    return { file, keptLines, droppedLines: [] };
  }
  const droppedFile = `${file}.dropped-${now.toISOString().replaceAll(':', '-')}`;
  await writeFile(droppedFile, dropped.map((d) => `${d.line}\t${d.text}\n`).join(''), {
    flag: 'wx',
  });
  const handle = await open(temporary, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  return { file, keptLines, droppedLines: dropped.map((d) => d.line), droppedFile };
}

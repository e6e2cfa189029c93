import { open } from 'node:fs/promises';

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

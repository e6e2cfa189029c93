/**
 * A small, real, fillable disk for full-disk tests: a tmpfs of a given size mounted on a
 * fresh temporary directory (root only; CI runs as root). `unmount()` belongs in afterAll.
 *
 * ```ts
 * const disk = await mountTmpfs('registry-full', 24 * MiB); // undefined (reason printed) when not root
 * ...
 * await disk?.unmount();
 * ```
 */
import { execFile } from 'node:child_process';
import { open, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const MiB = 1024 * 1024;

export interface Tmpfs {
  dir: string;
  size: number;
  /** Free bytes as an unprivileged writer sees them. */
  free(): Promise<number>;
  /** Writes a file until the disk refuses (ENOSPC); returns its path (remove it to free the space). */
  fill(name?: string): Promise<string>;
  unmount(): Promise<void>;
}

/** Why tmpfs tests cannot run here, or undefined when they can. */
export function tmpfsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `tmpfs tests need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'tmpfs tests need root to mount a small disk (run as root, as CI does)';
  return undefined;
}

export async function mountTmpfs(label: string, size: number): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), `flotilla-${label}-`));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  let mounted = true;
  const free = async (): Promise<number> => {
    const stats = await statfs(dir);
    return Number(stats.bavail) * Number(stats.bsize);
  };
  return {
    dir,
    size,
    free,
    async fill(name = 'filler') {
      const path = join(dir, name);
      const handle = await open(path, 'w');
      const chunk = Buffer.alloc(MiB, 0x5a);
      try {
        // bounded: never more than the disk's size, in chunks of at most 1 MiB
        for (let written = 0; written <= size;) {
          const room = await free();
          if (room === 0) break;
          const piece = chunk.subarray(0, Math.min(chunk.length, room));
          try {
            const { bytesWritten } = await handle.write(piece, 0, piece.length, written);
            written += bytesWritten;
            if (bytesWritten === 0) break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw err;
          }
        }
      } finally {
        await handle.close();
      }
      return path;
    },
    async unmount() {
      if (!mounted) return;
      mounted = false;
      await run('umount', ['-l', dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

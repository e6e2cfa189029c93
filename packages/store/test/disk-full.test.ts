import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedStore, findCorruptLines, StoreWriteError } from '../src/index.js';

/**
 * The embedded store on a full disk (a small tmpfs; mounting needs root, as CI has): a write
 * that meets ENOSPC fails alone with a clear error and changes nothing, reads keep working, and
 * the next write succeeds once space exists.
 */

const run = promisify(execFile);
let mountPoint: string | undefined;
let mountProblem: string | undefined;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-store-full-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]);
    mountPoint = dir;
  } catch (err) {
    mountProblem = (err as Error).message.split('\n')[0];
    await rm(dir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  if (!mountPoint) return;
  await run('umount', [mountPoint]);
  await rm(mountPoint, { recursive: true, force: true });
});

async function fillDisk(dir: string, leaveBytes: number): Promise<string> {
  const filler = join(dir, 'filler');
  const { bavail, bsize } = await statfs(dir);
  await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - leaveBytes)));
  return filler;
}

describe('embedded store on a full disk', () => {
  it('fails the one write that meets ENOSPC, keeps reads, and takes the next write once space exists', async (ctx) => {
    if (!mountPoint) {
      console.warn(`skipping the full-disk test: cannot mount a tmpfs (${mountProblem})`);
      ctx.skip();
      return;
    }
    const dir = join(mountPoint, 'db');
    await mkdir(dir);
    const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    const docs = store.collection<{ n: number; blob?: string }>('docs');
    for (let n = 1; n <= 3; n += 1) await docs.insertOne({ _id: `d${n}`, n });

    // Room for part of the next append: the write lands partially, then fails.
    const filler = await fillDisk(mountPoint, 8 * 1024);
    const big = 'x'.repeat(256 * 1024);
    const failure = await docs.insertOne({ _id: 'big', n: 4, blob: big }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StoreWriteError);
    expect((failure as StoreWriteError).code).toBe('ENOSPC');
    expect((failure as Error).message).toMatch(/storage full/);
    await expect(docs.updateOne({ _id: 'd1' }, { $set: { blob: big } })).rejects.toBeInstanceOf(
      StoreWriteError,
    );

    // Reads answer, and memory matches the file: neither failed write is visible.
    expect(await docs.find({}, { sort: { _id: 1 } })).toEqual([
      { _id: 'd1', n: 1 },
      { _id: 'd2', n: 2 },
      { _id: 'd3', n: 3 },
    ]);
    const file = join(dir, 'docs.db');
    expect(await findCorruptLines(file)).toEqual([]);
    expect((await readFile(file, 'utf8')).endsWith('\n')).toBe(true);

    await rm(filler);
    await docs.insertOne({ _id: 'big', n: 4, blob: big });
    await docs.updateOne({ _id: 'd1' }, { $set: { n: 10 } });
    await store.close();

    const reopened = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    const again = reopened.collection<{ n: number }>('docs');
    expect(
      (await again.find({}, { sort: { _id: 1 }, projection: { blob: 0 } })).map((d) => [
        d._id,
        d.n,
      ]),
    ).toEqual([
      ['big', 4],
      ['d1', 10],
      ['d2', 2],
      ['d3', 3],
    ]);
    await reopened.close();
  });
});

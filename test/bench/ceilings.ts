/**
 * The machine's own ceilings, measured at the start of every `npm run bench`: what one node
 * thread hashes with SHA-256, what the bench directory's disk writes with O_DIRECT and with
 * buffered writes then fsync, and what a bare node:http server answers. Targets that depend on
 * the machine are stated against these, so a figure means the same on a fast and a slow machine.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, runCommand, startProcess, timeIt, wrk, type BenchRow } from './lib.js';

const MiB = 1024 * 1024;

export interface Ceilings {
  /** SHA-256 in one node thread, MiB/s. */
  sha256MiBps: number;
  /** Sequential O_DIRECT write of the bench directory's disk (4 MiB blocks, then fsync), MiB/s. */
  directWriteMiBps: number;
  /** Buffered write of the bench directory's disk followed by one fsync, MiB/s. */
  fsyncWriteMiBps: number;
  /** A bare node:http server answering a 2-byte 200, 64 connections, req/s. */
  bareHttpRps: number;
  /** p99 of that bare server at 64 connections, ms. */
  bareHttpP99Ms: number;
}

/** The lower of the hash and direct-write rates: what any durable, verified upload can reach. */
export function uploadCeilingMiBps(c: Ceilings): number {
  return Math.min(c.sha256MiBps, c.directWriteMiBps);
}

async function sha256Rate(mib: number): Promise<number> {
  const block = randomBytes(4 * MiB);
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const hash = createHash('sha256');
    const s = await timeIt(async () => {
      for (let i = 0; i < mib / 4; i++) hash.update(block);
      hash.digest();
    });
    best = Math.max(best, mib / s);
  }
  return best;
}

/** `dd` from /dev/zero into `dir`, timed around the whole command (it ends with fsync). */
async function ddRate(dir: string, mib: number, flags: string[]): Promise<number> {
  const file = join(dir, `ceiling-${flags.join('-')}`);
  let best = 0;
  try {
    for (let round = 0; round < 2; round++) {
      await runCommand('sync', []);
      const s = await timeIt(async () => {
        const res = await runCommand('dd', [
          'if=/dev/zero',
          `of=${file}`,
          'bs=4M',
          `count=${mib / 4}`,
          'conv=fsync',
          ...flags,
        ]);
        if (res.code !== 0) throw new Error(`dd ${flags.join(' ')} failed: ${res.stderr}`);
      });
      best = Math.max(best, mib / s);
      await rm(file, { force: true });
    }
  } finally {
    await rm(file, { force: true });
  }
  return best;
}

async function bareHttp(seconds: number): Promise<{ rps: number; p99Ms: number }> {
  const port = await freePort();
  const bare = await startProcess(
    process.execPath,
    ['-e', `require('node:http').createServer((q,r)=>r.end('ok')).listen(${port},'127.0.0.1')`],
    { readyUrl: `http://127.0.0.1:${port}/` },
  );
  try {
    const url = `http://127.0.0.1:${port}/`;
    await wrk({ url, connections: 64, seconds: 1 });
    const r = await wrk({ url, connections: 64, seconds });
    return { rps: r.rps, p99Ms: r.p99Ms };
  } finally {
    await bare.stop();
  }
}

export async function measureCeilings(
  dir: string,
  quick: boolean,
  log: (m: string) => void,
): Promise<Ceilings> {
  const sha256MiBps = await sha256Rate(quick ? 256 : 1024);
  log(`SHA-256 ${sha256MiBps.toFixed(0)} MiB/s`);
  const directWriteMiBps = await ddRate(dir, quick ? 256 : 1024, ['oflag=direct']);
  log(`O_DIRECT write ${directWriteMiBps.toFixed(0)} MiB/s`);
  const fsyncWriteMiBps = await ddRate(dir, 256, []);
  log(`buffered write + fsync ${fsyncWriteMiBps.toFixed(0)} MiB/s`);
  const http = await bareHttp(quick ? 3 : 5);
  log(`bare node:http ${http.rps.toFixed(0)} req/s, p99 ${http.p99Ms} ms`);
  return {
    sha256MiBps,
    directWriteMiBps,
    fsyncWriteMiBps,
    bareHttpRps: http.rps,
    bareHttpP99Ms: http.p99Ms,
  };
}

export function ceilingRows(c: Ceilings, quick: boolean): BenchRow[] {
  const row = (metric: string, ours: number, unit: string, note?: string): BenchRow => ({
    group: 'machine',
    metric,
    ours,
    unit,
    note,
  });
  return [
    row(
      'SHA-256, one node thread',
      c.sha256MiBps,
      'MiB/s',
      `best of 3 × ${quick ? 256 : 1024} MiB`,
    ),
    row(
      'O_DIRECT write of the bench disk',
      c.directWriteMiBps,
      'MiB/s',
      'dd bs=4M oflag=direct conv=fsync',
    ),
    row(
      'buffered write + fsync of the bench disk',
      c.fsyncWriteMiBps,
      'MiB/s',
      'dd bs=4M conv=fsync, 256 MiB',
    ),
    row('bare node:http 200, c=64', c.bareHttpRps, 'req/s', `p99 ${c.bareHttpP99Ms} ms`),
  ];
}

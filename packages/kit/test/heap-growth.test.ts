import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { setHeapGrowth } from '../src/heap-growth.js';

const fixture = fileURLToPath(new URL('./fixtures/heap-growth-child.ts', import.meta.url));

/**
 * Runs the fixture under V8's GC traces and returns the old generation's limit after the
 * fixture's full GC, divided by what that GC kept.
 */
async function limitOverKept(mode: 'set' | 'unset', flags: string[] = []): Promise<number> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      '--expose-gc',
      '--trace-gc',
      '--trace-incremental-marking',
      ...flags,
      fixture,
      mode,
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  // "Mark-Compact 18.0 (20.5) -> 46.4 (49.0) MB" … "(size/limit/slack) v8: 134MB / 131MB / 0MB"
  let kept: number | undefined;
  for (const line of stdout.split('\n')) {
    const full = /Mark-Compact [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
    if (full) kept = Number(full[1]);
    const start = /\(size\/limit\/slack\) v8: \d+MB \/ (\d+)MB/.exec(line);
    if (start && kept !== undefined && kept > 30) return Number(start[1]) / kept;
  }
  throw new Error(
    `no incremental marking start after the fixture's full GC:\n${stdout.slice(-2000)}`,
  );
}

describe('heap growth', () => {
  it('lets the old generation grow to about 2.5× what a full GC kept', async () => {
    // 2.5× plus the young generation's capacity (V8 adds it to the limit)
    const ratio = await limitOverKept('set');
    expect(ratio).toBeGreaterThan(2.4);
    expect(ratio).toBeLessThan(3.2);
  }, 60_000);

  it('leaves a --heap-growing-percent given on the command line alone', async () => {
    expect(setHeapGrowth(['--heap-growing-percent=20'])).toBe(false);
    expect(setHeapGrowth(['--heap_growing_percent=20'])).toBe(false);
    const ratio = await limitOverKept('set', ['--heap-growing-percent=20']);
    expect(ratio).toBeLessThan(1.8);
  }, 60_000);
});

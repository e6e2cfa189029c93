import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepTickObjectShape, keptTickObject } from '../src/tick-shape.js';

const fixture = fileURLToPath(new URL('./fixtures/tick-shape-child.ts', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-tick-shape-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs the fixture under V8's map log and counts the hidden classes built for tick objects
 * (`{ [async_id_symbol], [trigger_async_id_symbol], callback, args }`) after its marker.
 */
async function tickClassesBuiltAfterMarker(mode: 'kept' | 'unkept'): Promise<number> {
  const log = join(dir, `${mode}.log`);
  await promisify(execFile)(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      '--expose-gc',
      '--log-maps',
      `--logfile=${log}`,
      '--no-logfile-per-isolate',
      fixture,
      mode,
    ],
    { env: { ...process.env, LOG_LEVEL: 'silent' }, maxBuffer: 16 * 1024 * 1024 },
  );
  // map,Transition,<time>,<from>,<to>,<pc>,<line>,<column>,<reason>,<name>
  const keyOf = new Map<string, { from: string; name: string }>();
  let afterMarker = false;
  let built = 0;
  for (const line of (await readFile(log, 'latin1')).split('\n')) {
    if (!line.startsWith('map,Transition,')) continue;
    const fields = line.split(',');
    const [from, to, name] = [fields[3]!, fields[4]!, fields.slice(9).join(',')];
    if (name === 'tickShapeMarker') afterMarker = true;
    keyOf.set(to, { from, name });
    if (name !== 'args' || !afterMarker) continue;
    const names: string[] = [];
    for (let map = keyOf.get(to); map !== undefined && names.length < 4; map = keyOf.get(map.from))
      names.push(map.name);
    const [, callback, trigger, asyncId] = names;
    if (
      callback === 'callback' &&
      trigger?.includes('"trigger_async_id_symbol"') &&
      asyncId?.includes('"async_id_symbol"')
    )
      built += 1;
  }
  return built;
}

describe('tick-shape', () => {
  it('keeps one tick object, once', () => {
    const kept = keptTickObject();
    expect(kept).toBeTypeOf('object');
    keepTickObjectShape();
    expect(keptTickObject()).toBe(kept);
    expect(Object.getOwnPropertySymbols(kept!).map(String)).toContain('Symbol(async_id_symbol)');
  });

  it('without it, a full collection between ticks frees the tick object class and the next tick builds a new one', async () => {
    expect(await tickClassesBuiltAfterMarker('unkept')).toBeGreaterThan(0);
  });

  it('with it, tick objects keep their class through full collections', async () => {
    expect(await tickClassesBuiltAfterMarker('kept')).toBe(0);
  });
});

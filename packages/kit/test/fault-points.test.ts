import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseFaultSpec } from '../src/fault-points.js';

describe('fault points', () => {
  it('parses a point name with an optional hit count', () => {
    expect(parseFaultSpec(undefined)).toBeUndefined();
    expect(parseFaultSpec('')).toBeUndefined();
    expect(parseFaultSpec('registry.manifest.after-link')).toEqual({
      name: 'registry.manifest.after-link',
      remaining: 1,
    });
    expect(parseFaultSpec('publish.after-blobs:3')).toEqual({
      name: 'publish.after-blobs',
      remaining: 3,
    });
    expect(() => parseFaultSpec('Bad Name')).toThrow(/FLOTILLA_FAULT_POINT/);
    expect(() => parseFaultSpec('x:0')).toThrow(/FLOTILLA_FAULT_POINT/);
  });

  it('kills the process at the chosen hit of the chosen point, and only there', () => {
    const script = [
      'const { faultPoint } = await import(process.env.MODULE);',
      "faultPoint('other'); console.log('a');",
      "faultPoint('here'); console.log('b');",
      "faultPoint('here'); console.log('c');",
    ].join('\n');
    const run = (point: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: {
          ...process.env,
          FLOTILLA_FAULT_POINT: point,
          MODULE: new URL('../src/fault-points.ts', import.meta.url).href,
        },
        encoding: 'utf8',
      });
    const second = run('here:2');
    expect(second.signal).toBe('SIGKILL');
    expect(second.stdout.split('\n').filter(Boolean)).toEqual(['a', 'b']);
    const unset = run('');
    expect(unset.status).toBe(0);
    expect(unset.stdout.split('\n').filter(Boolean)).toEqual(['a', 'b', 'c']);
  });
});

import { describe, expect, it } from 'vitest';
import { growthExponent, growthRow } from './lib.js';
import { curveSvg } from './plot.js';

const at = (f: (x: number) => number) => [100, 1000, 10_000].map((x) => ({ x, y: f(x) }));

describe('bench curves', () => {
  it('fits the exponent of how a cost grows with the size', () => {
    expect(growthExponent(at((x) => 3 * x))).toBeCloseTo(1, 5);
    expect(growthExponent(at(() => 7))).toBeCloseTo(0, 5);
    expect(growthExponent(at((x) => x * x))).toBeCloseTo(2, 5);
    expect(growthExponent(at((x) => x * Math.log(x)))).toBeGreaterThan(1.1);
    expect(growthExponent([{ x: 10, y: 1 }])).toBeNaN();
  });

  it('passes linear and flat only within their limits', () => {
    expect(
      growthRow(
        'g',
        'm',
        at((x) => 2 * x + 50),
        'linear',
      ).pass,
    ).toBe(true);
    expect(
      growthRow(
        'g',
        'm',
        at((x) => x * x),
        'linear',
      ).pass,
    ).toBe(false);
    expect(
      growthRow(
        'g',
        'm',
        at(() => 1.2),
        'flat',
      ).pass,
    ).toBe(true);
    expect(
      growthRow(
        'g',
        'm',
        at((x) => Math.sqrt(x)),
        'flat',
      ).pass,
    ).toBe(false);
  });

  it('plots a curve to an SVG with a mark per point', async () => {
    const points = [
      ...at((x) => x).map((p) => ({ ...p, series: 'first' })),
      ...at((x) => x / 20).map((p) => ({ ...p, series: 're-sync' })),
    ];
    const svg = await curveSvg({
      id: 't',
      title: 'sync time by tags',
      x: { label: 'tags', log: true },
      y: { label: 'seconds' },
      points,
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('sync time by tags');
    expect(svg).toContain('re-sync');
    // one point symbol per measured point, labelled with its values
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(points.length);
    expect(svg).toContain('aria-label="tags: 10000; seconds: 500; series: re-sync"');
  });
});

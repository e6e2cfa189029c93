/** Renders a bench curve to SVG with Vega-Lite (no canvas, no browser). */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Curve } from './lib.js';

export async function curveSvg(curve: Curve): Promise<string> {
  const axis = (a: Curve['x'], field: 'x' | 'y') => ({
    field,
    type: 'quantitative' as const,
    title: a.label,
    scale: a.log ? { type: 'log' as const } : { zero: field === 'y' },
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: curve.title,
    width: 480,
    height: 280,
    background: 'white',
    data: { values: curve.points },
    mark: { type: 'line', point: true },
    encoding: {
      x: axis(curve.x, 'x'),
      y: axis(curve.y, 'y'),
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

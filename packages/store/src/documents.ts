import type { Document } from './port.js';

/**
 * A copy of `value` without the object fields whose value is `undefined`, which is what MongoDB
 * stores for them (the driver runs with `ignoreUndefined`); nedb would keep such keys in memory
 * until the next load, so both adapters return and store documents through this.
 */
export function withoutUndefined<V>(value: V): V {
  if (Array.isArray(value)) return value.map(withoutUndefined) as V;
  if (value === null || typeof value !== 'object') return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const copy: Document = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) copy[k] = withoutUndefined(v);
  return copy as V;
}

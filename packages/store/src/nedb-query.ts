/**
 * Rewrites a MongoDB filter into the nedb query that selects the same documents. nedb speaks
 * most of the language but disagrees on a few points callers rely on:
 *
 * - `null` matches a missing field in MongoDB (`{f: null}`, `$eq`, `$in` with null); in nedb only
 *   a stored null.
 * - `$ne` and `$nin` mean "no element" on array fields in MongoDB; nedb's mean "some element".
 *   They become nedb's top-level `$not` of the positive condition, which has MongoDB's meaning
 *   (also for missing fields).
 * - `$eq` and field-level `$not` do not exist in nedb; `$regex` must be a RegExp there (MongoDB
 *   also takes a string with `$options`).
 */

import type { Filter } from './port.js';

type Query = Record<string, unknown>;

function isOperatorObject(value: unknown): value is Record<string, unknown> {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    !(value instanceof Date) &&
    !(value instanceof RegExp) &&
    Object.keys(value).some((k) => k.startsWith('$'))
  );
}

function equals(field: string, value: unknown): Query {
  return value === null
    ? { $or: [{ [field]: null }, { [field]: { $exists: false } }] }
    : { [field]: value };
}

function inList(field: string, list: unknown[]): Query {
  return list.includes(null)
    ? { $or: [{ [field]: { $in: list } }, { [field]: { $exists: false } }] }
    : { [field]: { $in: list } };
}

function asList(operator: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${operator} needs an array`);
  return value;
}

/** The conditions on one field, split into what stays on the field and what moves to `$and`. */
function fieldConditions(
  field: string,
  operators: Record<string, unknown>,
  extra: Query[],
): Query | undefined {
  const kept: Query = {};
  for (const [operator, operand] of Object.entries(operators)) {
    switch (operator) {
      case '$eq':
        extra.push(equals(field, operand));
        break;
      case '$ne':
        extra.push({ $not: equals(field, operand) });
        break;
      case '$in': {
        const list = asList(operator, operand);
        if (list.includes(null)) extra.push(inList(field, list));
        else kept.$in = list;
        break;
      }
      case '$nin':
        extra.push({ $not: inList(field, asList(operator, operand)) });
        break;
      case '$not':
        extra.push({ $not: toNedbQuery({ [field]: operand }) });
        break;
      case '$regex':
        kept.$regex =
          typeof operand === 'string'
            ? new RegExp(operand, typeof operators.$options === 'string' ? operators.$options : '')
            : operand;
        break;
      case '$options':
        break;
      default:
        kept[operator] = operand;
    }
  }
  return Object.keys(kept).length > 0 ? kept : undefined;
}

export function toNedbQuery(filter: Filter): Query {
  const query: Query = {};
  const extra: Query[] = [];
  for (const [key, condition] of Object.entries(filter)) {
    if (key === '$and' || key === '$or') {
      query[key] = asList(key, condition).map((clause) => toNedbQuery(clause as Filter));
    } else if (key === '$nor') {
      extra.push({
        $not: { $or: asList(key, condition).map((clause) => toNedbQuery(clause as Filter)) },
      });
    } else if (key.startsWith('$')) {
      query[key] = condition;
    } else if (condition === null) {
      extra.push(equals(key, null));
    } else if (isOperatorObject(condition)) {
      const kept = fieldConditions(key, condition, extra);
      if (kept) query[key] = kept;
    } else {
      query[key] = condition;
    }
  }
  if (extra.length > 0) query.$and = [...((query.$and as Query[] | undefined) ?? []), ...extra];
  return query;
}

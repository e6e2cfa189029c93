import type { Document, UpdateOperators } from './port.js';

const OPERATORS = new Set([
  '$set',
  '$unset',
  '$inc',
  '$push',
  '$addToSet',
  '$pull',
  '$setOnInsert',
]);

export interface CheckedUpdate {
  /** The operators that modify a matched document, without empty ones and without `$setOnInsert`. */
  modifiers: Record<string, Document>;
  setOnInsert: Document | undefined;
}

/**
 * Both adapters refuse the same malformed updates: a bare replacement document would silently
 * replace a whole document in nedb, and an unknown operator means a caller expects semantics
 * that one of the adapters does not have.
 */
export function checkUpdate(update: UpdateOperators): CheckedUpdate {
  const entries = Object.entries(update as Record<string, unknown>);
  if (entries.length === 0) throw new TypeError('an update needs at least one operator');
  const modifiers: Record<string, Document> = {};
  let setOnInsert: Document | undefined;
  for (const [operator, fields] of entries) {
    if (!OPERATORS.has(operator))
      throw new TypeError(`unsupported update operator ${JSON.stringify(operator)}`);
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
      throw new TypeError(`update operator ${operator} takes an object of fields`);
    }
    const body = fields as Document;
    if (Object.keys(body).length === 0) continue;
    if (operator === '$setOnInsert') setOnInsert = body;
    else modifiers[operator] = body;
  }
  return { modifiers, setOnInsert };
}

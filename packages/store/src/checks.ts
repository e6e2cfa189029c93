/**
 * The inputs both adapters refuse alike, checked before either touches its data: what one of
 * them would misread must be an error on both.
 *
 * - `undefined` anywhere in a filter or an update: the MongoDB driver (with `ignoreUndefined`)
 *   drops it, so `deleteMany({mirrorId: undefined})` would delete every document there, while
 *   nedb would match none.
 * - Query operators outside the shared subset (nedb and MongoDB read the others differently or
 *   not at all).
 * - Field names containing `.` or starting with `$` in stored values: nedb refuses them,
 *   MongoDB 5+ stores them but cannot query or update them by path.
 * - `_id` anywhere but the top level of an upsert's filter (MongoDB fails with ImmutableField,
 *   nedb would insert), and `_id` in an update (immutable on MongoDB).
 * - Documents over MongoDB's 16 MiB BSON limit, measured the way MongoDB measures them.
 */

import { BSON } from 'mongodb';
import { DocumentTooLargeError, type Document, type Filter, type UpdateOperators } from './port.js';

/** MongoDB's maximum BSON document size. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

const LOGICAL = new Set(['$and', '$or', '$nor']);
const FIELD_OPERATORS = new Set([
  '$eq',
  '$ne',
  '$in',
  '$nin',
  '$lt',
  '$lte',
  '$gt',
  '$gte',
  '$exists',
  '$regex',
  '$options',
  '$not',
  '$elemMatch',
  '$size',
]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function assertDefined(value: unknown, path: string, what: string): void {
  if (value === undefined) throw new TypeError(`undefined at ${path} in ${what}`);
  if (Array.isArray(value)) value.forEach((v, i) => assertDefined(v, `${path}.${i}`, what));
  else if (isPlainObject(value))
    for (const [k, v] of Object.entries(value)) assertDefined(v, `${path}.${k}`, what);
}

function checkCondition(field: string, condition: unknown): void {
  if (!isPlainObject(condition)) return;
  const keys = Object.keys(condition);
  if (!keys.some((k) => k.startsWith('$'))) return;
  for (const operator of keys) {
    if (!FIELD_OPERATORS.has(operator))
      throw new TypeError(`unsupported query operator ${JSON.stringify(operator)} on ${field}`);
  }
  if (isPlainObject(condition.$not)) checkCondition(field, condition.$not);
  const elem = condition.$elemMatch;
  if (isPlainObject(elem)) {
    // A condition on the elements themselves ({$gt: 1}) or a filter on sub-documents.
    if (Object.keys(elem).some((k) => FIELD_OPERATORS.has(k))) checkCondition(field, elem);
    else checkFilterOperators(elem);
  }
}

function checkFilterOperators(filter: Record<string, unknown>): void {
  for (const [key, condition] of Object.entries(filter)) {
    if (LOGICAL.has(key)) {
      if (!Array.isArray(condition)) throw new TypeError(`${key} needs an array`);
      for (const clause of condition) {
        if (!isPlainObject(clause)) throw new TypeError(`${key} needs an array of filters`);
        checkFilterOperators(clause);
      }
    } else if (key.startsWith('$')) {
      throw new TypeError(`unsupported query operator ${JSON.stringify(key)}`);
    } else {
      checkCondition(key, condition);
    }
  }
}

/** Throws a TypeError for a filter either adapter would misread. */
export function checkFilter(filter: Filter<Document> | Record<string, unknown>): void {
  if (!isPlainObject(filter)) throw new TypeError('a filter must be a plain object');
  assertDefined(filter, 'filter', 'a filter');
  checkFilterOperators(filter);
}

/** Mentions of `_id` below the top level (inside `$and`, `$or`, `$nor`). */
function nestedIdMention(filter: Record<string, unknown>): boolean {
  for (const [key, condition] of Object.entries(filter)) {
    if (!LOGICAL.has(key) || !Array.isArray(condition)) continue;
    for (const clause of condition) {
      if (isPlainObject(clause) && ('_id' in clause || nestedIdMention(clause))) return true;
    }
  }
  return false;
}

/** Throws a TypeError for an upsert's filter whose `_id` one adapter would treat differently. */
export function checkUpsertFilter(filter: Record<string, unknown>): void {
  if (nestedIdMention(filter))
    throw new TypeError('an upsert may name _id only at the top level of its filter');
}

function checkStoredKeys(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkStoredKeys(v, `${path}.${i}`));
    return;
  }
  if (!isPlainObject(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (key.includes('.') || key.startsWith('$'))
      throw new TypeError(
        `field name ${JSON.stringify(key)} at ${path} contains '.' or starts with '$'`,
      );
    checkStoredKeys(v, `${path}.${key}`);
  }
}

/**
 * Throws a TypeError for a document whose field names one adapter would refuse or misread.
 * (An `undefined` field of a document is simply not stored, on both.)
 */
export function checkDocument(doc: Record<string, unknown>): void {
  if (!isPlainObject(doc)) throw new TypeError('a document must be a plain object');
  checkStoredKeys(doc, 'document');
}

/**
 * Throws a TypeError when two operators touch one path or a path and its parent (`$set` and
 * `$setOnInsert` of `a`; `$set` of `a` and `$inc` of `a.b`): MongoDB refuses such an update,
 * nedb would apply both.
 */
function checkConflictingPaths(update: UpdateOperators): void {
  const seen: string[] = [];
  for (const fields of Object.values(update as Record<string, unknown>)) {
    if (!isPlainObject(fields)) continue;
    for (const path of Object.keys(fields)) {
      const clash = seen.find(
        (other) => other === path || other.startsWith(`${path}.`) || path.startsWith(`${other}.`),
      );
      if (clash !== undefined)
        throw new TypeError(
          `update paths ${JSON.stringify(clash)} and ${JSON.stringify(path)} conflict`,
        );
      seen.push(path);
    }
  }
}

/** Throws a TypeError for an update with undefined values, `_id`, bad field names or conflicting paths. */
export function checkUpdateValues(update: UpdateOperators): void {
  assertDefined(update, 'update', 'an update');
  checkConflictingPaths(update);
  for (const [operator, fields] of Object.entries(update as Record<string, unknown>)) {
    if (!isPlainObject(fields)) continue;
    for (const [path, value] of Object.entries(fields)) {
      if (path === '_id' || path.startsWith('_id.'))
        throw new TypeError(`${operator} may not change _id`);
      if (path.split('.').some((part) => part.length === 0 || part.startsWith('$')))
        throw new TypeError(`${operator} path ${JSON.stringify(path)} is not a field path`);
      if (operator === '$pull') {
        // A value to remove or a condition on the elements, never stored.
        if (isPlainObject(value)) {
          if (Object.keys(value).some((k) => k.startsWith('$'))) checkCondition(path, value);
          else checkFilterOperators(value);
        }
      } else if (
        (operator === '$push' || operator === '$addToSet') &&
        isPlainObject(value) &&
        '$each' in value
      ) {
        checkStoredKeys(value.$each, `${operator}.${path}`);
      } else {
        checkStoredKeys(value, `${operator}.${path}`);
      }
    }
  }
}

/** The size MongoDB gives `doc` as BSON. */
export function documentBytes(doc: Record<string, unknown>): number {
  return BSON.calculateObjectSize(doc);
}

/** Throws DocumentTooLargeError when `doc` exceeds MongoDB's 16 MiB limit. */
export function checkDocumentSize(collection: string, doc: Record<string, unknown>): void {
  const bytes = documentBytes(doc);
  if (bytes > MAX_DOCUMENT_BYTES) throw new DocumentTooLargeError(collection, bytes);
}

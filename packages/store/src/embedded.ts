/**
 * The embedded adapter: @seald-io/nedb, one append-only datafile per collection (see paths.ts),
 * every document in memory. nedb already serialises its own operations per datastore; this
 * adapter additionally serialises its writes per collection, so the multi-step ones
 * (find-then-update for `findOneAndUpdate` with `sort`, upsert, exact `modifiedCount`) are atomic
 * with respect to every other write through the same store.
 *
 * Only one process may open a directory at a time (nedb has no file locking).
 */

import { createReadStream, mkdirSync } from 'node:fs';
import { access, constants, rm, stat, truncate } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isDeepStrictEqual } from 'node:util';
import type NedbModule from '@seald-io/nedb';
import { assertDatafileWhole, dropTornTail } from './datafile.js';
import {
  checkDocument,
  checkDocumentSize,
  checkFilter,
  checkUpdateValues,
  checkUpsertFilter,
} from './checks.js';
import { withoutUndefined } from './documents.js';
import { toNedbQuery } from './nedb-query.js';
import { collectionFile } from './paths.js';
import {
  DuplicateKeyError,
  type Collection,
  type Document,
  type Filter,
  type FindOptions,
  type IndexSpec,
  type Store,
  type StoreLogger,
  type UpdateOperators,
  type UpdateOptions,
  type UpdateResult,
  type WithId,
} from './port.js';
import { checkUpdate, type CheckedUpdate } from './update.js';

type Datastore = NedbModule.default<Document>;
type Sort = Record<string, 1 | -1>;
type Projection = Record<string, 0 | 1>;

/** The two pieces of nedb's document model the upsert path needs (lib/model.js is CommonJS, untyped). */
interface NedbModel {
  modify(doc: Document, update: Record<string, Document>): Document;
  deepCopy<V>(value: V): V;
}

/** nedb's index tables (untyped in its typings). */
interface NedbIndexes {
  indexes: Record<string, { unique: boolean; sparse: boolean } | undefined>;
  ttlIndexes: Record<string, number | undefined>;
}

/** The pieces of nedb's loader a rollback uses to rebuild memory from the file without writing. */
interface NedbLoader {
  executor: { pushAsync<R>(task: () => Promise<R>, forceQueuing?: boolean): Promise<R> };
  persistence: {
    treatRawStreamAsync(
      stream: NodeJS.ReadableStream,
    ): Promise<{ data: Document[]; indexes: Record<string, Record<string, unknown>> }>;
  };
  indexes: Record<string, unknown>;
  _resetIndexes(data?: Document[]): void;
}

/** Errors of the file system under a write: the write failed, nothing was wrong with the input. */
const STORAGE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG']);

function storageErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STORAGE_ERRORS.has(code) ? code : undefined;
}

/** The error a write that met a full (or failing) disk rejects with. */
export class StoreWriteError extends Error {
  override readonly name = 'StoreWriteError';
  constructor(
    readonly collection: string,
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(
      code === 'ENOSPC' || code === 'EDQUOT'
        ? `storage full: failed to write collection ${collection} (${code}); nothing was changed`
        : `failed to write collection ${collection} (${code}); nothing was changed`,
      options,
    );
  }
}

// nedb ships a CommonJS module whose typings declare an ES default export; require() gives the
// constructor itself whatever the interop mode.
const require = createRequire(import.meta.url);
const NedbDatastore = require('@seald-io/nedb') as typeof NedbModule.default;
const nedbModel = require('@seald-io/nedb/lib/model.js') as NedbModel;
const NedbIndex = require('@seald-io/nedb/lib/indexes.js') as new (
  options: Record<string, unknown>,
) => unknown;

export interface EmbeddedStoreOptions {
  /** Directory of the datafiles; created when missing. */
  dir: string;
  /** Compaction period; 0 disables periodic compaction (close still compacts). */
  compactIntervalMs?: number;
  logger?: StoreLogger;
}

interface CollectionHandle {
  readonly name: string;
  readonly ds: Datastore;
  readonly ready: Promise<void>;
  /** Runs `task` after every write queued before it on this collection. */
  serial<R>(task: () => Promise<R>): Promise<R>;
  /** Settles when every queued write has settled. */
  idle(): Promise<void>;
  /** The datafile's size (0 when absent), taken before a write. */
  size(): Promise<number>;
  /**
   * Undoes a write whose append failed: cuts the datafile back to `size` (a partial line would
   * otherwise merge with the next append) and rebuilds memory from the file without writing.
   */
  rollback(size: number): Promise<void>;
}

function createHandle(
  dir: string,
  name: string,
  logger: StoreLogger | undefined,
): CollectionHandle {
  const filename = collectionFile(dir, name);
  // nedb would skip corrupt lines below 10 % of the file: refuse any (see assertDatafileWhole).
  const ds: Datastore = new NedbDatastore<Document>({
    filename,
    autoload: false,
    corruptAlertThreshold: 0,
  });
  const ready = (async () => {
    const dropped = await dropTornTail(filename);
    if (dropped > 0) {
      const fields = { collection: name, bytes: dropped };
      logger?.warn(fields, 'dropped a torn write at the end of the datafile');
    }
    try {
      await assertDatafileWhole(filename);
    } catch (err) {
      logger?.error(
        { err, collection: name, file: filename },
        'refusing to load a corrupt datafile',
      );
      throw err;
    }
    await ds.loadDatabaseAsync();
  })();
  // A load failure is reported by every operation that awaits `ready`, not as an unhandled rejection.
  ready.catch(() => undefined);
  let tail: Promise<unknown> = Promise.resolve();
  return {
    name,
    ds,
    ready,
    serial<R>(task: () => Promise<R>): Promise<R> {
      const run = tail.then(task, task);
      tail = run.catch(() => undefined);
      return run;
    },
    idle: () => tail.then(() => undefined),
    async size() {
      try {
        return (await stat(filename)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw err;
      }
    },
    async rollback(size) {
      await truncate(filename, size);
      const loader = ds as unknown as NedbLoader;
      await loader.executor.pushAsync(async () => {
        const treated = await loader.persistence.treatRawStreamAsync(
          createReadStream(filename, { encoding: 'utf8' }),
        );
        loader._resetIndexes();
        for (const [key, options] of Object.entries(treated.indexes))
          loader.indexes[key] ??= new NedbIndex(options);
        loader._resetIndexes(treated.data);
      }, true);
    },
  };
}

function toStoreError(collection: string, err: unknown): unknown {
  if (err instanceof Error && (err as { errorType?: unknown }).errorType === 'uniqueViolated') {
    const key = (err as { key?: unknown }).key;
    return new DuplicateKeyError(collection, `key ${JSON.stringify(key)}`);
  }
  return err;
}

/** The checks every update path runs before touching data (see checks.ts). */
function checkedUpdate(
  filter: Filter,
  update: UpdateOperators,
  upsert: boolean | undefined,
): CheckedUpdate {
  checkFilter(filter);
  const checked = checkUpdate(update);
  checkUpdateValues(update);
  if (upsert) checkUpsertFilter(filter);
  return checked;
}

/** A filter for nedb, after the checks both adapters run. */
function query(filter: Filter): Record<string, unknown> {
  checkFilter(filter);
  return toNedbQuery(filter);
}

const UNSET = Symbol('unset');

/** MongoDB's rule for the document an upsert starts from: the filter's equality conditions. */
function upsertSeed(filter: Filter): Document {
  const seed: Document = {};
  const collect = (clause: Filter): void => {
    for (const [key, condition] of Object.entries(clause)) {
      if (key === '$and' && Array.isArray(condition)) {
        for (const part of condition) collect(part as Filter);
        continue;
      }
      if (key.startsWith('$')) continue;
      const value = equalityValue(condition);
      if (value !== UNSET) setPath(seed, key, nedbModel.deepCopy(value));
    }
  };
  collect(filter);
  return seed;
}

function equalityValue(condition: unknown): unknown {
  if (condition instanceof RegExp) return UNSET;
  if (
    condition !== null &&
    typeof condition === 'object' &&
    !Array.isArray(condition) &&
    !(condition instanceof Date)
  ) {
    const keys = Object.keys(condition);
    if (keys.some((k) => k.startsWith('$'))) {
      return '$eq' in condition ? (condition as { $eq: unknown }).$eq : UNSET;
    }
  }
  return condition;
}

function setPath(target: Document, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[part] = {};
    node = node[part] as Document;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** `filter` restricted to the document `_id`, keeping nedb's `_id` index usable when possible. */
function byIdAnd(id: string, filter: Filter): Filter {
  return '_id' in filter ? { $and: [{ _id: id }, filter] } : { ...filter, _id: id };
}

/** nedb's cursor returns whole documents for `{_id: 1}`; MongoDB returns only the id. */
function splitProjection(projection: Projection | undefined): {
  nedb: Projection | undefined;
  idOnly: boolean;
} {
  if (!projection) return { nedb: undefined, idOnly: false };
  const keys = Object.keys(projection);
  if (keys.length > 0 && keys.every((k) => k === '_id') && projection._id === 1)
    return { nedb: undefined, idOnly: true };
  return { nedb: projection, idOnly: false };
}

class EmbeddedCollection<T extends Document> implements Collection<T> {
  constructor(
    private readonly handle: CollectionHandle,
    private readonly assertOpen: () => void,
    private readonly logger: StoreLogger | undefined,
  ) {}

  get name(): string {
    return this.handle.name;
  }

  async insertOne(doc: T & { _id?: string }): Promise<WithId<T>> {
    if (doc._id !== undefined && typeof doc._id !== 'string')
      throw new TypeError('_id must be a string');
    checkDocument(doc);
    const stored = withoutUndefined(doc) as Document;
    // nedb generates a 16-character _id when there is none.
    checkDocumentSize(this.name, { _id: '0123456789abcdef', ...stored });
    const ds = await this.open();
    return this.write(() => ds.insertAsync(stored)) as Promise<WithId<T>>;
  }

  async findOne(
    filter: Filter<T>,
    options: Pick<FindOptions, 'projection' | 'sort'> = {},
  ): Promise<WithId<T> | null> {
    const [first] = await this.find(filter, { ...options, limit: 1 });
    return first ?? null;
  }

  async find(filter: Filter<T>, options: FindOptions = {}): Promise<WithId<T>[]> {
    const ds = await this.open();
    const { nedb: projection, idOnly } = splitProjection(options.projection);
    let cursor = ds.findAsync(query(filter));
    if (options.sort) cursor = cursor.sort(options.sort);
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit) cursor = cursor.limit(options.limit);
    if (projection) cursor = cursor.projection(projection);
    const docs = (await cursor) as unknown as WithId<T>[];
    return idOnly ? docs.map((d) => ({ _id: d._id }) as WithId<T>) : docs;
  }

  async updateOne(
    filter: Filter<T>,
    update: UpdateOperators,
    options: UpdateOptions = {},
  ): Promise<UpdateResult> {
    const checked = checkedUpdate(filter, update, options.upsert);
    const nedbQuery = toNedbQuery(filter);
    const ds = await this.open();
    return this.write(async () => {
      const before = await this.first(ds, nedbQuery);
      if (!before) {
        if (!options.upsert) return { matchedCount: 0, modifiedCount: 0 };
        const inserted = await this.insertUpserted(ds, filter, checked);
        return { matchedCount: 0, modifiedCount: 0, upsertedId: inserted._id };
      }
      const after = await this.updateById(ds, before, nedbQuery, checked);
      if (!after) return { matchedCount: 0, modifiedCount: 0 };
      return { matchedCount: 1, modifiedCount: isDeepStrictEqual(before, after) ? 0 : 1 };
    });
  }

  async updateMany(filter: Filter<T>, update: UpdateOperators): Promise<UpdateResult> {
    const { modifiers } = checkedUpdate(filter, update, false);
    const nedbQuery = toNedbQuery(filter);
    const ds = await this.open();
    return this.write(async () => {
      const before = new Map<string, Document>();
      for (const doc of (await ds.findAsync(nedbQuery)) as unknown as WithId<Document>[])
        before.set(doc._id, doc);
      if (before.size === 0 || Object.keys(modifiers).length === 0) {
        return { matchedCount: before.size, modifiedCount: 0 };
      }
      for (const doc of before.values())
        checkDocumentSize(this.name, nedbModel.modify(doc, modifiers));
      const { affectedDocuments } = await ds.updateAsync(nedbQuery, modifiers, {
        multi: true,
        returnUpdatedDocs: true,
      });
      const after = (affectedDocuments ?? []) as WithId<Document>[];
      const modifiedCount = after.filter(
        (doc) => !isDeepStrictEqual(before.get(doc._id), doc),
      ).length;
      return { matchedCount: after.length, modifiedCount };
    });
  }

  async findOneAndUpdate(
    filter: Filter<T>,
    update: UpdateOperators,
    options: UpdateOptions & { sort?: Sort } = {},
  ): Promise<WithId<T> | null> {
    const checked = checkedUpdate(filter, update, options.upsert);
    const nedbQuery = toNedbQuery(filter);
    const ds = await this.open();
    return this.write(async () => {
      const before = await this.first(ds, nedbQuery, options.sort);
      if (!before) return options.upsert ? this.insertUpserted(ds, filter, checked) : null;
      return this.updateById(ds, before, nedbQuery, checked);
    }) as Promise<WithId<T> | null>;
  }

  async deleteOne(filter: Filter<T>): Promise<{ deletedCount: number }> {
    const nedbQuery = query(filter);
    const ds = await this.open();
    const deletedCount = await this.write(() => ds.removeAsync(nedbQuery, { multi: false }));
    return { deletedCount };
  }

  async deleteMany(filter: Filter<T>): Promise<{ deletedCount: number }> {
    const nedbQuery = query(filter);
    const ds = await this.open();
    const deletedCount = await this.write(() => ds.removeAsync(nedbQuery, { multi: true }));
    return { deletedCount };
  }

  async countDocuments(filter: Filter<T> = {}): Promise<number> {
    const nedbQuery = query(filter);
    const ds = await this.open();
    return (await ds.countAsync(nedbQuery)) as unknown as number;
  }

  async createIndex(spec: IndexSpec): Promise<void> {
    const fields = Object.keys(spec.keys);
    const [only] = fields;
    if (only === undefined) throw new TypeError('an index needs at least one key');
    const ds = await this.open();
    const wanted = {
      unique: spec.unique ?? false,
      sparse: spec.sparse ?? false,
      expireAfterSeconds: spec.expireAfterSeconds,
    };
    // nedb names an index by its sorted fields and keeps the first definition it saw.
    const indexName = [...fields].sort().join(',');
    const internals = ds as unknown as NedbIndexes;
    await this.write(async () => {
      const existing = internals.indexes[indexName];
      const existingTtl = internals.ttlIndexes[indexName];
      if (
        existing &&
        (existing.unique !== wanted.unique ||
          existing.sparse !== wanted.sparse ||
          existingTtl !== wanted.expireAfterSeconds)
      ) {
        this.logger?.info(
          {
            collection: this.name,
            index: indexName,
            from: {
              unique: existing.unique,
              sparse: existing.sparse,
              expireAfterSeconds: existingTtl,
            },
            to: wanted,
          },
          'migrating a changed index',
        );
        await ds.removeIndexAsync(indexName);
        delete internals.ttlIndexes[indexName];
      }
      await ds.ensureIndexAsync({
        fieldName: fields.length === 1 ? only : fields,
        unique: wanted.unique,
        sparse: wanted.sparse,
        ...(wanted.expireAfterSeconds === undefined
          ? {}
          : { expireAfterSeconds: wanted.expireAfterSeconds }),
      });
    });
  }

  private async open(): Promise<Datastore> {
    this.assertOpen();
    await this.handle.ready;
    return this.handle.ds;
  }

  private async write<R>(task: () => Promise<R>): Promise<R> {
    const { handle } = this;
    try {
      return await handle.serial(async () => {
        const size = await handle.size();
        try {
          return await task();
        } catch (err) {
          const code = storageErrorCode(err);
          if (code === undefined) throw err;
          try {
            await handle.rollback(size);
          } catch (rollbackErr) {
            this.logger?.error(
              { err: rollbackErr, collection: this.name },
              'failed to roll back a failed write',
            );
          }
          this.logger?.error({ err, collection: this.name }, 'failed to write collection');
          throw new StoreWriteError(this.name, code, { cause: err });
        }
      });
    } catch (err) {
      throw toStoreError(handle.name, err);
    }
  }

  private async first(
    ds: Datastore,
    filter: Filter,
    sort?: Sort,
  ): Promise<WithId<Document> | undefined> {
    let cursor = ds.findAsync(filter);
    if (sort) cursor = cursor.sort(sort);
    const [doc] = (await cursor.limit(1)) as unknown as WithId<Document>[];
    return doc;
  }

  /**
   * Updates the document `id` if it still matches `filter` (so a change made between the read
   * and this write is respected) and returns it as it is after the update.
   */
  private async updateById(
    ds: Datastore,
    before: WithId<Document>,
    filter: Filter,
    { modifiers }: CheckedUpdate,
  ): Promise<WithId<T> | null> {
    const byId = byIdAnd(before._id, filter);
    if (Object.keys(modifiers).length === 0)
      return (await ds.findOneAsync(byId)) as unknown as WithId<T> | null;
    checkDocumentSize(this.name, nedbModel.modify(before, modifiers));
    const { affectedDocuments } = await ds.updateAsync(byId, modifiers, {
      returnUpdatedDocs: true,
    });
    return (affectedDocuments ?? null) as WithId<T> | null;
  }

  private async insertUpserted(
    ds: Datastore,
    filter: Filter,
    { modifiers, setOnInsert }: CheckedUpdate,
  ): Promise<WithId<T>> {
    let doc = upsertSeed(filter);
    if (setOnInsert) doc = nedbModel.modify(doc, { $set: setOnInsert });
    if (Object.keys(modifiers).length > 0) doc = nedbModel.modify(doc, modifiers);
    checkDocumentSize(this.name, { _id: '0123456789abcdef', ...doc });
    return (await ds.insertAsync(doc)) as WithId<T>;
  }
}

export function createEmbeddedStore(options: EmbeddedStoreOptions): Store {
  const { dir, compactIntervalMs = 60_000, logger } = options;
  mkdirSync(dir, { recursive: true });
  const handles = new Map<string, CollectionHandle>();
  let closing: Promise<void> | undefined;
  let compacting = false;

  const assertOpen = (): void => {
    if (closing) throw new Error('store is closed');
  };

  const compact = async (handle: CollectionHandle): Promise<void> => {
    // A collection that failed to load has nothing of ours to compact.
    if (
      !(await handle.ready.then(
        () => true,
        () => false,
      ))
    )
      return;
    await handle.idle();
    try {
      await handle.ds.compactDatafileAsync();
    } catch (err) {
      // A rewrite that failed (a full disk) leaves a partial temporary file: give its space back.
      if (storageErrorCode(err) !== undefined)
        await rm(`${collectionFile(dir, handle.name)}~`, { force: true });
      throw err;
    }
  };

  const compactAll = async (): Promise<void> => {
    if (compacting || closing) return;
    compacting = true;
    try {
      for (const handle of handles.values()) {
        try {
          await compact(handle);
        } catch (err) {
          logger?.warn({ err, collection: handle.name }, 'failed to compact collection');
        }
      }
    } finally {
      compacting = false;
    }
  };

  const timer =
    compactIntervalMs > 0 ? setInterval(() => void compactAll(), compactIntervalMs) : undefined;
  // Compaction must never keep a process alive on its own.
  timer?.unref();

  return {
    kind: 'embedded',

    collection<T extends Document = Document>(name: string): Collection<T> {
      assertOpen();
      let handle = handles.get(name);
      if (!handle) {
        handle = createHandle(dir, name, logger);
        handles.set(name, handle);
      }
      return new EmbeddedCollection<T>(handle, assertOpen, logger);
    },

    async ping(): Promise<void> {
      assertOpen();
      await access(dir, constants.W_OK);
      await Promise.all([...handles.values()].map((h) => h.ready));
    },

    close(): Promise<void> {
      closing ??= (async () => {
        if (timer) clearInterval(timer);
        const failures: unknown[] = [];
        for (const handle of handles.values()) {
          try {
            await compact(handle);
          } catch (err) {
            logger?.error(
              { err, collection: handle.name },
              'failed to compact collection at close',
            );
            failures.push(err);
          }
        }
        handles.clear();
        if (failures.length > 0)
          throw new AggregateError(failures, 'failed to compact the embedded store at close');
      })();
      return closing;
    },
  };
}

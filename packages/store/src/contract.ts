/**
 * The store contract suite: every adapter must pass it (run it from a test file). It declares
 * vitest tests, so only test code imports it, through `@flotilla/store/contract`.
 *
 * It pins down the behaviour both adapters share; where nedb and MongoDB differ (see the
 * report in docs/architecture.md's store section and the port's comments) the suite stays off
 * that ground on purpose.
 */

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCounters, createLeases, runExclusive } from './lease.js';
import {
  DocumentTooLargeError,
  DuplicateKeyError,
  type Collection,
  type Document,
  type Store,
  type WithId,
} from './port.js';

export interface StoreContractSubject {
  store: Store;
  /** Opens a new Store over the same data; the suite has closed `store` before calling it. */
  reopen: () => Promise<Store>;
  /** Deletes the data (temporary directory, database). Stores are closed by the suite. */
  cleanup: () => Promise<void>;
  /**
   * Opens another Store over the same data while `store` stays open (a second replica). Adapters
   * that allow one process per data set (embedded) leave it out: the concurrency cases then race
   * through one store, as in-process replicas do.
   */
  another?: () => Promise<Store>;
}

export type StoreContractFactory = () => Promise<StoreContractSubject>;

export interface StoreContractOptions {
  /** Concurrent writers in the optimistic-concurrency tests (default 20). */
  writers?: number;
}

interface Item extends Document {
  name: string;
  n?: number;
  tags?: string[];
  meta?: Record<string, unknown>;
  /** Fields the update and claim cases set. */
  one?: boolean;
  flag?: boolean;
  picked?: boolean;
  owner?: number;
  x?: number;
}

interface Counter extends Document {
  counter: number;
  version: number;
}

/** Read, modify, write guarded by `version`; retries on conflict. Returns the attempts it took. */
async function guardedIncrement(
  counters: Collection<Counter>,
  id: string,
  maxAttempts: number,
): Promise<number> {
  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    const current = await counters.findOne({ _id: id });
    if (!current) throw new Error('counter vanished');
    const result = await counters.updateOne(
      { _id: id, version: current.version },
      { $set: { counter: current.counter + 1, version: current.version + 1 } },
    );
    if (result.matchedCount === 1) return attempt;
  }
  throw new Error(`no successful write after ${maxAttempts} attempts`);
}

function names(docs: WithId<Item>[]): string[] {
  return docs.map((d) => d.name);
}

export function storeContract(
  name: string,
  factory: StoreContractFactory,
  options: StoreContractOptions = {},
): void {
  const writers = options.writers ?? 20;

  describe(`store contract: ${name}`, () => {
    let subject: StoreContractSubject;
    let opened: Store[];
    let store: Store;
    let items: Collection<Item>;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
      opened = [store];
      items = store.collection<Item>('items');
    });

    afterEach(async () => {
      for (const s of opened) await s.close();
      await subject.cleanup();
    });

    async function seed(): Promise<void> {
      for (const [i, n] of [3, 1, 4, 1, 5].entries()) {
        await items.insertOne({
          _id: `id-${i}`,
          name: `item-${i}`,
          n,
          tags: i % 2 === 0 ? ['even'] : ['odd'],
        });
      }
    }

    describe('basics', () => {
      it('reports its kind and answers ping', async () => {
        expect(['embedded', 'mongo']).toContain(store.kind);
        await expect(store.ping()).resolves.toBeUndefined();
        expect(items.name).toBe('items');
      });

      it('rejects operations after close', async () => {
        await items.insertOne({ name: 'a' });
        await store.close();
        await expect(items.findOne({})).rejects.toThrow();
        await expect(items.insertOne({ name: 'b' })).rejects.toThrow();
      });
    });

    describe('insertOne', () => {
      it('generates a string _id and returns the stored document', async () => {
        const stored = await items.insertOne({ name: 'a', n: 1 });
        expect(typeof stored._id).toBe('string');
        expect(stored._id.length).toBeGreaterThanOrEqual(16);
        expect(stored).toMatchObject({ name: 'a', n: 1 });
        expect(await items.findOne({ _id: stored._id })).toEqual(stored);
      });

      it('keeps a provided _id and refuses a second document with it', async () => {
        const stored = await items.insertOne({ _id: 'fixed', name: 'a' });
        expect(stored._id).toBe('fixed');
        const err = await items.insertOne({ _id: 'fixed', name: 'b' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateKeyError);
        expect((err as DuplicateKeyError).collection).toBe('items');
        expect(await items.countDocuments()).toBe(1);
      });

      it('round-trips nested objects, arrays, booleans, null and dates', async () => {
        const at = new Date('2026-01-02T03:04:05.678Z');
        const stored = await items.insertOne({
          name: 'x',
          meta: { deep: { list: [1, 'two', { three: 3 }] }, flag: true, none: null, at },
        });
        const found = await items.findOne({ _id: stored._id });
        expect(found?.meta).toEqual({
          deep: { list: [1, 'two', { three: 3 }] },
          flag: true,
          none: null,
          at,
        });
        expect(found?.meta?.at).toBeInstanceOf(Date);
      });
    });

    describe('queries', () => {
      beforeEach(seed);

      it('findOne matches equality and dotted paths, null when nothing matches', async () => {
        await items.insertOne({
          _id: 'nested',
          name: 'nested',
          meta: { owner: { team: 'infra' } },
        });
        expect((await items.findOne({ name: 'item-2' }))?._id).toBe('id-2');
        expect((await items.findOne({ 'meta.owner.team': 'infra' }))?._id).toBe('nested');
        expect(await items.findOne({ name: 'missing' })).toBeNull();
      });

      it('supports the shared comparison and logical operators', async () => {
        const q = async (filter: Document): Promise<string[]> =>
          names(await items.find(filter, { sort: { name: 1 } }));
        expect(await q({ n: { $in: [1, 5] } })).toEqual(['item-1', 'item-3', 'item-4']);
        expect(await q({ n: { $nin: [1, 5] } })).toEqual(['item-0', 'item-2']);
        expect(await q({ n: { $lt: 3 } })).toEqual(['item-1', 'item-3']);
        expect(await q({ n: { $lte: 3 } })).toEqual(['item-0', 'item-1', 'item-3']);
        expect(await q({ n: { $gt: 3 } })).toEqual(['item-2', 'item-4']);
        expect(await q({ n: { $gte: 4, $lt: 5 } })).toEqual(['item-2']);
        expect(await q({ n: { $ne: 1 } })).toEqual(['item-0', 'item-2', 'item-4']);
        expect(await q({ name: { $regex: /-[34]$/ } })).toEqual(['item-3', 'item-4']);
        expect(await q({ $or: [{ n: 3 }, { name: 'item-4' }] })).toEqual(['item-0', 'item-4']);
        expect(await q({ $and: [{ n: { $gt: 1 } }, { tags: 'even' }] })).toEqual([
          'item-0',
          'item-2',
          'item-4',
        ]);
      });

      it('matches array elements by equality and $in, and fields by $exists', async () => {
        await items.insertOne({ _id: 'bare', name: 'bare' });
        expect(names(await items.find({ tags: 'odd' }, { sort: { name: 1 } }))).toEqual([
          'item-1',
          'item-3',
        ]);
        expect(
          names(await items.find({ tags: { $in: ['odd', 'none'] } }, { sort: { name: 1 } })),
        ).toEqual(['item-1', 'item-3']);
        expect(names(await items.find({ tags: { $exists: false } }))).toEqual(['bare']);
        expect(await items.countDocuments({ n: { $exists: true } })).toBe(5);
      });

      it('sorts on several keys, skips and limits', async () => {
        expect(names(await items.find({}, { sort: { n: 1, name: -1 } }))).toEqual([
          'item-3',
          'item-1',
          'item-0',
          'item-2',
          'item-4',
        ]);
        expect(names(await items.find({}, { sort: { n: -1, name: 1 } }))).toEqual([
          'item-4',
          'item-2',
          'item-0',
          'item-1',
          'item-3',
        ]);
        expect(names(await items.find({}, { sort: { n: 1, name: 1 }, skip: 1, limit: 2 }))).toEqual(
          ['item-3', 'item-0'],
        );
        expect(names(await items.find({}, { sort: { name: 1 }, skip: 4, limit: 10 }))).toEqual([
          'item-4',
        ]);
        expect(await items.find({}, { sort: { name: 1 }, skip: 5 })).toEqual([]);
        expect((await items.findOne({ n: 1 }, { sort: { name: -1 } }))?.name).toBe('item-3');
      });

      it('projects by inclusion and by exclusion', async () => {
        expect(await items.findOne({ _id: 'id-0' }, { projection: { name: 1 } })).toEqual({
          _id: 'id-0',
          name: 'item-0',
        });
        expect(await items.findOne({ _id: 'id-0' }, { projection: { name: 1, _id: 0 } })).toEqual({
          name: 'item-0',
        });
        expect(await items.findOne({ _id: 'id-0' }, { projection: { _id: 1 } })).toEqual({
          _id: 'id-0',
        });
        expect(await items.findOne({ _id: 'id-0' }, { projection: { tags: 0, n: 0 } })).toEqual({
          _id: 'id-0',
          name: 'item-0',
        });
        expect(
          await items.find({ n: 1 }, { projection: { n: 1, _id: 0 }, sort: { name: 1 } }),
        ).toEqual([{ n: 1 }, { n: 1 }]);
      });

      it('counts all documents or the matching ones', async () => {
        expect(await items.countDocuments()).toBe(5);
        expect(await items.countDocuments({ n: 1 })).toBe(2);
        expect(await items.countDocuments({ n: 99 })).toBe(0);
        expect(await store.collection('empty').countDocuments()).toBe(0);
      });
    });

    describe('MongoDB query semantics (emulated by the embedded store)', () => {
      beforeEach(async () => {
        await items.insertOne({
          _id: 'null',
          name: 'null',
          n: null as unknown as number,
          tags: ['x', 'y'],
        });
        await items.insertOne({ _id: 'missing', name: 'missing', tags: ['y'] });
        await items.insertOne({ _id: 'one', name: 'one', n: 1, tags: [] });
        await items.insertOne({ _id: 'two', name: 'Two', n: 2 });
      });
      const ids = async (filter: Document): Promise<string[]> =>
        (await items.find(filter)).map((d) => d._id).sort();

      it('null equality matches null and missing fields', async () => {
        expect(await ids({ n: null })).toEqual(['missing', 'null']);
        expect(await ids({ n: { $eq: null } })).toEqual(['missing', 'null']);
        expect(await ids({ n: { $in: [null, 2] } })).toEqual(['missing', 'null', 'two']);
        expect(await ids({ n: { $ne: null } })).toEqual(['one', 'two']);
        expect(await ids({ n: { $nin: [null, 2] } })).toEqual(['one']);
        expect(await ids({ n: { $exists: true } })).toEqual(['null', 'one', 'two']);
        expect(await items.countDocuments({ n: null })).toBe(2);
      });

      it('$ne and $nin on an array field mean that no element matches', async () => {
        expect(await ids({ tags: { $ne: 'x' } })).toEqual(['missing', 'one', 'two']);
        expect(await ids({ tags: { $nin: ['x', 'z'] } })).toEqual(['missing', 'one', 'two']);
        expect(await ids({ n: { $ne: 1 } })).toEqual(['missing', 'null', 'two']);
      });

      it('supports $eq, field-level $not, $nor and string $regex with $options', async () => {
        expect(await ids({ n: { $eq: 2 } })).toEqual(['two']);
        expect(await ids({ n: { $not: { $gt: 1 } } })).toEqual(['missing', 'null', 'one']);
        expect(await ids({ $nor: [{ n: 1 }, { name: 'Two' }] })).toEqual(['missing', 'null']);
        expect(await ids({ name: { $regex: '^t', $options: 'i' } })).toEqual(['two']);
        expect(await ids({ name: { $not: /^t/i } })).toEqual(['missing', 'null', 'one']);
      });

      it('matches array elements with $elemMatch and array lengths with $size', async () => {
        expect(await ids({ tags: { $size: 2 } })).toEqual(['null']);
        expect(await ids({ tags: { $size: 0 } })).toEqual(['one']);
        await items.insertOne({
          _id: 'm',
          name: 'm',
          meta: {
            mirrors: [
              { host: 'a', up: false },
              { host: 'b', up: true },
            ],
          },
        });
        expect(await ids({ 'meta.mirrors': { $elemMatch: { host: 'b', up: true } } })).toEqual([
          'm',
        ]);
        expect(await ids({ 'meta.mirrors': { $elemMatch: { host: 'a', up: true } } })).toEqual([]);
        expect(await ids({ 'meta.mirrors.host': 'b' })).toEqual(['m']);
      });

      it('deletes and updates with the same selection as find', async () => {
        expect(await items.updateMany({ n: null }, { $set: { flag: true } })).toEqual({
          matchedCount: 2,
          modifiedCount: 2,
        });
        expect(await items.deleteMany({ tags: { $ne: 'x' }, n: { $ne: null } })).toEqual({
          deletedCount: 2,
        });
        expect(await ids({})).toEqual(['missing', 'null']);
      });

      it('stores no field for an undefined value', async () => {
        const stored = await items.insertOne({
          _id: 'u',
          name: 'u',
          n: undefined,
          meta: { a: undefined, b: 1 },
        });
        await items.updateOne({ _id: 'u' }, { $set: { 'meta.c': 2 } });
        const found = await items.findOne({ _id: 'u' });
        expect(found && Object.keys(found).sort()).toEqual(['_id', 'meta', 'name']);
        expect(found?.meta && Object.keys(found.meta).sort()).toEqual(['b', 'c']);
        expect(Object.keys(stored)).not.toContain('n');
        expect(await ids({ _id: 'u', n: { $exists: false } })).toEqual(['u']);
      });
    });

    describe('update operators', () => {
      let id: string;
      beforeEach(async () => {
        id = (await items.insertOne({ name: 'doc', n: 1, tags: ['a', 'b'] }))._id;
      });
      const current = async (): Promise<WithId<Item> | null> => items.findOne({ _id: id });

      it('$set sets top-level and dotted paths, creating nested objects', async () => {
        const result = await items.updateOne(
          { _id: id },
          { $set: { name: 'renamed', 'meta.owner.team': 'infra' } },
        );
        expect(result).toEqual({ matchedCount: 1, modifiedCount: 1 });
        expect(await current()).toEqual({
          _id: id,
          name: 'renamed',
          n: 1,
          tags: ['a', 'b'],
          meta: { owner: { team: 'infra' } },
        });
        await items.updateOne({ _id: id }, { $set: { 'meta.owner.lead': 'kim' } });
        expect((await current())?.meta).toEqual({ owner: { team: 'infra', lead: 'kim' } });
      });

      it('$unset removes top-level and dotted fields', async () => {
        await items.updateOne({ _id: id }, { $set: { meta: { a: 1, b: 2 } } });
        await items.updateOne({ _id: id }, { $unset: { n: '', 'meta.a': '' } });
        expect(await current()).toEqual({ _id: id, name: 'doc', tags: ['a', 'b'], meta: { b: 2 } });
      });

      it('$inc adds to a number and creates a missing field', async () => {
        await items.updateOne({ _id: id }, { $inc: { n: 41, 'meta.hits': 2 } });
        await items.updateOne({ _id: id }, { $inc: { 'meta.hits': -1 } });
        expect(await current()).toMatchObject({ n: 42, meta: { hits: 1 } });
      });

      it('$push appends one value or several with $each, and creates the array', async () => {
        await items.updateOne({ _id: id }, { $push: { tags: 'c' } });
        await items.updateOne({ _id: id }, { $push: { tags: { $each: ['d', 'a'] } } });
        await items.updateOne({ _id: id }, { $push: { 'meta.log': 'first' } });
        expect(await current()).toMatchObject({
          tags: ['a', 'b', 'c', 'd', 'a'],
          meta: { log: ['first'] },
        });
      });

      it('$addToSet adds only missing values, one or several with $each', async () => {
        expect(await items.updateOne({ _id: id }, { $addToSet: { tags: 'a' } })).toEqual({
          matchedCount: 1,
          modifiedCount: 0,
        });
        await items.updateOne({ _id: id }, { $addToSet: { tags: 'c' } });
        await items.updateOne({ _id: id }, { $addToSet: { tags: { $each: ['b', 'd', 'e'] } } });
        expect((await current())?.tags).toEqual(['a', 'b', 'c', 'd', 'e']);
      });

      it('$pull removes every equal value, values matching $in, and sub-documents matching a condition', async () => {
        await items.updateOne({ _id: id }, { $push: { tags: { $each: ['c', 'a'] } } });
        await items.updateOne({ _id: id }, { $pull: { tags: 'a' } });
        expect((await current())?.tags).toEqual(['b', 'c']);
        await items.updateOne({ _id: id }, { $pull: { tags: { $in: ['b', 'z'] } } });
        expect((await current())?.tags).toEqual(['c']);
        await items.updateOne(
          { _id: id },
          {
            $set: {
              'meta.mirrors': [
                { host: 'a', up: true },
                { host: 'b', up: false },
              ],
            },
          },
        );
        await items.updateOne({ _id: id }, { $pull: { 'meta.mirrors': { up: false } } });
        expect((await current())?.meta).toEqual({ mirrors: [{ host: 'a', up: true }] });
        expect(await items.updateOne({ _id: id }, { $pull: { tags: 'absent' } })).toEqual({
          matchedCount: 1,
          modifiedCount: 0,
        });
      });

      it('combines operators in one update', async () => {
        await items.updateOne(
          { _id: id },
          { $set: { name: 'x' }, $inc: { n: 1 }, $push: { tags: 'c' }, $unset: { missing: '' } },
        );
        expect(await current()).toEqual({ _id: id, name: 'x', n: 2, tags: ['a', 'b', 'c'] });
      });

      it('reports matched and modified counts, and a no-op as not modified', async () => {
        expect(await items.updateOne({ _id: id }, { $set: { name: 'doc' } })).toEqual({
          matchedCount: 1,
          modifiedCount: 0,
        });
        expect(await items.updateOne({ _id: 'nope' }, { $set: { name: 'x' } })).toEqual({
          matchedCount: 0,
          modifiedCount: 0,
        });
      });

      it('refuses an update without operators or with an unknown operator', async () => {
        await expect(items.updateOne({ _id: id }, {})).rejects.toThrow(TypeError);
        await expect(
          items.updateOne({ _id: id }, { $rename: { n: 'm' } } as never),
        ).rejects.toThrow(TypeError);
        await expect(items.updateOne({ _id: id }, { name: 'replaced' } as never)).rejects.toThrow(
          TypeError,
        );
        expect((await current())?.name).toBe('doc');
      });

      it('updateOne changes a single document, updateMany every matching one', async () => {
        await items.insertOne({ name: 'doc', n: 1 });
        await items.insertOne({ name: 'doc', n: 2 });
        expect(await items.updateOne({ name: 'doc' }, { $set: { one: true } })).toEqual({
          matchedCount: 1,
          modifiedCount: 1,
        });
        expect(await items.countDocuments({ one: true })).toBe(1);
        expect(await items.updateMany({ name: 'doc' }, { $set: { n: 2 } })).toEqual({
          matchedCount: 3,
          modifiedCount: 2,
        });
        expect(await items.updateMany({ name: 'doc' }, { $set: { flag: true } })).toEqual({
          matchedCount: 3,
          modifiedCount: 3,
        });
        expect(await items.updateMany({ name: 'none' }, { $set: { flag: true } })).toEqual({
          matchedCount: 0,
          modifiedCount: 0,
        });
      });
    });

    describe('upsert', () => {
      it('inserts from the filter equalities, $set and $setOnInsert, then updates without $setOnInsert', async () => {
        const first = await items.updateOne(
          { name: 'up', 'meta.kind': 'x', n: { $gt: 0 } },
          { $set: { tags: ['t'] }, $setOnInsert: { 'meta.created': 1 }, $inc: { hits: 1 } },
          { upsert: true },
        );
        expect(first.matchedCount).toBe(0);
        expect(first.modifiedCount).toBe(0);
        expect(typeof first.upsertedId).toBe('string');
        const doc = await items.findOne({ _id: first.upsertedId });
        expect(doc).toEqual({
          _id: first.upsertedId,
          name: 'up',
          meta: { kind: 'x', created: 1 },
          tags: ['t'],
          hits: 1,
        });

        await items.updateOne({ _id: first.upsertedId }, { $set: { n: 1 } });
        const second = await items.updateOne(
          { name: 'up', 'meta.kind': 'x', n: { $gt: 0 } },
          { $set: { tags: ['u'] }, $setOnInsert: { 'meta.created': 2 }, $inc: { hits: 1 } },
          { upsert: true },
        );
        expect(second).toEqual({ matchedCount: 1, modifiedCount: 1 });
        expect(await items.findOne({ name: 'up' })).toEqual({ ...doc, n: 1, tags: ['u'], hits: 2 });
        expect(await items.countDocuments()).toBe(1);
      });

      it('uses an _id given in the filter', async () => {
        const result = await items.updateOne(
          { _id: 'chosen' },
          { $set: { name: 'c' } },
          { upsert: true },
        );
        expect(result.upsertedId).toBe('chosen');
        expect(await items.findOne({ _id: 'chosen' })).toEqual({ _id: 'chosen', name: 'c' });
      });

      it('findOneAndUpdate with upsert returns the inserted document', async () => {
        const doc = await items.findOneAndUpdate(
          { name: 'fresh' },
          { $inc: { n: 1 } },
          { upsert: true },
        );
        expect(doc).toMatchObject({ name: 'fresh', n: 1 });
        expect(typeof doc?._id).toBe('string');
        expect(await items.findOne({ _id: doc?._id })).toEqual(doc);
      });
    });

    describe('findOneAndUpdate', () => {
      beforeEach(seed);

      it('returns the document as it is after the update', async () => {
        const doc = await items.findOneAndUpdate(
          { _id: 'id-1' },
          { $inc: { n: 10 }, $push: { tags: 'x' } },
        );
        expect(doc).toEqual({ _id: 'id-1', name: 'item-1', n: 11, tags: ['odd', 'x'] });
        expect(await items.findOne({ _id: 'id-1' })).toEqual(doc);
      });

      it('updates the first document in sort order', async () => {
        const lowest = await items.findOneAndUpdate(
          { tags: 'even' },
          { $set: { picked: true } },
          { sort: { n: 1 } },
        );
        expect(lowest?._id).toBe('id-0');
        const highest = await items.findOneAndUpdate(
          { picked: { $exists: false } },
          { $set: { picked: true } },
          { sort: { n: -1, name: 1 } },
        );
        expect(highest?._id).toBe('id-4');
        expect(await items.countDocuments({ picked: true })).toBe(2);
      });

      it('returns null and changes nothing when nothing matches', async () => {
        expect(await items.findOneAndUpdate({ n: 99 }, { $set: { n: 100 } })).toBeNull();
        expect(await items.countDocuments({ n: 100 })).toBe(0);
      });

      it('claims distinct documents under concurrency (a work queue)', async () => {
        const claims = await Promise.all(
          Array.from({ length: 7 }, (_, worker) =>
            items.findOneAndUpdate(
              { owner: { $exists: false } },
              { $set: { owner: worker } },
              { sort: { name: 1 } },
            ),
          ),
        );
        const claimed = claims.filter((d) => d !== null).map((d) => d._id);
        expect(claimed).toHaveLength(5);
        expect(new Set(claimed).size).toBe(5);
        expect(claims.filter((d) => d === null)).toHaveLength(2);
      });
    });

    describe('delete', () => {
      beforeEach(seed);

      it('deleteOne removes one matching document', async () => {
        expect(await items.deleteOne({ n: 1 })).toEqual({ deletedCount: 1 });
        expect(await items.countDocuments({ n: 1 })).toBe(1);
        expect(await items.deleteOne({ n: 99 })).toEqual({ deletedCount: 0 });
      });

      it('deleteMany removes every matching document', async () => {
        expect(await items.deleteMany({ tags: 'even' })).toEqual({ deletedCount: 3 });
        expect(names(await items.find({}, { sort: { name: 1 } }))).toEqual(['item-1', 'item-3']);
        expect(await items.deleteMany({})).toEqual({ deletedCount: 2 });
        expect(await items.countDocuments()).toBe(0);
      });
    });

    describe('indexes', () => {
      it('a unique index refuses duplicates on insert, update and upsert with DuplicateKeyError', async () => {
        await items.createIndex({ keys: { name: 1 }, unique: true });
        await items.createIndex({ keys: { name: 1 }, unique: true }); // idempotent
        await items.insertOne({ _id: 'a', name: 'a' });
        await items.insertOne({ _id: 'b', name: 'b' });
        const errors = await Promise.all([
          items.insertOne({ name: 'a' }).catch((e: unknown) => e),
          items.updateOne({ _id: 'b' }, { $set: { name: 'a' } }).catch((e: unknown) => e),
          items
            .updateOne({ _id: 'c' }, { $set: { name: 'a' } }, { upsert: true })
            .catch((e: unknown) => e),
          items.findOneAndUpdate({ _id: 'b' }, { $set: { name: 'a' } }).catch((e: unknown) => e),
        ]);
        for (const err of errors) {
          expect(err).toBeInstanceOf(DuplicateKeyError);
          expect((err as DuplicateKeyError).collection).toBe('items');
        }
        expect(names(await items.find({}, { sort: { name: 1 } }))).toEqual(['a', 'b']);
      });

      it('a compound unique index refuses only the same combination', async () => {
        const tags = store.collection<{ repo: string; tag: string }>('tags');
        await tags.createIndex({ keys: { repo: 1, tag: 1 }, unique: true });
        await tags.insertOne({ repo: 'fedora/httpd', tag: '39' });
        await tags.insertOne({ repo: 'fedora/httpd', tag: '40' });
        await tags.insertOne({ repo: 'fedora/nginx', tag: '39' });
        await expect(tags.insertOne({ repo: 'fedora/httpd', tag: '39' })).rejects.toBeInstanceOf(
          DuplicateKeyError,
        );
        await expect(
          tags.updateOne({ repo: 'fedora/nginx' }, { $set: { repo: 'fedora/httpd' } }),
        ).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await tags.countDocuments()).toBe(3);
      });

      it('a sparse unique index allows many documents without the field', async () => {
        await items.createIndex({ keys: { 'meta.digest': 1 }, unique: true, sparse: true });
        await items.insertOne({ name: 'a' });
        await items.insertOne({ name: 'b' });
        await items.insertOne({ name: 'c', meta: { digest: 'sha256:1' } });
        await expect(
          items.insertOne({ name: 'd', meta: { digest: 'sha256:1' } }),
        ).rejects.toBeInstanceOf(DuplicateKeyError);
        expect(await items.countDocuments()).toBe(3);
      });

      it('creating a unique index over existing duplicates fails with DuplicateKeyError', async () => {
        await items.insertOne({ name: 'same' });
        await items.insertOne({ name: 'same' });
        await expect(items.createIndex({ keys: { name: 1 }, unique: true })).rejects.toBeInstanceOf(
          DuplicateKeyError,
        );
      });

      it('a non-unique index accepts duplicates and serves queries', async () => {
        await items.createIndex({ keys: { n: -1 } });
        await items.insertOne({ name: 'a', n: 1 });
        await items.insertOne({ name: 'b', n: 1 });
        expect(await items.countDocuments({ n: 1 })).toBe(2);
      });
    });

    describe('optimistic concurrency', () => {
      it(`${writers} concurrent read-modify-write writers guarded by a version field lose no update`, async () => {
        const counters = store.collection<Counter>('counters');
        const { _id } = await counters.insertOne({ counter: 0, version: 0 });
        const attempts = await Promise.all(
          Array.from({ length: writers }, () => guardedIncrement(counters, _id, writers * 10)),
        );
        expect(await counters.findOne({ _id })).toEqual({
          _id,
          counter: writers,
          version: writers,
        });
        expect(attempts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(writers);
      });

      it('a stale version matches nothing', async () => {
        const counters = store.collection<Counter>('counters');
        const { _id } = await counters.insertOne({ counter: 0, version: 3 });
        expect(
          await counters.updateOne({ _id, version: 2 }, { $set: { counter: 9, version: 3 } }),
        ).toEqual({ matchedCount: 0, modifiedCount: 0 });
        expect(
          await counters.findOneAndUpdate({ _id, version: 2 }, { $set: { counter: 9 } }),
        ).toBeNull();
        expect(await counters.findOne({ _id })).toEqual({ _id, counter: 0, version: 3 });
      });

      it(`${writers} concurrent findOneAndUpdate writers guarded by version each see their own result`, async () => {
        const counters = store.collection<Counter>('counters');
        const { _id } = await counters.insertOne({ counter: 0, version: 0 });
        const seen = await Promise.all(
          Array.from({ length: writers }, async () => {
            for (let attempt = 0; attempt < writers * 10; attempt += 1) {
              const current = await counters.findOne({ _id });
              if (!current) throw new Error('counter vanished');
              const next = await counters.findOneAndUpdate(
                { _id, version: current.version },
                { $inc: { counter: 1, version: 1 } },
              );
              if (next) return next.counter;
            }
            throw new Error('no successful write');
          }),
        );
        expect([...seen].sort((a, b) => a - b)).toEqual(
          Array.from({ length: writers }, (_, i) => i + 1),
        );
        expect((await counters.findOne({ _id }))?.counter).toBe(writers);
      });
    });

    describe('refusals (inputs one adapter would misread)', () => {
      beforeEach(seed);

      it('refuses undefined anywhere in a filter, on every operation', async () => {
        const filters = [
          { name: undefined },
          { n: { $in: [1, undefined] } },
          { $or: [{ name: 'item-0' }, { n: undefined }] },
          { meta: { a: undefined } },
        ] as never[];
        for (const filter of filters) {
          await expect(items.find(filter), JSON.stringify(filter)).rejects.toThrow(TypeError);
          await expect(items.findOne(filter)).rejects.toThrow(TypeError);
          await expect(items.countDocuments(filter)).rejects.toThrow(TypeError);
          await expect(items.deleteOne(filter)).rejects.toThrow(TypeError);
          await expect(items.deleteMany(filter)).rejects.toThrow(TypeError);
          await expect(items.updateMany(filter, { $set: { x: 1 } })).rejects.toThrow(TypeError);
          await expect(items.updateOne(filter, { $set: { x: 1 } })).rejects.toThrow(TypeError);
          await expect(items.findOneAndUpdate(filter, { $set: { x: 1 } })).rejects.toThrow(
            TypeError,
          );
        }
        expect(await items.countDocuments()).toBe(5);
        expect(await items.countDocuments({ x: 1 })).toBe(0);
      });

      it('refuses undefined anywhere in an update', async () => {
        const updates = [
          { $set: { n: undefined } },
          { $set: { meta: { a: undefined } } },
          { $push: { tags: { $each: ['a', undefined] } } },
          { $setOnInsert: { n: undefined }, $set: { m: 1 } },
        ] as never[];
        for (const update of updates) {
          await expect(
            items.updateOne({ _id: 'id-0' }, update),
            JSON.stringify(update),
          ).rejects.toThrow(TypeError);
          await expect(items.updateMany({}, update)).rejects.toThrow(TypeError);
          await expect(
            items.findOneAndUpdate({ _id: 'new' }, update, { upsert: true }),
          ).rejects.toThrow(TypeError);
        }
        expect(await items.findOne({ _id: 'id-0' })).toEqual({
          _id: 'id-0',
          name: 'item-0',
          n: 3,
          tags: ['even'],
        });
        expect(await items.countDocuments()).toBe(5);
      });

      it('refuses an update whose operators touch one path, or a path and its parent', async () => {
        for (const update of [
          { $set: { n: 1 }, $setOnInsert: { n: 2 } },
          { $set: { meta: {} }, $inc: { 'meta.count': 1 } },
          { $unset: { 'meta.a': '' }, $set: { 'meta.a': 1 } },
        ] as never[]) {
          await expect(
            items.updateOne({ _id: 'id-0' }, update, { upsert: true }),
            JSON.stringify(update),
          ).rejects.toThrow(TypeError);
        }
        // Sibling paths are fine.
        await items.updateOne({ _id: 'id-0' }, { $set: { 'meta.a': 1 }, $inc: { 'meta.b': 1 } });
        expect((await items.findOne({ _id: 'id-0' }))?.meta).toEqual({ a: 1, b: 1 });
      });

      it('refuses unknown query operators', async () => {
        for (const filter of [
          { $where: 'true' },
          { n: { $all: [1] } },
          { n: { $type: 'number' } },
          { $expr: { $gt: ['$n', 1] } },
          { n: { $not: { $foo: 1 } } },
        ] as never[]) {
          await expect(items.find(filter), JSON.stringify(filter)).rejects.toThrow(TypeError);
          await expect(items.deleteMany(filter)).rejects.toThrow(TypeError);
        }
        expect(await items.countDocuments()).toBe(5);
      });

      it("refuses field names with '.' or a leading '$' in stored values", async () => {
        for (const doc of [
          { name: 'x', 'a.b': 1 },
          { name: 'x', $a: 1 },
          { name: 'x', meta: { 'a.b': 1 } },
          { name: 'x', meta: { list: [{ $x: 1 }] } },
        ] as never[]) {
          await expect(items.insertOne(doc), JSON.stringify(doc)).rejects.toThrow(TypeError);
        }
        await expect(
          items.updateOne({ _id: 'id-0' }, { $set: { meta: { 'a.b': 1 } } }),
        ).rejects.toThrow(TypeError);
        await expect(
          items.updateOne({ _id: 'id-0' }, { $push: { tags: { $x: 1 } } }),
        ).rejects.toThrow(TypeError);
        await expect(items.updateOne({ _id: 'id-0' }, { $set: { 'a.$': 1 } })).rejects.toThrow(
          TypeError,
        );
        expect(await items.countDocuments()).toBe(5);
        // Dotted paths as update targets stay allowed.
        await items.updateOne({ _id: 'id-0' }, { $set: { 'meta.deep': 1 } });
        expect((await items.findOne({ _id: 'id-0' }))?.meta).toEqual({ deep: 1 });
      });

      it('refuses an upsert naming _id below the top level of its filter, and updates of _id', async () => {
        for (const filter of [
          { $and: [{ _id: 'nested' }, { name: 'n' }] },
          { $or: [{ _id: 'nested' }] },
        ] as never[]) {
          await expect(
            items.updateOne(filter, { $set: { n: 1 } }, { upsert: true }),
            JSON.stringify(filter),
          ).rejects.toThrow(TypeError);
          await expect(
            items.findOneAndUpdate(filter, { $set: { n: 1 } }, { upsert: true }),
          ).rejects.toThrow(TypeError);
        }
        await expect(items.updateOne({ _id: 'id-0' }, { $set: { _id: 'other' } })).rejects.toThrow(
          TypeError,
        );
        await expect(
          items.updateOne({ name: 'z' }, { $setOnInsert: { _id: 'z' } }, { upsert: true }),
        ).rejects.toThrow(TypeError);
        expect(await items.countDocuments()).toBe(5);
        // Without upsert a nested _id is an ordinary condition.
        expect(
          (await items.updateOne({ $and: [{ _id: 'id-0' }] }, { $set: { n: 9 } })).matchedCount,
        ).toBe(1);
        // A top-level _id condition that is not an equality upserts with a generated id.
        const result = await items.updateOne(
          { _id: { $in: ['p', 'q'] }, name: 'generated' },
          { $set: { n: 1 } },
          { upsert: true },
        );
        expect(typeof result.upsertedId).toBe('string');
        expect(await items.countDocuments({ name: 'generated' })).toBe(1);
      });

      it('refuses a document over 16 MiB on insert, update and upsert with DocumentTooLargeError', async () => {
        const big = 'x'.repeat(16 * 1024 * 1024);
        await expect(items.insertOne({ name: 'big', meta: { big } })).rejects.toThrow(
          DocumentTooLargeError,
        );
        const half = 'y'.repeat(9 * 1024 * 1024);
        await items.insertOne({ _id: 'grows', name: 'grows', meta: { a: half } });
        await expect(
          items.updateOne({ _id: 'grows' }, { $set: { 'meta.b': half } }),
        ).rejects.toThrow(DocumentTooLargeError);
        await expect(
          items.updateMany({ _id: 'grows' }, { $set: { 'meta.b': half } }),
        ).rejects.toThrow(DocumentTooLargeError);
        await expect(
          items.findOneAndUpdate({ _id: 'grows' }, { $set: { 'meta.b': half } }),
        ).rejects.toThrow(DocumentTooLargeError);
        await expect(
          items.updateOne({ _id: 'fresh' }, { $set: { meta: { big } } }, { upsert: true }),
        ).rejects.toThrow(DocumentTooLargeError);
        const stored = await items.findOne({ _id: 'grows' });
        expect(Object.keys(stored?.meta ?? {})).toEqual(['a']);
        expect(await items.countDocuments({ _id: { $in: ['fresh'] } })).toBe(0);
        // Just under the limit is stored.
        await items.insertOne({ name: 'fits', meta: { s: 'z'.repeat(16 * 1024 * 1024 - 200) } });
        expect(await items.countDocuments({ name: 'fits' })).toBe(1);
      });
    });

    describe('index migration', () => {
      it('replaces an index whose definition changed, on the same handle and after reopen', async () => {
        await items.createIndex({ keys: { name: 1 } });
        await items.insertOne({ name: 'a' });
        await items.insertOne({ name: 'b' });
        await items.createIndex({ keys: { name: 1 }, unique: true });
        await expect(items.insertOne({ name: 'a' })).rejects.toThrow(DuplicateKeyError);

        await store.close();
        const reopened = await subject.reopen();
        opened.push(reopened);
        const again = reopened.collection<Item>('items');
        await expect(again.insertOne({ name: 'a' })).rejects.toThrow(DuplicateKeyError);
        await again.createIndex({ keys: { name: 1 } });
        await again.insertOne({ name: 'a' });
        expect(await again.countDocuments({ name: 'a' })).toBe(2);
        // The same definition again changes nothing.
        await again.createIndex({ keys: { name: 1 } });
        await again.insertOne({ name: 'a' });
        expect(await again.countDocuments({ name: 'a' })).toBe(3);
      });
    });

    describe('replicas racing (several handles over one data set)', () => {
      const racers = 12;
      let handles: Store[];

      beforeEach(async () => {
        handles = [store];
        for (let i = 1; i < 3; i += 1) {
          const other = subject.another ? await subject.another() : store;
          if (other !== store) opened.push(other);
          handles.push(other);
        }
      });

      const handle = (i: number): Store => handles[i % handles.length] as Store;

      it('a lease goes to exactly one of many racing takers, and to another once expired or released', async () => {
        const taken = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            createLeases(handle(i)).tryAcquire('crawl', `replica-${i}`, 60_000),
          ),
        );
        expect(taken.filter(Boolean)).toHaveLength(1);
        const winner = `replica-${taken.indexOf(true)}`;
        const leases = createLeases(store);
        expect(await leases.holder('crawl')).toBe(winner);
        expect(await leases.tryAcquire('crawl', winner, 60_000)).toBe(true);
        expect(await leases.renew('crawl', 'someone-else', 60_000)).toBe(false);
        await leases.release('crawl', 'someone-else');
        expect(await leases.holder('crawl')).toBe(winner);

        await leases.release('crawl', winner);
        expect(await leases.holder('crawl')).toBeUndefined();
        expect(await leases.tryAcquire('crawl', 'next', 1)).toBe(true);
        // A holder that stops renewing (a dead replica) loses the lease when it expires.
        await new Promise((resolve) => setTimeout(resolve, 5));
        const retaken = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            createLeases(handle(i)).tryAcquire('crawl', `late-${i}`, 60_000),
          ),
        );
        expect(retaken.filter(Boolean)).toHaveLength(1);
        expect(await leases.renew('crawl', 'next', 60_000)).toBe(false);
      });

      it('runExclusive runs a schedule on one replica at a time', async () => {
        let running = 0;
        let most = 0;
        const runs = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            runExclusive(createLeases(handle(i)), 'gc', `replica-${i}`, 60_000, async () => {
              running += 1;
              most = Math.max(most, running);
              await new Promise((resolve) => setTimeout(resolve, 20));
              running -= 1;
            }),
          ),
        );
        expect(most).toBe(1);
        expect(runs.filter((r) => r.ran).length).toBeGreaterThanOrEqual(1);
        expect(await createLeases(store).holder('gc')).toBeUndefined();
      });

      it('a counter hands out every number once across racing replicas', async () => {
        const numbers = await Promise.all(
          Array.from({ length: racers * 3 }, (_, i) =>
            createCounters(handle(i)).next('publication'),
          ),
        );
        expect([...numbers].sort((a, b) => a - b)).toEqual(
          Array.from({ length: racers * 3 }, (_, i) => i + 1),
        );
        await createCounters(store).raiseTo('publication', 10);
        await createCounters(store).raiseTo('publication', 100);
        await createCounters(store).raiseTo('publication', 50);
        expect(await createCounters(store).next('publication')).toBe(101);
      });

      it('compare-and-set writers on several handles lose no update', async () => {
        const counters = handles.map((h) => h.collection<Counter>('counters'));
        await store.collection<Counter>('counters').insertOne({ _id: 'c', counter: 0, version: 0 });
        await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            guardedIncrement(counters[i % counters.length] as Collection<Counter>, 'c', racers * 4),
          ),
        );
        expect(await store.collection<Counter>('counters').findOne({ _id: 'c' })).toMatchObject({
          counter: racers,
          version: racers,
        });
      });

      it('racing upserts of one _id make one document holding every increment', async () => {
        const results = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            handle(i)
              .collection<{ hits?: number }>('upserts')
              .updateOne({ _id: 'one' }, { $inc: { hits: 1 } }, { upsert: true }),
          ),
        );
        expect(results.filter((r) => r.upsertedId !== undefined)).toHaveLength(1);
        const docs = await store.collection<{ hits?: number }>('upserts').find({});
        expect(docs).toEqual([{ _id: 'one', hits: racers }]);
      });

      it('racing claims on several handles hand each document to one claimer', async () => {
        for (let i = 0; i < racers; i += 1)
          await items.insertOne({ _id: `job-${i}`, name: `job-${i}` });
        const claims = await Promise.all(
          Array.from({ length: racers * 2 }, (_, worker) =>
            handle(worker)
              .collection<Item>('items')
              .findOneAndUpdate(
                { owner: { $exists: false } },
                { $set: { owner: worker } },
                { sort: { name: 1 } },
              ),
          ),
        );
        const claimed = claims.filter((d) => d !== null).map((d) => d._id);
        expect(new Set(claimed).size).toBe(racers);
        expect(claimed).toHaveLength(racers);
      });
    });

    describe('copies', () => {
      it('documents returned by every read and write are copies', async () => {
        const input: Item = { name: 'orig', tags: ['a'], meta: { k: 'v' } };
        const inserted = await items.insertOne(input);
        input.tags?.push('input-mutated');
        inserted.name = 'mutated';
        inserted.tags?.push('mutated');
        const found = await items.findOne({ _id: inserted._id });
        expect(found).toEqual({ _id: inserted._id, name: 'orig', tags: ['a'], meta: { k: 'v' } });
        if (!found) return;
        found.tags?.push('mutated');
        (found.meta as Record<string, unknown>).k = 'mutated';
        const [listed] = await items.find({});
        listed?.tags?.push('mutated');
        const updated = await items.findOneAndUpdate({ _id: inserted._id }, { $set: { n: 1 } });
        updated?.tags?.push('mutated');
        expect(await items.findOne({ _id: inserted._id })).toEqual({
          _id: inserted._id,
          name: 'orig',
          n: 1,
          tags: ['a'],
          meta: { k: 'v' },
        });
      });
    });

    describe('persistence', () => {
      it('keeps documents and unique indexes across close and reopen', async () => {
        await items.createIndex({ keys: { name: 1 }, unique: true });
        for (let i = 0; i < 5; i += 1) await items.insertOne({ _id: `p${i}`, name: `n${i}`, n: i });
        await items.updateOne({ _id: 'p1' }, { $set: { n: 100 } });
        await items.updateMany({}, { $push: { tags: 'kept' } });
        await items.deleteOne({ _id: 'p2' });
        await store.close();

        const reopened = await subject.reopen();
        opened.push(reopened);
        const again = reopened.collection<Item>('items');
        expect(await again.countDocuments()).toBe(4);
        expect(await again.findOne({ _id: 'p1' })).toEqual({
          _id: 'p1',
          name: 'n1',
          n: 100,
          tags: ['kept'],
        });
        expect(await again.findOne({ _id: 'p2' })).toBeNull();
        await expect(again.insertOne({ name: 'n3' })).rejects.toBeInstanceOf(DuplicateKeyError);
      });
    });
  });
}

/**
 * The MongoDB adapter (mongodb 7 driver). Documents keep string `_id`s (random UUIDs when the
 * caller gives none) so ids look alike on both adapters. The client connects lazily on first
 * use, retrying with back-off; once connected the driver itself re-selects servers and retries
 * reads and writes.
 */

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MongoClient,
  type Collection as MongoCollection,
  type Db,
  type Filter as MongoFilter,
  type UpdateFilter,
} from 'mongodb';
import {
  DocumentTooLargeError,
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
import {
  checkDocument,
  checkDocumentSize,
  checkFilter,
  checkUpdateValues,
  checkUpsertFilter,
} from './checks.js';
import { withoutUndefined } from './documents.js';
import { checkUpdate } from './update.js';

export interface MongoStoreOptions {
  /** `MONGODB_URL`, e.g. `mongodb://mongo:27017`. */
  url: string;
  dbName?: string;
  logger?: StoreLogger;
  /** How long one operation waits for a usable server before failing (driver default is 30 s). */
  serverSelectionTimeoutMS?: number;
  /** Connection attempts on first use before the operation fails; the next operation tries again. */
  connectAttempts?: number;
}

interface MongoDoc {
  _id: string;
  [field: string]: unknown;
}

type Sort = Record<string, 1 | -1>;

/** The checks every update path runs before the driver sees it (see checks.ts). */
function checkUpdateCall(
  filter: Filter,
  update: UpdateOperators,
  upsert: boolean | undefined,
): void {
  checkFilter(filter);
  checkUpdate(update);
  checkUpdateValues(update);
  if (upsert) checkUpsertFilter(filter);
}

/** The filter, after the checks both adapters run. */
function checked(filter: Filter): MongoFilter<MongoDoc> {
  checkFilter(filter);
  return filter as MongoFilter<MongoDoc>;
}

/** The options that make two index definitions differ, as MongoDB reports them. */
function indexOptions(index: {
  unique?: unknown;
  sparse?: unknown;
  expireAfterSeconds?: unknown;
}): string {
  return JSON.stringify([
    index.unique === true,
    index.sparse === true,
    index.expireAfterSeconds ?? null,
  ]);
}

/** Server codes for a document over 16 MiB (insert, update result, and a too-large write). */
const TOO_LARGE_CODES = new Set([10334, 17419, 17420]);

function toStoreError(collection: string, err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (
    (typeof code === 'number' && TOO_LARGE_CODES.has(code)) ||
    (err.name === 'BSONError' && /larger than|too large|maximum size/i.test(err.message))
  )
    return new DocumentTooLargeError(collection);
  if (code === 11000) {
    const keyValue = (err as { keyValue?: unknown }).keyValue;
    return new DuplicateKeyError(
      collection,
      keyValue === undefined ? err.message : `key ${JSON.stringify(keyValue)}`,
    );
  }
  return err;
}

/** An upsert that would insert without an `_id` from the filter gets a string one, as inserts do. */
function needsGeneratedId(filter: Filter): boolean {
  if (!('_id' in filter)) return true;
  const condition = filter._id;
  if (typeof condition === 'string') return false;
  return condition !== null && typeof condition === 'object' && !('$eq' in condition);
}

function withUpsertId(
  filter: Filter,
  update: UpdateOperators,
  upsert: boolean | undefined,
): UpdateFilter<MongoDoc> {
  if (!upsert || !needsGeneratedId(filter)) return update as UpdateFilter<MongoDoc>;
  return {
    ...update,
    $setOnInsert: { _id: randomUUID(), ...update.$setOnInsert },
  } as UpdateFilter<MongoDoc>;
}

class MongoStoreCollection<T extends Document> implements Collection<T> {
  constructor(
    readonly name: string,
    private readonly db: () => Promise<Db>,
    private readonly logger: StoreLogger | undefined,
  ) {}

  async insertOne(doc: T & { _id?: string }): Promise<WithId<T>> {
    if (doc._id !== undefined && typeof doc._id !== 'string')
      throw new TypeError('_id must be a string');
    checkDocument(doc);
    const stored = {
      ...withoutUndefined(structuredClone(doc)),
      _id: doc._id ?? randomUUID(),
    } as WithId<T>;
    checkDocumentSize(this.name, stored);
    await this.run((c) => c.insertOne({ ...stored } as MongoDoc));
    return stored;
  }

  findOne(
    filter: Filter<T>,
    options: Pick<FindOptions, 'projection' | 'sort'> = {},
  ): Promise<WithId<T> | null> {
    return this.run((c) => c.findOne(checked(filter), options)) as Promise<WithId<T> | null>;
  }

  find(filter: Filter<T>, options: FindOptions = {}): Promise<WithId<T>[]> {
    return this.run((c) => c.find(checked(filter), options).toArray()) as Promise<WithId<T>[]>;
  }

  async updateOne(
    filter: Filter<T>,
    update: UpdateOperators,
    options: UpdateOptions = {},
  ): Promise<UpdateResult> {
    checkUpdateCall(filter, update, options.upsert);
    const result = await this.run((c) =>
      c.updateOne(filter as MongoFilter<MongoDoc>, withUpsertId(filter, update, options.upsert), {
        upsert: options.upsert ?? false,
      }),
    );
    return {
      matchedCount: result.matchedCount,
      modifiedCount: result.modifiedCount,
      ...(result.upsertedId === null ? {} : { upsertedId: String(result.upsertedId) }),
    };
  }

  async updateMany(filter: Filter<T>, update: UpdateOperators): Promise<UpdateResult> {
    checkUpdateCall(filter, update, false);
    const result = await this.run((c) =>
      c.updateMany(filter as MongoFilter<MongoDoc>, update as UpdateFilter<MongoDoc>),
    );
    return { matchedCount: result.matchedCount, modifiedCount: result.modifiedCount };
  }

  findOneAndUpdate(
    filter: Filter<T>,
    update: UpdateOperators,
    options: UpdateOptions & { sort?: Sort } = {},
  ): Promise<WithId<T> | null> {
    checkUpdateCall(filter, update, options.upsert);
    return this.run((c) =>
      c.findOneAndUpdate(
        filter as MongoFilter<MongoDoc>,
        withUpsertId(filter, update, options.upsert),
        {
          returnDocument: 'after',
          upsert: options.upsert ?? false,
          ...(options.sort ? { sort: options.sort } : {}),
        },
      ),
    ) as Promise<WithId<T> | null>;
  }

  async deleteOne(filter: Filter<T>): Promise<{ deletedCount: number }> {
    const { deletedCount } = await this.run((c) => c.deleteOne(checked(filter)));
    return { deletedCount };
  }

  async deleteMany(filter: Filter<T>): Promise<{ deletedCount: number }> {
    const { deletedCount } = await this.run((c) => c.deleteMany(checked(filter)));
    return { deletedCount };
  }

  countDocuments(filter: Filter<T> = {}): Promise<number> {
    return this.run((c) => c.countDocuments(checked(filter)));
  }

  /**
   * Creates the index; an index on the same keys with other options (MongoDB would fail with
   * IndexOptionsConflict) is dropped first and the change logged, so a changed definition
   * migrates at start.
   */
  async createIndex(spec: IndexSpec): Promise<void> {
    if (Object.keys(spec.keys).length === 0) throw new TypeError('an index needs at least one key');
    const options = {
      unique: spec.unique ?? false,
      sparse: spec.sparse ?? false,
      ...(spec.expireAfterSeconds === undefined
        ? {}
        : { expireAfterSeconds: spec.expireAfterSeconds }),
    };
    await this.run(async (c) => {
      const existing = await c
        .listIndexes()
        .toArray()
        .catch((err: unknown) => {
          // A collection that does not exist yet has no indexes.
          if ((err as { code?: unknown }).code === 26) return [];
          throw err;
        });
      const sameKeys = existing.find(
        (index) => JSON.stringify(index.key) === JSON.stringify(spec.keys) && index.name !== '_id_',
      );
      if (sameKeys && indexOptions(sameKeys) !== indexOptions(options)) {
        this.logger?.info(
          { collection: this.name, index: sameKeys.name, to: options },
          'migrating a changed index',
        );
        await c.dropIndex(String(sameKeys.name));
      }
      await c.createIndex(spec.keys, options);
    });
  }

  private async run<R>(
    operation: (collection: MongoCollection<MongoDoc>) => Promise<R>,
  ): Promise<R> {
    const db = await this.db();
    try {
      return await operation(db.collection<MongoDoc>(this.name));
    } catch (err) {
      throw toStoreError(this.name, err);
    }
  }
}

/** The database named in a connection string's path (`mongodb://host/<db>?…`), if any. */
export function databaseInUrl(url: string): string | undefined {
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(url);
  const name = match?.[1] ? decodeURIComponent(match[1]) : '';
  return name.length > 0 ? name : undefined;
}

export function createMongoStore(options: MongoStoreOptions): Store {
  const {
    url,
    dbName = databaseInUrl(url) ?? 'flotilla',
    logger,
    serverSelectionTimeoutMS = 5_000,
    connectAttempts = 3,
  } = options;
  const client = new MongoClient(url, {
    serverSelectionTimeoutMS,
    connectTimeoutMS: serverSelectionTimeoutMS,
    // Like nedb: an `undefined` field is absent, not stored as null.
    ignoreUndefined: true,
    appName: 'flotilla',
  });
  let connecting: Promise<Db> | undefined;
  let closed = false;

  const connect = async (): Promise<Db> => {
    for (let attempt = 1; ; attempt += 1) {
      // close() during the back-off must not let a later attempt reopen the client.
      if (closed) throw new Error('store is closed');
      try {
        await client.connect();
      } catch (err) {
        if (closed || attempt >= connectAttempts) throw err;
        const delayMs = Math.min(200 * 2 ** (attempt - 1), 2_000);
        logger?.warn({ err, attempt, delayMs }, 'failed to connect to mongodb, retrying');
        await sleep(delayMs);
        continue;
      }
      if (closed) {
        await client.close();
        throw new Error('store is closed');
      }
      logger?.info({ dbName }, 'connected to mongodb');
      return client.db(dbName);
    }
  };

  const db = (): Promise<Db> => {
    if (closed) return Promise.reject(new Error('store is closed'));
    connecting ??= connect().catch((err: unknown) => {
      // Let the next operation start over instead of replaying this failure forever.
      connecting = undefined;
      logger?.error({ err }, 'failed to connect to mongodb');
      throw err;
    });
    return connecting;
  };

  return {
    kind: 'mongo',
    collection<T extends Document = Document>(name: string): Collection<T> {
      if (closed) throw new Error('store is closed');
      return new MongoStoreCollection<T>(name, db, logger);
    },
    async ping(): Promise<void> {
      await (await db()).command({ ping: 1 });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

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

function toStoreError(collection: string, err: unknown): unknown {
  if (err instanceof Error && (err as { code?: unknown }).code === 11000) {
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
  ) {}

  async insertOne(doc: T & { _id?: string }): Promise<WithId<T>> {
    if (doc._id !== undefined && typeof doc._id !== 'string')
      throw new TypeError('_id must be a string');
    const stored = {
      ...withoutUndefined(structuredClone(doc)),
      _id: doc._id ?? randomUUID(),
    } as WithId<T>;
    await this.run((c) => c.insertOne({ ...stored } as MongoDoc));
    return stored;
  }

  findOne(
    filter: Filter<T>,
    options: Pick<FindOptions, 'projection' | 'sort'> = {},
  ): Promise<WithId<T> | null> {
    return this.run((c) =>
      c.findOne(filter as MongoFilter<MongoDoc>, options),
    ) as Promise<WithId<T> | null>;
  }

  find(filter: Filter<T>, options: FindOptions = {}): Promise<WithId<T>[]> {
    return this.run((c) => c.find(filter as MongoFilter<MongoDoc>, options).toArray()) as Promise<
      WithId<T>[]
    >;
  }

  async updateOne(
    filter: Filter<T>,
    update: UpdateOperators,
    options: UpdateOptions = {},
  ): Promise<UpdateResult> {
    checkUpdate(update);
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
    checkUpdate(update);
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
    checkUpdate(update);
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
    const { deletedCount } = await this.run((c) => c.deleteOne(filter as MongoFilter<MongoDoc>));
    return { deletedCount };
  }

  async deleteMany(filter: Filter<T>): Promise<{ deletedCount: number }> {
    const { deletedCount } = await this.run((c) => c.deleteMany(filter as MongoFilter<MongoDoc>));
    return { deletedCount };
  }

  countDocuments(filter: Filter<T> = {}): Promise<number> {
    return this.run((c) => c.countDocuments(filter as MongoFilter<MongoDoc>));
  }

  async createIndex(spec: IndexSpec): Promise<void> {
    if (Object.keys(spec.keys).length === 0) throw new TypeError('an index needs at least one key');
    await this.run((c) =>
      c.createIndex(spec.keys, {
        unique: spec.unique ?? false,
        sparse: spec.sparse ?? false,
        ...(spec.expireAfterSeconds === undefined
          ? {}
          : { expireAfterSeconds: spec.expireAfterSeconds }),
      }),
    );
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

export function createMongoStore(options: MongoStoreOptions): Store {
  const {
    url,
    dbName = 'flotilla',
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
      try {
        await client.connect();
        logger?.info({ dbName }, 'connected to mongodb');
        return client.db(dbName);
      } catch (err) {
        if (closed || attempt >= connectAttempts) throw err;
        const delayMs = Math.min(200 * 2 ** (attempt - 1), 2_000);
        logger?.warn({ err, attempt, delayMs }, 'failed to connect to mongodb, retrying');
        await sleep(delayMs);
      }
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
      return new MongoStoreCollection<T>(name, db);
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

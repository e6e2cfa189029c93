/**
 * The document-store port. Both adapters (mongo, embedded) implement it and pass the same
 * contract suite (`@flotilla/store/contract`). The query language is MongoDB's, in the subset
 * both adapters share with MongoDB's meaning: equality (also on array elements and dotted
 * paths), $eq, $ne, $in, $nin, $lt/$lte/$gt/$gte, $exists, $regex (RegExp, or string with
 * $options), field-level $not, $or/$and/$nor, $elemMatch, $size. A null condition matches
 * missing fields as in MongoDB. Not available: $all, $type, $expr, $text, geo, positional
 * updates (`a.$`), aggregation. See packages/store/README.md for the fine print.
 */

export type Document = Record<string, unknown>;
export type WithId<T> = T & { _id: string };

/** `T` without its index signatures (`interface X extends Document` has one). */
type DeclaredFields<T> = {
  [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K];
};

/** The declared field names of `T` (of each member when `T` is a union). */
type DeclaredFieldNames<T> = T extends unknown ? Extract<keyof DeclaredFields<T>, string> : never;

/** The declared fields, or any name for a document type that declares none (`Document`). */
type FieldNames<T> = [DeclaredFieldNames<T>] extends [never] ? string : DeclaredFieldNames<T>;

/** The fields of `T` that hold objects or arrays, which a dotted path may go into. */
type NestedFieldNames<T> = T extends unknown
  ? {
      [K in keyof DeclaredFields<T>]-?: NonNullable<DeclaredFields<T>[K]> extends object
        ? Extract<K, string>
        : never;
    }[keyof DeclaredFields<T>]
  : never;

/**
 * A filter in MongoDB's query language (the subset both adapters share), typed against the
 * document: a field name `T` does not have fails to compile, as does a dotted path whose first
 * segment is not an object or array field of `T` (the rest of a path is not checked: maps such
 * as `channels.<name>.version` need free segments). Values are checked at run time by both
 * adapters (see checks.ts).
 */
export type Filter<T = Document> = { [K in FieldNames<T> | '_id']?: unknown } & {
  [K in NestedFieldNames<T> as `${K}.${string}`]?: unknown;
} & { $and?: Filter<T>[]; $or?: Filter<T>[]; $nor?: Filter<T>[] };

export interface UpdateOperators {
  $set?: Record<string, unknown>;
  $unset?: Record<string, unknown>;
  $inc?: Record<string, number>;
  $push?: Record<string, unknown>;
  $addToSet?: Record<string, unknown>;
  $pull?: Record<string, unknown>;
  /** Applied only when an upsert inserts (both adapters). */
  $setOnInsert?: Record<string, unknown>;
}

export interface FindOptions {
  sort?: Record<string, 1 | -1>;
  limit?: number;
  skip?: number;
  /** Inclusion (1) or exclusion (0) projection, not both (as MongoDB). */
  projection?: Record<string, 0 | 1>;
}

export interface UpdateOptions {
  upsert?: boolean;
}

export interface UpdateResult {
  matchedCount: number;
  modifiedCount: number;
  upsertedId?: string;
}

export interface IndexSpec {
  /** Field → direction; several fields make a compound index. */
  keys: Record<string, 1 | -1>;
  unique?: boolean;
  /** Skip documents that lack every indexed field (lets a unique index cover an optional field). */
  sparse?: boolean;
  /**
   * TTL on a Date field. MongoDB's monitor removes expired documents about once a minute; the
   * embedded store drops them lazily when a query would return them.
   */
  expireAfterSeconds?: number;
}

export interface Collection<T extends Document = Document> {
  readonly name: string;
  /** Inserts and returns the stored document; an `_id` is generated when absent. */
  insertOne(doc: T & { _id?: string }): Promise<WithId<T>>;
  findOne(
    filter: Filter<T>,
    options?: Pick<FindOptions, 'projection' | 'sort'>,
  ): Promise<WithId<T> | null>;
  find(filter: Filter<T>, options?: FindOptions): Promise<WithId<T>[]>;
  updateOne(
    filter: Filter<T>,
    update: UpdateOperators,
    options?: UpdateOptions,
  ): Promise<UpdateResult>;
  updateMany(filter: Filter<T>, update: UpdateOperators): Promise<UpdateResult>;
  /** Applies the update to one matching document and returns it as it is after the update. */
  findOneAndUpdate(
    filter: Filter<T>,
    update: UpdateOperators,
    options?: UpdateOptions & { sort?: Record<string, 1 | -1> },
  ): Promise<WithId<T> | null>;
  deleteOne(filter: Filter<T>): Promise<{ deletedCount: number }>;
  deleteMany(filter: Filter<T>): Promise<{ deletedCount: number }>;
  countDocuments(filter?: Filter<T>): Promise<number>;
  createIndex(spec: IndexSpec): Promise<void>;
}

export interface Store {
  /** `embedded` or `mongo`, for logs and /readyz. */
  readonly kind: 'embedded' | 'mongo';
  collection<T extends Document = Document>(name: string): Collection<T>;
  /** Resolves when the backing database answers; throws otherwise (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The slice of a pino logger the adapters use (a pino `Logger` satisfies it). */
export interface StoreLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Raised by both adapters when an insert or upsert violates a unique index. */
export class DuplicateKeyError extends Error {
  override readonly name = 'DuplicateKeyError';
  constructor(
    readonly collection: string,
    readonly detail?: string,
  ) {
    super(`duplicate key in collection ${collection}${detail ? `: ${detail}` : ''}`);
  }
}

/** MongoDB's BSON limit of 16 MiB per document, enforced alike by both adapters. */
export class DocumentTooLargeError extends Error {
  override readonly name = 'DocumentTooLargeError';
  constructor(
    readonly collection: string,
    readonly bytes?: number,
  ) {
    super(
      `document in collection ${collection} exceeds the 16 MiB limit${bytes === undefined ? '' : ` (${bytes} bytes)`}`,
    );
  }
}

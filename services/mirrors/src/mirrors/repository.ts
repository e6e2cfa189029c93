import { randomUUID } from 'node:crypto';
import type { Collection, Store } from '@flotilla/store';
import type { AddressFamily } from '@flotilla/kit';
import {
  continentFor,
  type CrawlStatus,
  type MirrorCreate,
  type MirrorDocument,
  type MirrorPatch,
} from './model.js';

/** The `mirrors` and `crawls` collections (this service owns both). */
export class MirrorRepository {
  private readonly mirrors: Collection<MirrorDocument>;

  constructor(store: Store) {
    this.mirrors = store.collection<MirrorDocument>('mirrors');
  }

  async ensureIndexes(): Promise<void> {
    await this.mirrors.createIndex({ keys: { name: 1 }, unique: true });
  }

  async list(): Promise<MirrorDocument[]> {
    return this.mirrors.find({}, { sort: { name: 1 } });
  }

  async get(id: string): Promise<MirrorDocument | null> {
    return this.mirrors.findOne({ _id: id });
  }

  /** Throws the store's `DuplicateKeyError` when the name is taken. */
  async create(input: MirrorCreate, now = new Date()): Promise<MirrorDocument> {
    const time = now.toISOString();
    return this.mirrors.insertOne({
      _id: randomUUID(),
      ...input,
      continent: continentFor(input.country),
      createdAt: time,
      updatedAt: time,
      publication: null,
      claimedPublication: null,
      learnedFamilies: [],
      lastCrawledAt: null,
      lastCrawlDurationMs: null,
      lastCrawlStatus: null,
      lastCrawlError: null,
      consecutiveFailures: 0,
      autoDisabled: false,
    });
  }

  async update(id: string, patch: MirrorPatch, now = new Date()): Promise<MirrorDocument | null> {
    const set: Record<string, unknown> = { ...patch, updatedAt: now.toISOString() };
    if (patch.country !== undefined) set.continent = continentFor(patch.country);
    // A new address means the old crawl results say nothing about it.
    if (patch.baseUrl !== undefined) {
      Object.assign(set, {
        publication: null,
        claimedPublication: null,
        learnedFamilies: [],
        consecutiveFailures: 0,
        autoDisabled: false,
      });
    }
    return this.mirrors.findOneAndUpdate({ _id: id }, { $set: set });
  }

  async delete(id: string): Promise<boolean> {
    const { deletedCount } = await this.mirrors.deleteOne({ _id: id });
    return deletedCount > 0;
  }

  async recordCrawl(id: string, result: CrawlOutcome): Promise<MirrorDocument | null> {
    return this.mirrors.findOneAndUpdate(
      { _id: id },
      {
        $set: {
          publication: result.publication,
          claimedPublication: result.claimedPublication,
          learnedFamilies: result.learnedFamilies,
          lastCrawledAt: result.crawledAt,
          lastCrawlDurationMs: result.durationMs,
          lastCrawlStatus: result.status,
          lastCrawlError: result.error,
          consecutiveFailures: result.consecutiveFailures,
          autoDisabled: result.autoDisabled,
        },
      },
    );
  }
}

export interface CrawlOutcome {
  publication: number | null;
  claimedPublication: number | null;
  learnedFamilies: AddressFamily[];
  crawledAt: string;
  durationMs: number;
  status: CrawlStatus;
  error: string | null;
  consecutiveFailures: number;
  autoDisabled: boolean;
}

/** One entry of a mirror's crawl log. */
export type CrawlRecord = CrawlFields & { _id: string } & Record<string, unknown>;

export interface CrawlFields {
  mirrorId: string;
  mirror: string;
  startedAt: string;
  durationMs: number;
  status: CrawlStatus;
  /** The master's publication when the crawl ran. */
  masterPublication: number | null;
  claimedPublication: number | null;
  previousPublication: number | null;
  verifiedPublication: number | null;
  /** Blobs checked with HEAD. */
  checked: number;
  /** Up to 50 failed checks. */
  failures: Array<{ publication: number; digest: string; reason: string }>;
  families: AddressFamily[];
  consecutiveFailures: number;
  autoDisabled: boolean;
  error: string | null;
}

export class CrawlLog {
  private readonly crawls: Collection<CrawlRecord>;

  constructor(store: Store) {
    this.crawls = store.collection<CrawlRecord>('crawls');
  }

  async ensureIndexes(): Promise<void> {
    await this.crawls.createIndex({ keys: { mirrorId: 1, startedAt: -1 } });
  }

  async append(record: CrawlFields): Promise<CrawlRecord> {
    return this.crawls.insertOne({ _id: randomUUID(), ...record });
  }

  async forMirror(mirrorId: string, limit: number): Promise<CrawlRecord[]> {
    return this.crawls.find({ mirrorId }, { sort: { startedAt: -1 }, limit });
  }

  async deleteForMirror(mirrorId: string): Promise<void> {
    await this.crawls.deleteMany({ mirrorId });
  }
}

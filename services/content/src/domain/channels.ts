import { faultPoint } from '@flotilla/kit';
import { DuplicateKeyError } from '@flotilla/store';
import type {
  ChannelVersionDoc,
  ContentCollections,
  RepositoryDoc,
  TagEntry,
} from '../collections.js';
import { contentProblem } from './errors.js';

/** Repositories whose pointers the start-up repair checks with one query. */
const POINTER_BATCH = 500;

/** How many times a writer re-reads and retries when another writer took the version number. */
const MAX_COMMIT_ATTEMPTS = 50;

export type VersionCause = ChannelVersionDoc['cause'];

export interface CommitResult {
  version: ChannelVersionDoc;
  before: ChannelVersionDoc | undefined;
  changed: boolean;
}

export interface TagDiff {
  added: TagEntry[];
  removed: TagEntry[];
  changed: { tag: string; from: string; to: string }[];
}

export function versionId(repository: string, channel: string, number: number): string {
  return `${repository}|${channel}|${number}`;
}

export function tagsToRecord(tags: TagEntry[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { tag, digest } of tags) out[tag] = digest;
  return out;
}

export function sortTags(tags: TagEntry[]): TagEntry[] {
  return [...tags].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

export function diffTags(before: TagEntry[], after: TagEntry[]): TagDiff {
  const old = new Map(before.map((t) => [t.tag, t.digest]));
  const now = new Map(after.map((t) => [t.tag, t.digest]));
  const diff: TagDiff = { added: [], removed: [], changed: [] };
  for (const [tag, digest] of now) {
    const previous = old.get(tag);
    if (previous === undefined) diff.added.push({ tag, digest });
    else if (previous !== digest) diff.changed.push({ tag, from: previous, to: digest });
  }
  for (const [tag, digest] of old) if (!now.has(tag)) diff.removed.push({ tag, digest });
  return diff;
}

function sameTags(a: TagEntry[], b: TagEntry[]): boolean {
  const d = diffTags(a, b);
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

/**
 * Repositories and their channels' immutable, numbered versions (Pulp's repository versions).
 *
 * A new version is committed by inserting `<repo>|<channel>|<n+1>`: the unique `_id` is the
 * optimistic lock (a writer that read version n and lost the race gets a duplicate key, re-reads
 * and retries), so concurrent writers never lose an update. The pointer in `repositories` is then
 * advanced, filtered on being older, so it never moves backwards; a crash between the two writes
 * leaves the pointer behind until the next commit of that channel or `repairPointers` at start.
 */
export class ChannelStore {
  constructor(
    private readonly c: ContentCollections,
    readonly channels: readonly string[],
  ) {}

  assertChannel(channel: string): void {
    if (!this.channels.includes(channel)) {
      throw contentProblem(
        'unknown-channel',
        `channel "${channel}" is not one of ${this.channels.join(', ')}`,
      );
    }
  }

  async ensureRepository(name: string): Promise<void> {
    const now = new Date().toISOString();
    await this.c.repositories.updateOne(
      { _id: name },
      { $setOnInsert: { name, createdAt: now, channels: {} } },
      { upsert: true },
    );
  }

  async repository(name: string): Promise<RepositoryDoc & { _id: string }> {
    const doc = await this.c.repositories.findOne({ _id: name });
    if (!doc) throw contentProblem('unknown-repository', `repository "${name}" is unknown`);
    return doc;
  }

  listRepositories(): Promise<(RepositoryDoc & { _id: string })[]> {
    return this.c.repositories.find({}, { sort: { _id: 1 } });
  }

  /** One page of repositories by name, optionally only names containing `contains` (any case). */
  async findRepositories(o: {
    contains?: string;
    channel?: string;
    limit?: number;
    offset?: number;
  }): Promise<{
    repositories: (RepositoryDoc & { _id: string })[];
    total: number;
  }> {
    const filter: Record<string, unknown> = {};
    if (o.contains)
      filter._id = { $regex: new RegExp(o.contains.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i') };
    if (o.channel) filter[`channels.${o.channel}.version`] = { $gt: 0 };
    const [repositories, total] = await Promise.all([
      this.c.repositories.find(filter, {
        sort: { _id: 1 },
        ...(o.limit !== undefined ? { limit: o.limit } : {}),
        ...(o.offset ? { skip: o.offset } : {}),
      }),
      this.c.repositories.countDocuments(filter),
    ]);
    return { repositories, total };
  }

  async current(repository: string, channel: string): Promise<ChannelVersionDoc | undefined> {
    const [latest] = await this.c.channelVersions.find(
      { repository, channel },
      { sort: { number: -1 }, limit: 1 },
    );
    return latest ?? undefined;
  }

  async version(repository: string, channel: string, number: number): Promise<ChannelVersionDoc> {
    const doc = await this.c.channelVersions.findOne({
      _id: versionId(repository, channel, number),
    });
    if (!doc) {
      throw contentProblem(
        'unknown-version',
        `${repository} has no version ${number} of channel ${channel}`,
      );
    }
    return doc;
  }

  listVersions(repository: string, channel: string, limit = 100): Promise<ChannelVersionDoc[]> {
    return this.c.channelVersions.find({ repository, channel }, { sort: { number: -1 }, limit });
  }

  /**
   * Commits a new version of `channel` computed by `mutate` from the current tags. `mutate` may
   * throw (nothing is written) and is re-run on the newest content after a lost race. When the
   * result equals the current content, no version is made.
   */
  async commit(
    repository: string,
    channel: string,
    mutate: (current: TagEntry[], currentVersion: ChannelVersionDoc | undefined) => TagEntry[],
    /** Or computed from the tags the change is made on (an untag's audit names their digests). */
    cause: VersionCause | ((current: TagEntry[]) => VersionCause),
  ): Promise<CommitResult> {
    this.assertChannel(channel);
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const before = await this.current(repository, channel);
      const currentTags = before?.tags ?? [];
      const next = sortTags(mutate(currentTags, before));
      if (before && sameTags(currentTags, next)) return { version: before, before, changed: false };
      if (!before && next.length === 0) {
        return { version: emptyVersion(repository, channel), before, changed: false };
      }
      const number = (before?.number ?? 0) + 1;
      const why = typeof cause === 'function' ? cause(currentTags) : cause;
      const doc: ChannelVersionDoc & { _id: string } = {
        _id: versionId(repository, channel, number),
        repository,
        channel,
        number,
        tags: next,
        createdAt: new Date().toISOString(),
        cause: {
          kind: why.kind,
          ...(why.ref ? { ref: why.ref } : {}),
          ...(why.audit ? { audit: why.audit } : {}),
        },
      };
      // Only a real change creates the repository (a sync of an empty upstream leaves no trace).
      await this.ensureRepository(repository);
      try {
        await this.c.channelVersions.insertOne(doc);
      } catch (err) {
        if (err instanceof DuplicateKeyError) continue;
        throw err;
      }
      faultPoint('channel.version-inserted');
      await this.advancePointer(repository, channel, number);
      return { version: doc, before, changed: true };
    }
    throw contentProblem(
      'concurrent-update',
      `too many concurrent changes to ${repository} ${channel}; retry`,
    );
  }

  /**
   * Moves every pointer a crash left behind (between a version's insert and its pointer's
   * advance) to its channel's newest version: the list, search and publish read pointers. Run at
   * start; one lookup by id per batch of repositories.
   */
  async repairPointers(): Promise<number> {
    const repos = await this.c.repositories.find({}, { projection: { _id: 1, channels: 1 } });
    let repaired = 0;
    for (let i = 0; i < repos.length; i += POINTER_BATCH) {
      const next = repos
        .slice(i, i + POINTER_BATCH)
        .flatMap((r) =>
          this.channels.map((ch) => versionId(r._id, ch, (r.channels?.[ch]?.version ?? 0) + 1)),
        );
      const behind = await this.c.channelVersions.find(
        { _id: { $in: next } },
        { projection: { repository: 1, channel: 1 } },
      );
      for (const v of behind) {
        const newest = await this.current(v.repository, v.channel);
        if (!newest) continue;
        await this.advancePointer(v.repository, v.channel, newest.number);
        repaired++;
      }
    }
    return repaired;
  }

  private async advancePointer(repository: string, channel: string, number: number): Promise<void> {
    const field = `channels.${channel}`;
    await this.c.repositories.updateOne(
      {
        _id: repository,
        $or: [{ [`${field}.version`]: { $lt: number } }, { [field]: { $exists: false } }],
      },
      { $set: { [field]: { version: number, updatedAt: new Date().toISOString() } } },
    );
  }
}

/** Version 0: what a channel holds before its first change. */
export function emptyVersion(repository: string, channel: string): ChannelVersionDoc {
  return {
    repository,
    channel,
    number: 0,
    tags: [],
    createdAt: new Date(0).toISOString(),
    cause: { kind: 'sync' },
  };
}

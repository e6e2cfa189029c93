import { createLeases, type Collection, type Leases, type Store } from '@flotilla/store';

/**
 * The documents content owns in the shared store (architecture: content owns `repositories`,
 * `channel_versions`, `manifests`, `blobs`, `tasks`, `publications`, `promotions`, `outbox`;
 * plus `publication_entries` (what each publication wrote, per repository) and
 * `webhook_deliveries` for replay protection). Tags live in arrays, never as field names: a tag
 * may contain `.`, which neither MongoDB nor nedb accept in a key.
 */

export interface TagEntry {
  tag: string;
  digest: string;
}

export interface ChannelPointer {
  /** Current version number; 0 = the channel has never had content. */
  version: number;
  updatedAt: string;
}

export interface PublishedPointer {
  channel: string;
  version: number;
  publication: number;
}

/** What one channel's view of the published tree holds for a repository. */
export interface ChannelViewPointer {
  version: number;
  publication: number;
}

/** `_id` = repository name. */
export type RepositoryDoc = {
  name: string;
  createdAt: string;
  channels: Record<string, ChannelPointer>;
  /** The repository's most recent publication, of whichever channel (API compatibility). */
  published?: PublishedPointer;
  /**
   * channel → what that channel's view of the tree holds (set when a publication completes);
   * bounded by the configured channels. Unset for repositories only in a tree written before
   * channels (`published` alone), which the first publication of a channel then writes anew.
   */
  views?: Record<string, ChannelViewPointer>;
};

/** `_id` = `<repository>|<channel>|<number>`: the unique id serialises concurrent writers. */
export type ChannelVersionDoc = {
  repository: string;
  channel: string;
  number: number;
  tags: TagEntry[];
  createdAt: string;
  /** What made this version: sync, promotion, untag, rollback, sign (re-signed with the current key). */
  cause: {
    kind: 'sync' | 'promotion' | 'untag' | 'rollback' | 'sign';
    ref?: string;
    /** Promotions, untags and rollbacks: the audit record, written with the version. */
    audit?: VersionAudit;
  };
};

/**
 * What a version made by a person or hook says of its audit record (`promotions/<id>`): the
 * version is the commit point, the record is derived from it (and rebuilt from it at start when a
 * crash came between the two writes).
 */
export interface VersionAudit {
  id: string;
  actor: string;
  reason?: string;
  from?: string;
  tags: string[];
  targetTags: string[];
  digests: string[];
}

export interface BlobRef {
  digest: string;
  size: number;
  mediaType: string;
}

/** `_id` = manifest digest. The exact bytes live in the content store under the same digest. */
export type ManifestDoc = {
  mediaType: string;
  size: number;
  kind: 'image' | 'index';
  /** Config and layers (image manifests). */
  blobs: BlobRef[];
  /** Child manifests (indexes). */
  children: string[];
  createdAt: string;
  /** When a sync last relied on this manifest's closure (gc keeps it within its grace period). */
  usedAt?: string;
};

/**
 * `_id` = digest: every file of the content store (layers, configs and manifests), and whether
 * the published tree holds it: the publisher's index, so it never walks the tree.
 */
export type BlobDoc = {
  size: number;
  kind: 'blob' | 'manifest';
  createdAt: string;
  published?: boolean;
  /** The publication that first wrote the file into the tree. */
  publishedIn?: number;
  /** Set by retention when no retained publication references the published file. */
  unreferencedSince?: string;
  /** When a sync last relied on this file (gc keeps what was used within its grace period). */
  usedAt?: string;
};

export type TaskKind = 'sync' | 'publish' | 'retention' | 'reconcile' | 'gc' | 'sign';
export type TaskState = 'waiting' | 'running' | 'completed' | 'failed' | 'canceled';

export interface TaskProgress {
  done?: number;
  total?: number;
  bytesDone?: number;
  bytesTotal?: number;
  message?: string;
}

/** `_id` = task id (uuid). */
export type TaskDoc = {
  kind: TaskKind;
  state: TaskState;
  /** Tasks with the same key never run at once (one sync per repository, one publish). */
  key: string;
  repository?: string;
  channel?: string;
  params: Record<string, unknown>;
  progress?: TaskProgress;
  result?: Record<string, unknown>;
  error?: { message: string; code?: string; details?: Record<string, unknown> };
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempts: number;
  cancelRequested?: boolean;
  /** Set when an event for the repository arrives while its sync runs: run once more. */
  rerun?: boolean;
  lease?: { owner: string; expiresAt: string };
  /** The worker that last claimed the task (kept after it ends). */
  worker?: string;
};

export interface PublicationSnapshotEntry {
  repository: string;
  channel: string;
  version: number;
}

/**
 * `_id` = publication number as a decimal string. Bounded whatever the publication's size: the
 * lists of what it wrote live in the tree's `publications/<n>.json` and in `publication_entries`.
 */
export type PublicationDoc = {
  number: number;
  channel: string;
  state: 'pending' | 'complete' | 'pruned';
  time: string;
  /** Set when complete. */
  repositoryCount?: number;
  newBlobCount?: number;
  taskId?: string;
  /** Documents written before the lists moved out hold them here (read, never written). */
  repositories?: string[];
  newBlobs?: string[];
  /** Ditto: every repository the single-view tree held once this publication was complete. */
  snapshot?: PublicationSnapshotEntry[];
};

/**
 * `_id` = `<publication>|<repository>`: publication n wrote this version of the repository into
 * its channel's view. One small document per repository per publication, written before the
 * marker moves; retention derives from them what each retained publication served.
 */
export type PublicationEntryDoc = {
  publication: number;
  channel: string;
  repository: string;
  version: number;
};

/** `_id` = uuid: the audit trail of every channel change made by people or hooks. */
export type PromotionDoc = {
  kind: 'promotion' | 'untag' | 'rollback';
  repository: string;
  from?: string;
  to: string;
  tags: string[];
  targetTags: string[];
  digests: string[];
  actor: string;
  reason?: string;
  time: string;
  /** Orders records made within one millisecond. */
  seq: number;
  before: { version: number; tags: TagEntry[] };
  after: { version: number; tags: TagEntry[] };
  /** Promotions: false until its `content.promoted` events are in the outbox (set true after). */
  announced?: boolean;
};

/** `_id` = `bodhi|<signature>`: a delivery seen within the skew window. */
export type WebhookDeliveryDoc = {
  receivedAt: Date;
};

export interface ContentCollections {
  repositories: Collection<RepositoryDoc>;
  channelVersions: Collection<ChannelVersionDoc>;
  manifests: Collection<ManifestDoc>;
  blobs: Collection<BlobDoc>;
  tasks: Collection<TaskDoc>;
  publications: Collection<PublicationDoc>;
  publicationEntries: Collection<PublicationEntryDoc>;
  promotions: Collection<PromotionDoc>;
  webhookDeliveries: Collection<WebhookDeliveryDoc>;
  /** One lease per task key, held by the task running under it (one task per key across replicas). */
  taskKeys: Leases;
}

export function contentCollections(store: Store): ContentCollections {
  return {
    repositories: store.collection<RepositoryDoc>('repositories'),
    channelVersions: store.collection<ChannelVersionDoc>('channel_versions'),
    manifests: store.collection<ManifestDoc>('manifests'),
    blobs: store.collection<BlobDoc>('blobs'),
    tasks: store.collection<TaskDoc>('tasks'),
    publications: store.collection<PublicationDoc>('publications'),
    publicationEntries: store.collection<PublicationEntryDoc>('publication_entries'),
    promotions: store.collection<PromotionDoc>('promotions'),
    webhookDeliveries: store.collection<WebhookDeliveryDoc>('webhook_deliveries'),
    taskKeys: createLeases(store, 'task_keys'),
  };
}

export async function ensureIndexes(c: ContentCollections): Promise<void> {
  await c.channelVersions.createIndex({ keys: { repository: 1, channel: 1, number: -1 } });
  await c.tasks.createIndex({ keys: { state: 1, createdAt: 1 } });
  await c.tasks.createIndex({ keys: { key: 1, state: 1 } });
  await c.publications.createIndex({ keys: { number: -1 } });
  await c.publications.createIndex({ keys: { state: 1 } });
  await c.publicationEntries.createIndex({ keys: { publication: 1 } });
  await c.publicationEntries.createIndex({ keys: { channel: 1, repository: 1, publication: -1 } });
  // Retention finds marked blobs without scanning the index of every published file.
  await c.blobs.createIndex({ keys: { unreferencedSince: 1 }, sparse: true });
  await c.promotions.createIndex({ keys: { repository: 1, seq: -1 } });
}

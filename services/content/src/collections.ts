import type { Collection, Store } from '@flotilla/store';

/**
 * The documents content owns in the shared store (architecture: content owns `repositories`,
 * `channel_versions`, `manifests`, `blobs`, `tasks`, `publications`, `promotions`, `outbox`;
 * plus `webhook_deliveries` for replay protection). Tags live in arrays, never as field names:
 * a tag may contain `.`, which neither MongoDB nor nedb accept in a key.
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

/** `_id` = repository name. */
export type RepositoryDoc = {
  name: string;
  createdAt: string;
  channels: Record<string, ChannelPointer>;
  /** What the published tree holds for this repository (set when a publication completes). */
  published?: PublishedPointer;
};

/** `_id` = `<repository>|<channel>|<number>`: the unique id serialises concurrent writers. */
export type ChannelVersionDoc = {
  repository: string;
  channel: string;
  number: number;
  tags: TagEntry[];
  createdAt: string;
  /** What made this version: sync, promotion, untag, rollback, sign (re-signed with the current key). */
  cause: { kind: 'sync' | 'promotion' | 'untag' | 'rollback' | 'sign'; ref?: string };
};

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
};

export type TaskKind = 'sync' | 'publish' | 'retention' | 'sign';
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
  error?: { message: string; code?: string };
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

/** `_id` = publication number as a decimal string. */
export type PublicationDoc = {
  number: number;
  channel: string;
  state: 'pending' | 'complete' | 'pruned';
  time: string;
  /** Repositories whose metadata this publication wrote. */
  repositories: string[];
  newBlobs: string[];
  /** Every repository the tree holds once this publication is complete (for retention). */
  snapshot: PublicationSnapshotEntry[];
  taskId?: string;
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
  promotions: Collection<PromotionDoc>;
  webhookDeliveries: Collection<WebhookDeliveryDoc>;
}

export function contentCollections(store: Store): ContentCollections {
  return {
    repositories: store.collection<RepositoryDoc>('repositories'),
    channelVersions: store.collection<ChannelVersionDoc>('channel_versions'),
    manifests: store.collection<ManifestDoc>('manifests'),
    blobs: store.collection<BlobDoc>('blobs'),
    tasks: store.collection<TaskDoc>('tasks'),
    publications: store.collection<PublicationDoc>('publications'),
    promotions: store.collection<PromotionDoc>('promotions'),
    webhookDeliveries: store.collection<WebhookDeliveryDoc>('webhook_deliveries'),
  };
}

export async function ensureIndexes(c: ContentCollections): Promise<void> {
  await c.channelVersions.createIndex({ keys: { repository: 1, channel: 1, number: -1 } });
  await c.tasks.createIndex({ keys: { state: 1, createdAt: 1 } });
  await c.tasks.createIndex({ keys: { key: 1, state: 1 } });
  await c.publications.createIndex({ keys: { number: -1 } });
  await c.publications.createIndex({ keys: { state: 1 } });
  // Retention finds marked blobs without scanning the index of every published file.
  await c.blobs.createIndex({ keys: { unreferencedSince: 1 }, sparse: true });
  await c.promotions.createIndex({ keys: { repository: 1, seq: -1 } });
}

import type { PublicationDetail } from '../publish/publisher.js';
import type { TaskView } from '../api-schemas.js';
import type { PromotionDoc, PublicationDoc } from '../collections.js';
import { tagsToRecord } from '../domain/channels.js';
import type { StoredTask } from '../tasks/task-queue.js';

/** Store documents → API shapes (ids renamed, credentials redacted). */

export function presentTask(t: StoredTask): TaskView {
  const params = { ...t.params };
  const upstream = params.upstream as Record<string, unknown> | undefined;
  if (upstream?.password !== undefined) params.upstream = { ...upstream, password: '***' };
  return {
    id: t._id,
    kind: t.kind,
    state: t.state,
    ...(t.repository ? { repository: t.repository } : {}),
    ...(t.channel ? { channel: t.channel } : {}),
    params,
    progress: t.progress ?? {},
    ...(t.result ? { result: t.result } : {}),
    ...(t.error ? { error: t.error } : {}),
    createdAt: t.createdAt,
    ...(t.startedAt ? { startedAt: t.startedAt } : {}),
    ...(t.finishedAt ? { finishedAt: t.finishedAt } : {}),
    attempts: t.attempts,
    ...(t.worker ? { worker: t.worker } : {}),
    ...(t.cancelRequested ? { cancelRequested: true } : {}),
  };
}

export function presentPromotion(p: PromotionDoc & { _id: string }) {
  const { _id, before, after, announced: _announced, ...rest } = p;
  return {
    id: _id,
    ...rest,
    before: { version: before.version, tags: tagsToRecord(before.tags) },
    after: { version: after.version, tags: tagsToRecord(after.tags) },
  };
}

/** A publication in a list: counts, not the lists (those are in `GET /publications/<n>`). */
export function presentPublication(p: PublicationDoc & { _id: string }) {
  const { _id: _ignored, snapshot: _snapshot, repositories, newBlobs, ...rest } = p;
  return {
    ...rest,
    // documents written before the lists moved out carry the lists, not the counts
    ...(rest.repositoryCount === undefined && repositories
      ? { repositoryCount: repositories.length }
      : {}),
    ...(rest.newBlobCount === undefined && newBlobs ? { newBlobCount: newBlobs.length } : {}),
  };
}

/** One publication: its repositories and one page of the digests it added (`next`: the cursor). */
export function presentPublicationDetail(d: PublicationDetail) {
  return {
    ...presentPublication(d.doc),
    repositories: d.repositories,
    newBlobCount: d.newBlobCount,
    newBlobs: d.newBlobs,
    ...(d.nextAfter ? { next: d.nextAfter } : {}),
  };
}

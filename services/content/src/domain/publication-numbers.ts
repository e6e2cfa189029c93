import { randomUUID } from 'node:crypto';
import { DuplicateKeyError } from '@flotilla/store';
import type { ContentCollections, PublicationDoc } from '../collections.js';

/** Bounded retries when other replicas take the numbers this one tried. */
const MAX_ROUNDS = 50;

/**
 * Claims the number of a new publication, each number used once across replicas and numbers
 * kept contiguous: the record `publications/<n>` is inserted `pending` (its `_id` is the
 * number, so two replicas racing for n collide and the loser tries n + 1). A publish retried
 * after a crash gets back the number its task claimed; a number left pending by a publish that
 * ended without completing is taken over by compare-and-set on its owner.
 */
export async function claimPublicationNumber(
  c: ContentCollections,
  claim: { channel: string; taskId?: string | undefined },
): Promise<number> {
  const claimer = claim.taskId ?? randomUUID();
  for (let round = 0; round < MAX_ROUNDS; round += 1) {
    const time = new Date().toISOString();
    if (claim.taskId) {
      const mine = await c.publications.findOneAndUpdate(
        { state: 'pending', taskId: claim.taskId },
        { $set: { channel: claim.channel, time } },
      );
      if (mine) return mine.number;
    }
    for (const pending of await c.publications.find(
      { state: 'pending' },
      { sort: { number: 1 }, limit: 20 },
    )) {
      if (await ownerIsLive(c, pending)) continue;
      const { matchedCount } = await c.publications.updateOne(
        {
          _id: pending._id,
          state: 'pending',
          taskId: pending.taskId === undefined ? { $exists: false } : pending.taskId,
        },
        { $set: { taskId: claimer, channel: claim.channel, time } },
      );
      if (matchedCount === 1) return pending.number;
    }
    const [last] = await c.publications.find(
      {},
      { sort: { number: -1 }, limit: 1, projection: { number: 1 } },
    );
    const n = (last?.number ?? 0) + 1;
    try {
      await c.publications.insertOne({
        _id: String(n),
        number: n,
        channel: claim.channel,
        state: 'pending',
        time,
        taskId: claimer,
      });
      return n;
    } catch (err) {
      if (!(err instanceof DuplicateKeyError)) throw err;
    }
  }
  throw new Error(`failed to claim a publication number after ${MAX_ROUNDS} rounds`);
}

/** A pending publication whose task is queued or running is still being written. */
async function ownerIsLive(
  c: ContentCollections,
  publication: PublicationDoc & { _id: string },
): Promise<boolean> {
  if (publication.taskId === undefined) return false;
  const task = await c.tasks.findOne({ _id: publication.taskId });
  return task !== null && (task.state === 'running' || task.state === 'waiting');
}

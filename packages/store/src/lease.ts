/**
 * Leases and counters over the store port, for several replicas sharing one store: a lease is
 * one document per name, taken by compare-and-set (a unique `_id` decides between racing
 * takers) and kept by renewal; a holder that dies stops renewing and the lease expires. A
 * counter hands out each number once, by an atomic `$inc`.
 *
 * Expiry compares the taker's clock with the time the holder wrote: replicas' clocks must agree
 * to well within a lease (NTP does that); a holder paused for longer than its lease loses it and
 * learns so at its next renewal.
 */

import { DuplicateKeyError, type Collection, type Document, type Store } from './port.js';

interface LeaseDoc extends Document {
  holder: string;
  expiresAt: Date;
}

interface CounterDoc extends Document {
  value: number;
}

export interface Leases {
  /** Takes `name` for `holder` when it is free, expired, or already `holder`'s; true when held. */
  tryAcquire(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Extends `holder`'s lease; false when `holder` no longer holds it. */
  renew(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once (no-op unless `holder` holds it). */
  release(name: string, holder: string): Promise<void>;
  /** The current holder of an unexpired lease, or undefined. */
  holder(name: string): Promise<string | undefined>;
}

/** Leases kept in `collection` (default `leases`). */
export function createLeases(store: Store, collection = 'leases'): Leases {
  const leases: Collection<LeaseDoc> = store.collection<LeaseDoc>(collection);
  return {
    async tryAcquire(name, holder, ttlMs) {
      const now = Date.now();
      try {
        await leases.updateOne(
          { _id: name, $or: [{ holder }, { expiresAt: { $lt: new Date(now) } }] },
          { $set: { holder, expiresAt: new Date(now + ttlMs) } },
          { upsert: true },
        );
        return true;
      } catch (err) {
        // The lease exists, unexpired, held by another: the upsert's insert collided.
        if (err instanceof DuplicateKeyError) return false;
        throw err;
      }
    },

    async renew(name, holder, ttlMs) {
      const { matchedCount } = await leases.updateOne(
        { _id: name, holder },
        { $set: { expiresAt: new Date(Date.now() + ttlMs) } },
      );
      return matchedCount === 1;
    },

    async release(name, holder) {
      await leases.deleteOne({ _id: name, holder });
    },

    async holder(name) {
      const lease = await leases.findOne({ _id: name, expiresAt: { $gte: new Date() } });
      return lease?.holder;
    },
  };
}

export interface Counters {
  /** The next number of counter `name`: 1, 2, 3, … each handed out once across replicas. */
  next(name: string): Promise<number>;
  /** Moves the counter up to at least `value` (for counters that start above zero). */
  raiseTo(name: string, value: number): Promise<void>;
}

/** Counters kept in `collection` (default `counters`). */
export function createCounters(store: Store, collection = 'counters'): Counters {
  const counters: Collection<CounterDoc> = store.collection<CounterDoc>(collection);
  return {
    async next(name) {
      // Two first uses may race on the insert: the loser retries and increments.
      for (let attempt = 0; attempt < 3; attempt += 1) {
        try {
          const doc = await counters.findOneAndUpdate(
            { _id: name },
            { $inc: { value: 1 } },
            { upsert: true },
          );
          if (doc) return doc.value;
        } catch (err) {
          if (!(err instanceof DuplicateKeyError)) throw err;
        }
      }
      throw new Error(`failed to advance counter ${name}`);
    },

    async raiseTo(name, value) {
      try {
        await counters.updateOne(
          { _id: name, $or: [{ value: { $lt: value } }, { value: { $exists: false } }] },
          { $set: { value } },
          { upsert: true },
        );
      } catch (err) {
        // Already at or above `value`.
        if (!(err instanceof DuplicateKeyError)) throw err;
      }
    },
  };
}

export interface ExclusiveRun {
  /** False when another holder had the lease, and `task` did not run. */
  ran: boolean;
}

/**
 * Runs `task` only while `holder` holds lease `name` (a schedule that one replica at a time
 * runs), renewing it every third of `ttlMs`; the signal aborts when a renewal finds the lease
 * lost. The lease is released when `task` settles.
 */
export async function runExclusive(
  leases: Leases,
  name: string,
  holder: string,
  ttlMs: number,
  task: (signal: AbortSignal) => Promise<unknown>,
): Promise<ExclusiveRun> {
  if (!(await leases.tryAcquire(name, holder, ttlMs))) return { ran: false };
  const lost = new AbortController();
  const timer = setInterval(
    () => {
      leases.renew(name, holder, ttlMs).then(
        (held) => {
          if (!held) lost.abort(new Error(`lease ${name} lost`));
        },
        // A failed renewal is retried at the next tick; expiry decides if it keeps failing.
        () => undefined,
      );
    },
    Math.max(1, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  try {
    await task(lost.signal);
    return { ran: true };
  } finally {
    clearInterval(timer);
    await leases.release(name, holder).catch(() => undefined);
  }
}

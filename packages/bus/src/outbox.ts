import type { EventEnvelope } from '@flotilla/protocol';
import { randomUUID } from 'node:crypto';
import {
  createCounters,
  createLeases,
  DuplicateKeyError,
  type Collection,
  type Store,
} from '@flotilla/store';
import type { Logger } from 'pino';
import type { Bus } from './port.js';

/**
 * A store-backed outbox. A service writes its state change, then `enqueue`s the event that
 * announces it (both before answering its caller); the dispatcher publishes pending events in
 * creation order and marks them sent. A broker outage delays events, never loses them: the
 * event stays `pending` and is retried on the next tick, and `start()` picks up whatever a
 * crash left behind.
 *
 * Delivery is at-least-once: a crash between the broker's confirm and the `sent` mark
 * publishes the event again after restart, with the same event id. Consumers must be
 * idempotent by event id (they are anyway: the bus itself redelivers).
 *
 * Replicas sharing one store: creation order comes from a store counter (`seq`, one sequence
 * across replicas), and one replica at a time dispatches, holding the lease
 * `outbox:<collection>` (renewed while it works, released at `stop()`, expired when its holder
 * dies), so each record is published by one replica, in order.
 */

export type OutboxState = 'pending' | 'sent';

export interface OutboxRecord extends Record<string, unknown> {
  /** The event id. */
  _id: string;
  event: EventEnvelope;
  state: OutboxState;
  /** Failed publish attempts so far. */
  attempts: number;
  /** ISO-8601, when enqueued. */
  createdAt: string;
  /**
   * Creation order, from the store counter `outbox:<collection>` (shared by replicas); it starts
   * at the enqueue time in microseconds, above the time-based values of older records.
   */
  seq: number;
  sentAt?: string;
  lastError?: string;
}

export interface OutboxOptions {
  store: Store;
  bus: Bus;
  logger: Logger;
  /** Collection holding the outbox. Default `outbox`. */
  collection?: string;
  /** How often the dispatcher looks for pending events. Default 2000 ms. */
  intervalMs?: number;
  /** Events read per store query. Default 100. */
  batchSize?: number;
  /** How long sent records are kept (for inspection) before deletion; 0 deletes at once. Default 1 h. */
  retainSentMs?: number;
  /** The dispatcher lease: how long another replica waits after this one dies. Default 30 s. */
  leaseMs?: number;
}

export interface Outbox {
  /** Writes the event as pending (enqueuing the same event id twice is a no-op). */
  enqueue(event: EventEnvelope): Promise<void>;
  /** Dispatches pending events now (re-sending what a crash left) and every `intervalMs`. */
  start(): Promise<void>;
  /**
   * Dispatches now; resolves when every event pending at the call was tried once (by this
   * replica, or returns at once when another replica holds the dispatcher lease).
   */
  flush(): Promise<void>;
  /** Stops the timer and waits for a running dispatch. Enqueued events stay pending. */
  stop(): Promise<void>;
  /** Pending events (for /readyz details and tests). */
  pendingCount(): Promise<number>;
}

/** Every dispatcher identity created in this process. */
const holdersInThisProcess = new Set<string>();

export function createOutbox(options: OutboxOptions): Outbox {
  const logger = options.logger.child({ component: 'outbox' });
  const records: Collection<OutboxRecord> = options.store.collection<OutboxRecord>(
    options.collection ?? 'outbox',
  );
  const intervalMs = options.intervalMs ?? 2000;
  const batchSize = options.batchSize ?? 100;
  const retainSentMs = options.retainSentMs ?? 3_600_000;
  const bus = options.bus;
  const collectionName = options.collection ?? 'outbox';
  const leaseMs = options.leaseMs ?? 30_000;
  const leaseName = `outbox:${collectionName}`;
  const holder = randomUUID();
  holdersInThisProcess.add(holder);
  const leases = createLeases(options.store);
  const counters = createCounters(options.store);
  let counterRaised: Promise<void> | null = null;

  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let indexed: Promise<void> | null = null;
  let running: Promise<void> | null = null;
  let queued: Promise<void> | null = null;

  async function nextSeq(): Promise<number> {
    counterRaised ??= counters.raiseTo(leaseName, Date.now() * 1000).catch((err: unknown) => {
      counterRaised = null;
      throw err;
    });
    await counterRaised;
    return counters.next(leaseName);
  }

  function ensureIndex(): Promise<void> {
    indexed ??= records.createIndex({ keys: { state: 1, seq: 1 } }).catch((err: unknown) => {
      indexed = null;
      throw err;
    });
    return indexed;
  }

  /**
   * An embedded store is open in one process at a time, so a lease on it that no outbox of this
   * process holds was left by a process that died (kill -9): take it now rather than leave the
   * events waiting for its expiry. A shared store's lease may belong to a live replica and is
   * left to expire.
   */
  async function takeOverFromDeadIncarnation(): Promise<void> {
    if (options.store.kind !== 'embedded') return;
    const current = await leases.holder(leaseName);
    if (current === undefined || holdersInThisProcess.has(current)) return;
    logger.info({ lease: leaseName }, 'taking over the outbox lease of a process that died');
    await leases.release(leaseName, current);
  }

  /**
   * One pass, by the lease holder only: publish pending events oldest first; stop at the first
   * failure to keep order, or when the lease is lost.
   */
  async function dispatchOnce(): Promise<void> {
    if (!(await leases.tryAcquire(leaseName, holder, leaseMs))) return;
    let renewedAt = Date.now();
    const stillHeld = async (): Promise<boolean> => {
      if (Date.now() - renewedAt < leaseMs / 3) return true;
      if (!(await leases.renew(leaseName, holder, leaseMs))) {
        logger.warn({ lease: leaseName }, 'lost the outbox dispatcher lease');
        return false;
      }
      renewedAt = Date.now();
      return true;
    };
    for (;;) {
      const batch = await records.find(
        { state: 'pending' },
        { sort: { seq: 1 }, limit: batchSize },
      );
      for (const record of batch) {
        if (!(await stillHeld())) return;
        try {
          await bus.publish(record.event);
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          logger.warn(
            {
              err,
              eventId: record._id,
              eventType: record.event.type,
              attempts: record.attempts + 1,
            },
            'failed to publish outbox event, will retry',
          );
          await records.updateOne(
            { _id: record._id },
            { $inc: { attempts: 1 }, $set: { lastError: error } },
          );
          return;
        }
        if (retainSentMs === 0) {
          await records.deleteOne({ _id: record._id });
        } else {
          await records.updateOne(
            { _id: record._id },
            { $set: { state: 'sent', sentAt: new Date().toISOString() } },
          );
        }
        logger.debug(
          { eventId: record._id, eventType: record.event.type },
          'outbox event published',
        );
      }
      if (batch.length < batchSize) break;
    }
    if (retainSentMs > 0) {
      const cutoff = new Date(Date.now() - retainSentMs).toISOString();
      await records.deleteMany({ state: 'sent', sentAt: { $lt: cutoff } });
    }
  }

  /** Single-flight: a request during a pass queues exactly one more pass after it. */
  function dispatch(): Promise<void> {
    if (!running) {
      running = dispatchOnce().finally(() => {
        running = null;
      });
      return running;
    }
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = null;
        return dispatch();
      });
    return queued;
  }

  function dispatchInBackground(): void {
    dispatch().catch((err: unknown) => logger.error({ err }, 'failed to dispatch outbox'));
  }

  return {
    async enqueue(event: EventEnvelope): Promise<void> {
      const record: OutboxRecord = {
        _id: event.id,
        event,
        state: 'pending',
        attempts: 0,
        createdAt: new Date().toISOString(),
        seq: await nextSeq(),
      };
      try {
        await records.insertOne(record);
      } catch (err) {
        if (err instanceof DuplicateKeyError) return;
        throw err;
      }
      if (started) setImmediate(dispatchInBackground);
    },

    async start(): Promise<void> {
      if (started) return;
      await ensureIndex();
      started = true;
      await takeOverFromDeadIncarnation();
      const leftovers = await records.countDocuments({ state: 'pending' });
      if (leftovers > 0)
        logger.info({ pending: leftovers }, 'outbox has unsent events, dispatching');
      timer = setInterval(dispatchInBackground, intervalMs);
      timer.unref();
      dispatchInBackground();
    },

    async flush(): Promise<void> {
      await dispatch();
    },

    async stop(): Promise<void> {
      started = false;
      if (timer) clearInterval(timer);
      timer = undefined;
      await (queued ?? running)?.catch(() => undefined);
      // Another replica takes over at once instead of after the lease expires.
      await leases.release(leaseName, holder).catch(() => undefined);
    },

    pendingCount(): Promise<number> {
      return records.countDocuments({ state: 'pending' });
    },
  };
}

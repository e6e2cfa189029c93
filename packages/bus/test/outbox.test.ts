import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createLocalBus,
  createOutbox,
  type Bus,
  type LocalBus,
  type OutboxRecord,
} from '../src/index.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function published(n: number): EventEnvelope {
  return createEvent('content.published', 'outbox-test', {
    channel: 'stable',
    publication: n,
    repositories: [],
    newBlobs: 0,
  });
}

/** A bus that can be switched off: while down, publish rejects as an unreachable broker would. */
function switchableBus(inner: Bus): Bus & { down: boolean; attempts: number } {
  const bus = {
    kind: inner.kind,
    down: false,
    attempts: 0,
    async publish(event: EventEnvelope): Promise<void> {
      bus.attempts += 1;
      if (bus.down) throw new Error('broker unreachable');
      await inner.publish(event);
    },
    subscribe: inner.subscribe.bind(inner),
    ping: inner.ping.bind(inner),
    close: inner.close.bind(inner),
  };
  return bus;
}

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('outbox on the embedded store', () => {
  let dir: string;
  let store: Store;
  let local: LocalBus;
  let received: string[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-outbox-'));
    store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    local = createLocalBus({ logger });
    received = [];
    await local.subscribe('flotilla.test.outbox', ['content.*'], async (event) => {
      received.push(event.id);
    });
  });

  afterEach(async () => {
    await local.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('enqueue → delivered, and the record is marked sent', async () => {
    const outbox = createOutbox({ store, bus: local, logger });
    await outbox.start();
    const event = published(1);
    await outbox.enqueue(event);
    await waitFor('delivery', () => received.includes(event.id));
    await waitFor('sent mark', async () => (await outbox.pendingCount()) === 0);
    const record = await store.collection<OutboxRecord>('outbox').findOne({ _id: event.id });
    expect(record).toMatchObject({ _id: event.id, state: 'sent', attempts: 0, event });
    expect(typeof record?.sentAt).toBe('string');
    await outbox.stop();
  });

  it('publishes in creation order and ignores a second enqueue of the same event', async () => {
    const outbox = createOutbox({ store, bus: local, logger, batchSize: 4 });
    const events = Array.from({ length: 11 }, (_, i) => published(i));
    for (const event of events) await outbox.enqueue(event);
    await outbox.enqueue(events[0] as EventEnvelope);
    expect(await outbox.pendingCount()).toBe(11);
    await outbox.flush();
    await waitFor('all delivered', () => received.length === 11);
    expect(received).toEqual(events.map((e) => e.id));
    expect(await outbox.pendingCount()).toBe(0);
  });

  it('keeps events pending while the bus is down and delivers them after recovery', async () => {
    const bus = switchableBus(local);
    bus.down = true;
    const outbox = createOutbox({ store, bus, logger });
    const events = [published(1), published(2), published(3)];
    for (const event of events) await outbox.enqueue(event);

    await outbox.flush();
    await outbox.flush();
    expect(await outbox.pendingCount()).toBe(3);
    const first = await store.collection<OutboxRecord>('outbox').findOne({ _id: events[0]?.id });
    expect(first).toMatchObject({ state: 'pending', attempts: 2, lastError: 'broker unreachable' });
    expect(received).toEqual([]);

    bus.down = false;
    await outbox.flush();
    await waitFor('delivery after recovery', () => received.length === 3);
    expect(received).toEqual(events.map((e) => e.id));
    expect(await outbox.pendingCount()).toBe(0);
  });

  it('retries on its own timer once started', async () => {
    const bus = switchableBus(local);
    bus.down = true;
    const outbox = createOutbox({ store, bus, logger, intervalMs: 20 });
    await outbox.start();
    const event = published(1);
    await outbox.enqueue(event);
    await waitFor('a few failed attempts', () => bus.attempts >= 2);
    bus.down = false;
    await waitFor('delivery by the timer', () => received.includes(event.id));
    await outbox.stop();
  });

  it('re-sends what a crash left unsent when a new instance starts over the same directory', async () => {
    const bus = switchableBus(local);
    bus.down = true;
    // A short dispatcher lease: the dead instance's lease must expire before another dispatches.
    const before = createOutbox({ store, bus, logger, leaseMs: 50 });
    const events = [published(1), published(2)];
    for (const event of events) await before.enqueue(event);
    await before.flush();
    // The "crash": the process goes away with the events still pending on disk.
    await store.close();

    store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    const after = createOutbox({ store, bus: local, logger });
    expect(await after.pendingCount()).toBe(2);
    await after.start();
    await waitFor('leftovers delivered', () => received.length === 2);
    expect(received).toEqual(events.map((e) => e.id));
    await waitFor('marked sent', async () => (await after.pendingCount()) === 0);
    await after.stop();
  });

  it('takes over at start the lease a dead process left on its embedded store', async () => {
    const bus = switchableBus(local);
    bus.down = true;
    const before = createOutbox({ store, bus, logger });
    const event = published(1);
    await before.enqueue(event);
    await before.flush(); // takes the lease, fails to send
    await store.close();
    // kill -9 left the lease behind, unexpired for an hour, held by an identity no outbox of the
    // restarted process has
    store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
    await store
      .collection('leases')
      .updateOne(
        { _id: 'outbox:outbox' },
        { $set: { holder: 'a-process-that-died', expiresAt: new Date(Date.now() + 3_600_000) } },
        { upsert: true },
      );
    const after = createOutbox({ store, bus: local, logger });
    await after.start();
    await waitFor('the leftover delivered', () => received.includes(event.id));
    await after.stop();
  });

  it('deletes records at once with retainSentMs 0', async () => {
    const outbox = createOutbox({
      store,
      bus: local,
      logger,
      collection: 'outbox_nokeep',
      retainSentMs: 0,
    });
    const event = published(1);
    await outbox.enqueue(event);
    await outbox.flush();
    expect(await store.collection('outbox_nokeep').countDocuments()).toBe(0);
    await waitFor('delivery', () => received.includes(event.id));
  });

  it('stop() stops dispatching: later events stay pending', async () => {
    const outbox = createOutbox({ store, bus: local, logger, intervalMs: 10 });
    await outbox.start();
    await outbox.stop();
    await outbox.enqueue(published(1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await outbox.pendingCount()).toBe(1);
    expect(received).toEqual([]);
  });
});

import { createEvent, type EventEnvelope, type EventType } from '@flotilla/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Bus, EventHandler } from './port.js';

/**
 * The bus contract suite: every adapter runs it (`test/local.test.ts`, `test/amqp.test.ts`).
 * It lives in its own entry point (`@flotilla/bus/contract`) because it imports vitest, which
 * production installs do not have.
 */

export interface BusContractHarness {
  /** A bus for this test only; the suite may close it. */
  bus: Bus;
  /** A queue name unique to this run, so concurrent runs on one broker never meet. */
  queue(purpose: string): string;
  /** Everything dead-lettered by this harness's bus so far, oldest first. */
  deadLetters(): Promise<Array<{ eventId?: string; body: string }>>;
  /** Closes the bus (if still open) and removes what the test declared. */
  cleanup(): Promise<void>;
}

export type BusContractFactory = () => Promise<BusContractHarness>;

const SOURCE = 'bus-contract';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

function eventOf(type: EventType, n = 1): EventEnvelope {
  switch (type) {
    case 'registry.manifest.pushed':
      return createEvent(type, SOURCE, {
        repository: 'contract/app',
        digest: DIGEST,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: n,
      });
    case 'registry.manifest.deleted':
      return createEvent(type, SOURCE, { repository: 'contract/app', digest: DIGEST });
    case 'content.synced':
      return createEvent(type, SOURCE, {
        repository: 'contract/app',
        channel: 'candidate',
        version: n,
        added: 1,
        removed: 0,
      });
    case 'content.promoted':
      return createEvent(type, SOURCE, {
        repository: 'contract/app',
        from: 'candidate',
        to: 'testing',
        tags: ['1'],
        digest: DIGEST,
        version: n,
        actor: 'contract',
      });
    case 'content.published':
      return createEvent(type, SOURCE, {
        channel: 'stable',
        publication: n,
        repositories: ['contract/app'],
        newBlobs: 0,
      });
    case 'mirrors.crawled':
      return createEvent(type, SOURCE, { mirror: 'contract', publication: n, upToDate: true });
    default:
      throw new Error(`no contract event for ${String(type)}`);
  }
}

/** Polls `condition` until it holds; fails the test (never hangs) after `timeoutMs`. */
async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Records the ids of this test's events (a shared broker may carry others'), in arrival order. */
function recorder(ours: Set<string>): {
  ids: string[];
  events: EventEnvelope[];
  handler: EventHandler;
} {
  const ids: string[] = [];
  const events: EventEnvelope[] = [];
  return {
    ids,
    events,
    handler: async (event) => {
      if (!ours.has(event.id)) return;
      ids.push(event.id);
      events.push(event);
    },
  };
}

export function busContract(name: string, factory: BusContractFactory): void {
  describe(`bus contract: ${name}`, () => {
    let harness: BusContractHarness;
    let bus: Bus;
    const ours = new Set<string>();

    async function publish(...events: EventEnvelope[]): Promise<void> {
      for (const event of events) {
        ours.add(event.id);
        await bus.publish(event);
      }
    }

    beforeEach(async () => {
      harness = await factory();
      bus = harness.bus;
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    it('answers ping while open', async () => {
      await expect(bus.ping()).resolves.toBeUndefined();
    });

    it('delivers the event as published', async () => {
      const got = recorder(ours);
      await bus.subscribe(harness.queue('exact'), ['content.published'], got.handler);
      const event = eventOf('content.published', 7);
      await publish(event);
      await waitFor('delivery', () => got.ids.length === 1);
      expect(got.events[0]).toEqual(event);
    });

    it('delivers only to matching bindings: content.*, #, exact', async () => {
      const content = recorder(ours);
      const all = recorder(ours);
      const exact = recorder(ours);
      const mirrors = recorder(ours);
      await bus.subscribe(harness.queue('content'), ['content.*'], content.handler);
      await bus.subscribe(harness.queue('all'), ['#'], all.handler);
      await bus.subscribe(harness.queue('exact'), ['registry.manifest.pushed'], exact.handler);
      await bus.subscribe(
        harness.queue('mirrors'),
        ['mirrors.#', 'nothing.*.matches'],
        mirrors.handler,
      );

      const synced = eventOf('content.synced');
      const published = eventOf('content.published');
      const pushed = eventOf('registry.manifest.pushed');
      const deleted = eventOf('registry.manifest.deleted');
      const crawled = eventOf('mirrors.crawled');
      await publish(synced, published, pushed, deleted, crawled);
      // Sentinels: queues are FIFO, so once a sentinel arrived, anything wrongly routed
      // before it would have arrived too.
      const contentSentinel = eventOf('content.promoted');
      const pushedSentinel = eventOf('registry.manifest.pushed', 2);
      const mirrorsSentinel = eventOf('mirrors.crawled', 2);
      await publish(contentSentinel, pushedSentinel, mirrorsSentinel);

      await waitFor('content.* queue', () => content.ids.includes(contentSentinel.id));
      await waitFor('# queue', () => all.ids.length === 8);
      await waitFor('exact queue', () => exact.ids.includes(pushedSentinel.id));
      await waitFor('mirrors.# queue', () => mirrors.ids.includes(mirrorsSentinel.id));

      expect(content.ids).toEqual([synced.id, published.id, contentSentinel.id]);
      expect([...all.ids].sort()).toEqual(
        [
          synced,
          published,
          pushed,
          deleted,
          crawled,
          contentSentinel,
          pushedSentinel,
          mirrorsSentinel,
        ]
          .map((e) => e.id)
          .sort(),
      );
      expect(exact.ids).toEqual([pushed.id, pushedSentinel.id]);
      expect(mirrors.ids).toEqual([crawled.id, mirrorsSentinel.id]);
    });

    it('delivers to every queue bound to the type', async () => {
      const first = recorder(ours);
      const second = recorder(ours);
      await bus.subscribe(harness.queue('first'), ['content.published'], first.handler);
      await bus.subscribe(harness.queue('second'), ['content.*'], second.handler);
      const event = eventOf('content.published');
      await publish(event);
      await waitFor('both queues', () => first.ids.length === 1 && second.ids.length === 1);
      expect(first.ids).toEqual([event.id]);
      expect(second.ids).toEqual([event.id]);
    });

    it('keeps a queue FIFO', async () => {
      const got = recorder(ours);
      await bus.subscribe(harness.queue('fifo'), ['content.synced'], got.handler, { prefetch: 1 });
      const events = Array.from({ length: 10 }, (_, i) => eventOf('content.synced', i));
      await publish(...events);
      await waitFor('all ten', () => got.ids.length === 10);
      expect(got.ids).toEqual(events.map((e) => e.id));
    });

    it('shares one queue between competing consumers', async () => {
      const queue = harness.queue('shared');
      const a = recorder(ours);
      const b = recorder(ours);
      const slow =
        (inner: EventHandler): EventHandler =>
        async (event) => {
          await sleep(15);
          await inner(event);
        };
      await bus.subscribe(queue, ['content.published'], slow(a.handler), { prefetch: 1 });
      await bus.subscribe(queue, ['content.published'], slow(b.handler), { prefetch: 1 });
      const events = Array.from({ length: 12 }, (_, i) => eventOf('content.published', i));
      await publish(...events);
      await waitFor('all twelve', () => a.ids.length + b.ids.length === 12);
      expect(a.ids.length).toBeGreaterThan(0);
      expect(b.ids.length).toBeGreaterThan(0);
      expect([...a.ids, ...b.ids].sort()).toEqual(events.map((e) => e.id).sort());
    });

    it('acknowledges a handled event: it is not delivered again', async () => {
      const queue = harness.queue('ack');
      const got = recorder(ours);
      const first = await bus.subscribe(queue, ['content.synced'], got.handler);
      const event = eventOf('content.synced');
      await publish(event);
      await waitFor('first delivery', () => got.ids.length === 1);
      await first.cancel();
      // Re-subscribing would redeliver an unacknowledged message before the sentinel.
      await bus.subscribe(queue, ['content.synced'], got.handler);
      const sentinel = eventOf('content.synced', 2);
      await publish(sentinel);
      await waitFor('sentinel', () => got.ids.includes(sentinel.id));
      expect(got.ids).toEqual([event.id, sentinel.id]);
    });

    it('retries a failing handler with back-off, then succeeds', async () => {
      const attempts: string[] = [];
      let handled = false;
      await bus.subscribe(
        harness.queue('retry'),
        ['content.published'],
        async (event) => {
          if (!ours.has(event.id)) return;
          attempts.push(event.id);
          if (attempts.length < 3) throw new Error(`transient failure ${attempts.length}`);
          handled = true;
        },
        { maxRetries: 3, retryDelayMs: 20 },
      );
      const event = eventOf('content.published');
      await publish(event);
      await waitFor('success on the third attempt', () => handled);
      expect(attempts).toEqual([event.id, event.id, event.id]);
      const sentinel = eventOf('content.published', 2);
      await publish(sentinel);
      await waitFor('sentinel', () => attempts.includes(sentinel.id));
      expect(attempts.filter((id) => id === event.id)).toHaveLength(3);
      expect((await harness.deadLetters()).map((d) => d.eventId)).not.toContain(event.id);
    });

    it('dead-letters after maxRetries', async () => {
      let calls = 0;
      await bus.subscribe(
        harness.queue('dead'),
        ['mirrors.crawled'],
        async (event) => {
          if (!ours.has(event.id)) return;
          calls += 1;
          throw new Error('permanent failure');
        },
        { maxRetries: 2, retryDelayMs: 10 },
      );
      const event = eventOf('mirrors.crawled');
      await publish(event);
      await waitFor('dead letter', async () =>
        (await harness.deadLetters()).some((d) => d.eventId === event.id),
      );
      // The first attempt plus two retries; the dead copy is made after the last one.
      expect(calls).toBe(3);
    });

    it('dead-letters an invalid event without calling the handler', async () => {
      let calls = 0;
      await bus.subscribe(harness.queue('garbage'), ['content.published'], async () => {
        calls += 1;
      });
      const valid = eventOf('content.published');
      const invalid = { ...valid, data: { channel: 42 } } as EventEnvelope;
      await publish(invalid);
      await waitFor('dead letter', async () =>
        (await harness.deadLetters()).some((d) => d.body.includes(invalid.id)),
      );
      expect(calls).toBe(0);
    });

    it('honours prefetch: never more handlers in flight than allowed', async () => {
      const prefetch = 2;
      const total = 7;
      const gates: Array<() => void> = [];
      let inFlight = 0;
      let maxInFlight = 0;
      let done = 0;
      // On failure, unblock everything so cleanup's close() does not wait on stuck handlers.
      let releaseAll = false;
      await bus.subscribe(
        harness.queue('prefetch'),
        ['content.synced'],
        async (event) => {
          if (!ours.has(event.id)) return;
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          if (!releaseAll) await new Promise<void>((resolve) => gates.push(resolve));
          inFlight -= 1;
          done += 1;
        },
        { prefetch },
      );
      await publish(...Array.from({ length: total }, (_, i) => eventOf('content.synced', i)));
      try {
        for (let released = 0; released < total; released += 1) {
          const expected = Math.min(prefetch, total - released);
          await waitFor(`${expected} handlers in flight`, () => gates.length >= expected);
          expect(gates.length).toBe(expected);
          (gates.shift() as () => void)();
        }
      } finally {
        releaseAll = true;
        for (const release of gates.splice(0)) release();
      }
      await waitFor('all handled', () => done === total);
      expect(maxInFlight).toBe(prefetch);
    });

    it('keeps events published while the subscription is cancelled', async () => {
      const queue = harness.queue('durable');
      const before = recorder(ours);
      const subscription = await bus.subscribe(queue, ['content.promoted'], before.handler);
      await subscription.cancel();
      const events = [
        eventOf('content.promoted', 1),
        eventOf('content.promoted', 2),
        eventOf('content.promoted', 3),
      ];
      await publish(...events);
      const after = recorder(ours);
      await bus.subscribe(queue, ['content.promoted'], after.handler);
      await waitFor('all three after re-subscribe', () => after.ids.length === 3);
      expect(after.ids).toEqual(events.map((e) => e.id));
      expect(before.ids).toEqual([]);
    });

    it('close() waits for handlers in flight', async () => {
      let release: () => void = () => undefined;
      let started = false;
      let finished = false;
      await bus.subscribe(harness.queue('close'), ['content.published'], async (event) => {
        if (!ours.has(event.id)) return;
        started = true;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        finished = true;
      });
      await publish(eventOf('content.published'));
      await waitFor('handler started', () => started);
      let closed = false;
      let finishedWhenClosed = false;
      const closing = bus.close().then(() => {
        closed = true;
        finishedWhenClosed = finished;
      });
      await sleep(50);
      const closedEarly = closed;
      release();
      await closing;
      expect(closedEarly).toBe(false);
      expect(finishedWhenClosed).toBe(true);
      await expect(bus.ping()).rejects.toThrow();
      await expect(bus.publish(eventOf('content.published'))).rejects.toThrow();
    });
  });
}

import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { busContract } from '@flotilla/bus/contract';
import { describe, expect, it } from 'vitest';
import { createLocalBus, topicMatches, type LocalBus } from '../src/index.js';

busContract('local', async () => {
  const bus: LocalBus = createLocalBus();
  let n = 0;
  return {
    bus,
    queue: (purpose) => `flotilla.test.${purpose}.${(n += 1)}`,
    deadLetters: async () => bus.deadLetters().map((d) => ({ eventId: d.event?.id, body: d.body })),
    cleanup: () => bus.close(),
  };
});

describe('topicMatches (AMQP topic semantics)', () => {
  const cases: Array<[string, string, boolean]> = [
    ['content.published', 'content.published', true],
    ['content.published', 'content.synced', false],
    ['content.*', 'content.published', true],
    ['content.*', 'content', false],
    ['content.*', 'content.a.b', false],
    ['*.published', 'content.published', true],
    ['#', 'registry.manifest.pushed', true],
    ['#', 'x', true],
    ['registry.#', 'registry', true],
    ['registry.#', 'registry.manifest.pushed', true],
    ['registry.#.pushed', 'registry.pushed', true],
    ['registry.#.pushed', 'registry.manifest.pushed', true],
    ['registry.#.pushed', 'registry.manifest.deleted', false],
    ['#.pushed', 'registry.manifest.pushed', true],
    ['#.#', 'a', true],
    ['*.#', 'a', true],
    ['*.#', '', true],
    ['*.*', 'a', false],
    ['#.*.#', 'a.b.c', true],
    ['a.*.#.c', 'a.b.c', true],
    ['a.*.#.c', 'a.c', false],
    ['content.published', 'content.published.extra', false],
  ];
  for (const [pattern, key, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${key}`, () => {
      expect(topicMatches(pattern, key)).toBe(expected);
    });
  }
});

describe('local bus specifics', () => {
  const event = (): EventEnvelope =>
    createEvent('content.published', 'test', {
      channel: 'stable',
      publication: 1,
      repositories: [],
      newBlobs: 0,
    });

  it('never calls a handler synchronously inside publish', async () => {
    const bus = createLocalBus();
    let calls = 0;
    await bus.subscribe('q.sync', ['#'], async () => {
      calls += 1;
    });
    await new Promise((resolve) => setImmediate(resolve));
    const publishing = bus.publish(event());
    expect(calls).toBe(0);
    await publishing;
    expect(calls).toBe(0);
    for (let i = 0; i < 100 && calls === 0; i += 1)
      await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(1);
    await bus.close();
  });

  it('hands each delivery its own copy of the event', async () => {
    const bus = createLocalBus();
    const seen: EventEnvelope[] = [];
    const handler = async (e: EventEnvelope): Promise<void> => {
      seen.push(e);
      (e.data as { channel: string }).channel = 'mutated';
    };
    await bus.subscribe('q.copy.a', ['#'], handler);
    await bus.subscribe('q.copy.b', ['#'], handler);
    const published = event();
    await bus.publish(published);
    for (let i = 0; i < 100 && seen.length < 2; i += 1)
      await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toHaveLength(2);
    expect(seen[0]).not.toBe(seen[1]);
    expect((published.data as { channel: string }).channel).toBe('stable');
    await bus.close();
  });

  it('records dead letters with queue, attempts and error', async () => {
    const bus = createLocalBus();
    await bus.subscribe(
      'q.dead',
      ['content.*'],
      async () => {
        throw new Error('boom');
      },
      { maxRetries: 1, retryDelayMs: 1 },
    );
    const published = event();
    await bus.publish(published);
    for (let i = 0; i < 500 && bus.deadLetters().length === 0; i += 1)
      await new Promise((r) => setTimeout(r, 2));
    const [letter] = bus.deadLetters();
    expect(letter).toMatchObject({ queue: 'q.dead', attempts: 2, error: 'Error: boom' });
    expect(letter?.event).toEqual(published);
    await bus.close();
  });

  it('rejects invalid subscribe options', async () => {
    const bus = createLocalBus();
    await expect(
      bus.subscribe('q.bad', ['#'], async () => undefined, { prefetch: 0 }),
    ).rejects.toThrow(RangeError);
    await expect(
      bus.subscribe('q.bad', ['#'], async () => undefined, { maxRetries: -1 }),
    ).rejects.toThrow(RangeError);
    await bus.close();
  });
});

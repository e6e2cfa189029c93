import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import amqp from 'amqplib';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createAmqpBus,
  createLocalBus,
  createOutbox,
  retryQueueName,
  type Bus,
  type Outbox,
  type OutboxRecord,
} from '../src/index.js';

/**
 * Outbox dispatchers of several replicas over one store (in-process replicas sharing one
 * embedded store handle, as the embedded adapter allows): every event is published once, by
 * one replica, in creation order per aggregate; with the local bus and with RabbitMQ.
 */

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const run = promisify(execFile);

/**
 * A private vhost whose queues are quorum queues (the setting docs/operations.md asks of a
 * replicated deployment), when rabbitmqctl may create one; else undefined (the default vhost).
 */
async function quorumVhost(name: string): Promise<string | undefined> {
  try {
    await run('rabbitmqctl', ['-q', 'add_vhost', name, '--default-queue-type', 'quorum']);
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
    return name;
  } catch (err) {
    console.warn(
      `using the default vhost: cannot create a quorum vhost (${(err as Error).message.split('\n')[0]})`,
    );
    return undefined;
  }
}
const RUN = randomBytes(4).toString('hex');
const REPLICAS = 3;
const EVENTS_PER_AGGREGATE = 40;
const AGGREGATES = ['a', 'b', 'c', 'd'];

function event(aggregate: string, n: number): EventEnvelope {
  return createEvent('content.published', 'outbox-replicas', {
    channel: aggregate,
    publication: n,
    repositories: [],
    newBlobs: 0,
  });
}

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Received {
  id: string;
  aggregate: string;
  n: number;
}

/**
 * Three replicas each enqueue the events of their own aggregates while all three dispatch;
 * one replica stops half-way (its lease goes to another at once). Returns what was received.
 */
async function runReplicas(
  store: Store,
  buses: Bus[],
  received: Received[],
): Promise<{ sent: EventEnvelope[]; outboxes: Outbox[] }> {
  const outboxes = buses.map((bus) => createOutbox({ store, bus, logger, intervalMs: 5 }));
  for (const outbox of outboxes) await outbox.start();
  const sent: EventEnvelope[] = [];
  await Promise.all(
    AGGREGATES.map(async (aggregate, i) => {
      const outbox = outboxes[i % REPLICAS] as Outbox;
      for (let n = 1; n <= EVENTS_PER_AGGREGATE; n += 1) {
        const e = event(aggregate, n);
        sent.push(e);
        await outbox.enqueue(e);
        if (aggregate === 'a' && n === EVENTS_PER_AGGREGATE / 2) await outboxes[0]?.stop();
      }
    }),
  );
  await waitFor('every event received', () => received.length >= sent.length);
  // Let a duplicate, if any, arrive before the check.
  for (const outbox of outboxes.slice(1)) await outbox.flush();
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const outbox of outboxes) await outbox.stop();
  return { sent, outboxes };
}

function expectOncePerEventInOrder(sent: EventEnvelope[], received: Received[]): void {
  expect(received).toHaveLength(sent.length);
  expect(new Set(received.map((r) => r.id)).size).toBe(sent.length);
  for (const aggregate of AGGREGATES) {
    const order = received.filter((r) => r.aggregate === aggregate).map((r) => r.n);
    expect(order, aggregate).toEqual(Array.from({ length: EVENTS_PER_AGGREGATE }, (_, i) => i + 1));
  }
}

function record(received: Received[]) {
  return async (e: EventEnvelope): Promise<void> => {
    const data = e.data as { channel: string; publication: number };
    received.push({ id: e.id, aggregate: data.channel, n: data.publication });
  };
}

describe('outbox replicas over one store', () => {
  let dir: string;
  let store: Store;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-outbox-replicas-'));
    store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
  });

  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes each event once, in order per aggregate, on the local bus', async () => {
    const bus = createLocalBus({ logger });
    const received: Received[] = [];
    await bus.subscribe('flotilla.test.replicas', ['content.*'], record(received));
    try {
      const { sent } = await runReplicas(store, [bus, bus, bus], received);
      expectOncePerEventInOrder(sent, received);
      expect(
        await store.collection<OutboxRecord>('outbox').countDocuments({ state: 'pending' }),
      ).toBe(0);
    } finally {
      await bus.close();
    }
  });

  it('publishes each event once, in order per aggregate, through RabbitMQ quorum queues from three connections', async (ctx) => {
    try {
      await (await amqp.connect(AMQP_URL)).close();
    } catch (err) {
      console.warn(`skipping: RabbitMQ unreachable (${(err as Error).message})`);
      ctx.skip();
      return;
    }
    const vhost = await quorumVhost(`flotilla-test-outbox-replicas-${RUN}`);
    const url = vhost ? `${AMQP_URL.replace(/\/+$/, '')}/${encodeURIComponent(vhost)}` : AMQP_URL;
    const probe = await amqp.connect(url);
    const prefix = `flotilla.test.outbox-replicas.${RUN}`;
    const topology = {
      exchange: `${prefix}.events`,
      deadExchange: `${prefix}.dead`,
      deadQueue: `${prefix}.dead`,
    };
    const queue = `${prefix}.q`;
    const buses = await Promise.all(
      Array.from({ length: REPLICAS }, (_, i) =>
        createAmqpBus({ url, logger, topology, connectionName: `${prefix}.${i}` }),
      ),
    );
    const received: Received[] = [];
    const consumer = buses[0] as Bus;
    try {
      await consumer.subscribe(queue, ['content.*'], record(received));
      const { sent } = await runReplicas(store, buses, received);
      expectOncePerEventInOrder(sent, received);
      if (vhost) {
        const { stdout } = await run('rabbitmqctl', [
          '-q',
          'list_queues',
          '-p',
          vhost,
          'name',
          'type',
        ]);
        expect(stdout).toMatch(new RegExp(`${queue.replaceAll('.', '\\.')}\\s+quorum`));
      }
    } finally {
      for (const bus of buses) await bus.close();
      const channel = await probe.createChannel();
      await channel.deleteQueue(queue);
      await channel.deleteQueue(retryQueueName(queue));
      await channel.deleteQueue(topology.deadQueue);
      await channel.deleteExchange(topology.exchange);
      await channel.deleteExchange(topology.deadExchange);
      await probe.close();
      if (vhost) await run('rabbitmqctl', ['-q', 'delete_vhost', vhost]);
    }
  }, 60_000);
});

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { busContract } from '@flotilla/bus/contract';
import { createEmbeddedStore } from '@flotilla/store';
import amqp from 'amqplib';
import type { Channel, ChannelModel } from 'amqplib';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  ATTEMPT_HEADER,
  createAmqpBus,
  createOutbox,
  openBus,
  retryQueueName,
  type AmqpBus,
  type AmqpTopology,
} from '../src/index.js';

/**
 * Runs against the machine's RabbitMQ (AMQP_URL, default amqp://guest:guest@127.0.0.1:5672).
 * Other test runs share that broker: every test declares its own exchanges and queues with a
 * random suffix and deletes them afterwards, and the reconnection test closes only the
 * connection it named itself.
 */

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const RUN = randomBytes(4).toString('hex');
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const execFileAsync = promisify(execFile);

async function probeBroker(): Promise<string | null> {
  try {
    const connection = await amqp.connect(AMQP_URL);
    await connection.close();
    return null;
  } catch (err) {
    return `RabbitMQ unreachable at ${AMQP_URL.replace(/\/\/[^@]*@/, '//')}: ${(err as Error).message}`;
  }
}

async function probeRabbitmqctl(): Promise<string | null> {
  try {
    await execFileAsync('rabbitmqctl', ['list_connections', 'pid', '-q', '--no-table-headers'], {
      timeout: 30_000,
    });
    return null;
  } catch (err) {
    return `rabbitmqctl unusable: ${(err as Error).message.split('\n')[0]}`;
  }
}

const brokerMissing = await probeBroker();

function requireOrSkip(reason: string | null, name: string): boolean {
  if (!reason) return true;
  if (process.env.CI === 'true') {
    it(name, () => {
      throw new Error(reason);
    });
  } else {
    console.warn(`skipping "${name}": ${reason}`);
    it.skip(`${name} (${reason})`, () => undefined);
  }
  return false;
}

/** An admin connection for declaring, inspecting and deleting test topology. */
let admin: { connection: ChannelModel; channel: Channel } | null = null;
async function adminChannel(): Promise<Channel> {
  if (!admin) {
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    admin = { connection, channel };
  }
  return admin.channel;
}

/** Consumer count of a queue, or -1 when it does not exist (checked on a throwaway channel). */
async function queueConsumers(queue: string): Promise<number> {
  await adminChannel();
  const channel = await (admin as { connection: ChannelModel }).connection.createChannel();
  channel.on('error', () => undefined);
  try {
    return (await channel.checkQueue(queue)).consumerCount;
  } catch {
    return -1;
  } finally {
    await channel.close().catch(() => undefined);
  }
}

afterAll(async () => {
  await admin?.connection.close().catch(() => undefined);
});

let harnessCount = 0;

/** A unique topology plus bookkeeping of the queues a test declared, deleted by `remove()`. */
function testTopology(): {
  topology: AmqpTopology;
  queue(purpose: string): string;
  remove(): Promise<void>;
} {
  harnessCount += 1;
  const prefix = `flotilla.test.${RUN}.${harnessCount}`;
  const topology: AmqpTopology = {
    exchange: `${prefix}.events`,
    deadExchange: `${prefix}.dead`,
    deadQueue: `${prefix}.dead`,
  };
  const queues = new Set<string>();
  return {
    topology,
    queue(purpose) {
      const name = `${prefix}.q.${purpose}`;
      queues.add(name);
      return name;
    },
    async remove() {
      const channel = await adminChannel();
      for (const queue of queues) {
        await channel.deleteQueue(queue);
        await channel.deleteQueue(retryQueueName(queue));
      }
      await channel.deleteQueue(topology.deadQueue);
      await channel.deleteExchange(topology.exchange);
      await channel.deleteExchange(topology.deadExchange);
    },
  };
}

/** Drains the test's dead queue (it is ours alone) into an accumulating list. */
function deadReader(
  deadQueue: string,
): () => Promise<Array<{ eventId?: string; body: string; headers: Record<string, unknown> }>> {
  const seen: Array<{ eventId?: string; body: string; headers: Record<string, unknown> }> = [];
  return async () => {
    const channel = await adminChannel();
    for (let i = 0; i < 1000; i += 1) {
      const message = await channel.get(deadQueue, { noAck: true });
      if (!message) break;
      const body = message.content.toString('utf8');
      let eventId: string | undefined;
      try {
        const parsed = JSON.parse(body) as { id?: unknown };
        if (typeof parsed.id === 'string') eventId = parsed.id;
      } catch {
        eventId = undefined;
      }
      seen.push({
        body,
        headers: message.properties.headers ?? {},
        ...(eventId ? { eventId } : {}),
      });
    }
    return seen;
  };
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

function published(n: number): EventEnvelope {
  return createEvent('content.published', 'amqp-test', {
    channel: 'stable',
    publication: n,
    repositories: [],
    newBlobs: 0,
  });
}

if (requireOrSkip(brokerMissing, 'bus contract: amqp')) {
  busContract('amqp', async () => {
    const t = testTopology();
    const bus = await createAmqpBus({
      url: AMQP_URL,
      logger,
      topology: t.topology,
      connectionName: `flotilla-test-${RUN}`,
    });
    const readDead = deadReader(t.topology.deadQueue);
    return {
      bus,
      queue: t.queue,
      deadLetters: readDead,
      async cleanup() {
        await bus.close();
        await t.remove();
      },
    };
  });
}

if (requireOrSkip(brokerMissing, 'amqp adapter')) {
  describe('amqp adapter', () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
    });

    async function setup(
      options: {
        connectionName?: string;
        reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
        publishTimeoutMs?: number;
      } = {},
    ): Promise<{ bus: AmqpBus; t: ReturnType<typeof testTopology> }> {
      const t = testTopology();
      cleanups.push(() => t.remove());
      const bus = await createAmqpBus({ url: AMQP_URL, logger, topology: t.topology, ...options });
      cleanups.push(() => bus.close());
      return { bus, t };
    }

    it('openBus() gives the amqp adapter for a URL and the local one without', async () => {
      const t = testTopology();
      cleanups.push(() => t.remove());
      const remote = await openBus({ amqpUrl: AMQP_URL, logger, amqp: { topology: t.topology } });
      cleanups.push(() => remote.close());
      expect(remote.kind).toBe('amqp');
      await remote.ping();
      const local = await openBus({ logger });
      cleanups.push(() => local.close());
      expect(local.kind).toBe('local');
    });

    it('rejects when the broker cannot be reached at start', async () => {
      await expect(
        createAmqpBus({ url: 'amqp://guest:guest@127.0.0.1:1', logger }),
      ).rejects.toThrow();
    });

    it('declares the default topology: flotilla.events (topic) and flotilla.dead', async () => {
      const bus = await createAmqpBus({
        url: AMQP_URL,
        logger,
        connectionName: `flotilla-test-${RUN}-defaults`,
      });
      cleanups.push(() => bus.close());
      const channel = await adminChannel();
      await expect(channel.checkExchange('flotilla.events')).resolves.toBeDefined();
      await expect(channel.checkExchange('flotilla.dead')).resolves.toBeDefined();
      await expect(channel.checkQueue('flotilla.dead')).resolves.toMatchObject({
        queue: 'flotilla.dead',
      });
    });

    it('publishes persistent JSON messages with the event id and type', async () => {
      const { bus, t } = await setup();
      const channel = await adminChannel();
      const probe = t.queue('probe');
      await channel.assertQueue(probe, { durable: false });
      await channel.bindQueue(probe, t.topology.exchange, '#');
      const event = published(1);
      await bus.publish(event);
      let message: amqp.GetMessage | false = false;
      await waitFor('message on the probe queue', async () => {
        message = await channel.get(probe, { noAck: true });
        return message !== false;
      });
      const got = message as unknown as amqp.GetMessage;
      expect(got.fields.routingKey).toBe('content.published');
      expect(got.properties).toMatchObject({
        contentType: 'application/json',
        deliveryMode: 2,
        messageId: event.id,
        type: 'content.published',
      });
      expect(JSON.parse(got.content.toString('utf8'))).toEqual(event);
    });

    it('routes a retry through <queue>.retry with x-flotilla-attempt incremented', async () => {
      const { bus, t } = await setup();
      const queue = t.queue('retry-header');
      const attempts: number[] = [];
      const channel = await adminChannel();
      await bus.subscribe(
        queue,
        ['content.published'],
        async () => {
          attempts.push(attempts.length);
          if (attempts.length < 3) throw new Error('again');
        },
        { maxRetries: 5, retryDelayMs: 10 },
      );
      await expect(channel.checkQueue(retryQueueName(queue))).resolves.toMatchObject({
        queue: retryQueueName(queue),
      });
      await bus.publish(published(1));
      await waitFor('third attempt', () => attempts.length === 3);
      const dead = await deadReader(t.topology.deadQueue)();
      expect(dead).toEqual([]);
    });

    it('sends a message that is not an event straight to the dead queue', async () => {
      const { bus, t } = await setup();
      const queue = t.queue('garbage');
      let calls = 0;
      await bus.subscribe(queue, ['#'], async () => {
        calls += 1;
      });
      const channel = await adminChannel();
      channel.publish(t.topology.exchange, 'content.published', Buffer.from('not json {'), {
        contentType: 'text/plain',
      });
      const readDead = deadReader(t.topology.deadQueue);
      await waitFor('dead letter', async () => (await readDead()).length === 1);
      const [letter] = await readDead();
      expect(letter?.body).toBe('not json {');
      expect(letter?.headers).toMatchObject({ 'x-flotilla-queue': queue, [ATTEMPT_HEADER]: 0 });
      expect(String(letter?.headers['x-flotilla-error'])).toMatch(/JSON/);
      expect(calls).toBe(0);
    });

    it('dead letters carry the queue, attempts and error', async () => {
      const { bus, t } = await setup();
      const queue = t.queue('dead-headers');
      await bus.subscribe(
        queue,
        ['content.published'],
        async () => {
          throw new Error('always broken');
        },
        { maxRetries: 1, retryDelayMs: 5 },
      );
      const event = published(3);
      await bus.publish(event);
      const readDead = deadReader(t.topology.deadQueue);
      await waitFor('dead letter', async () => (await readDead()).length === 1);
      const [letter] = await readDead();
      expect(letter?.eventId).toBe(event.id);
      expect(letter?.headers).toMatchObject({
        'x-flotilla-queue': queue,
        [ATTEMPT_HEADER]: 2,
        'x-flotilla-error': 'Error: always broken',
      });
    });

    it('declares the queue again and resumes when the broker cancels the consumer', async () => {
      const { bus, t } = await setup();
      const queue = t.queue('deleted');
      const received = new Set<string>();
      await bus.subscribe(queue, ['content.published'], async (event) => {
        received.add(event.id);
      });
      await (await adminChannel()).deleteQueue(queue);
      await waitFor(
        'the queue back with its consumer',
        async () => (await queueConsumers(queue)) === 1,
      );
      const event = published(1);
      await bus.publish(event);
      await waitFor('delivery after the queue came back', () => received.has(event.id));
    });

    it('recovers when its exchange is deleted under it: the publish is retried after re-declaring', async () => {
      const { bus, t } = await setup({ reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
      const received = new Set<string>();
      await bus.subscribe(t.queue('exchange-gone'), ['content.published'], async (event) => {
        received.add(event.id);
      });
      await (await adminChannel()).deleteExchange(t.topology.exchange);
      // The broker closes the publishing channel (404); the bus reconnects, declares the
      // exchange and the bindings again, and publishes once more.
      const event = published(1);
      await bus.publish(event);
      await waitFor('delivery after recovery', () => received.has(event.id));
      expect(bus.connected).toBe(true);
    });

    it('ping() throws and publish() rejects after close; no reconnection after close', async () => {
      const { bus } = await setup();
      await bus.close();
      expect(bus.connected).toBe(false);
      await expect(bus.ping()).rejects.toThrow();
      await expect(bus.publish(published(1))).rejects.toThrow(/closed/);
    });
  });
}

const rabbitmqctlMissing = brokerMissing ?? (await probeRabbitmqctl());

if (requireOrSkip(rabbitmqctlMissing, 'amqp reconnection')) {
  describe('amqp reconnection (the broker drops our connection)', () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void>)();
    });

    /** Finds the broker-side pid of the connection we named, and closes that one only. */
    async function dropConnection(connectionName: string): Promise<void> {
      const { stdout } = await execFileAsync(
        'rabbitmqctl',
        ['list_connections', 'pid', 'client_properties', '-q', '--no-table-headers'],
        { timeout: 30_000 },
      );
      const pids = stdout
        .split('\n')
        .filter((line) => line.includes(`{"connection_name","${connectionName}"}`))
        .map((line) => line.split('\t')[0] ?? '')
        .filter((pid) => pid.startsWith('<'));
      expect(pids).toHaveLength(1);
      await execFileAsync(
        'rabbitmqctl',
        ['close_connection', pids[0] as string, 'flotilla reconnection test'],
        {
          timeout: 30_000,
        },
      );
    }

    async function setup(publishTimeoutMs = 30_000) {
      const t = testTopology();
      cleanups.push(() => t.remove());
      const connectionName = `flotilla-test-${RUN}-${randomBytes(3).toString('hex')}`;
      const bus = await createAmqpBus({
        url: AMQP_URL,
        logger,
        topology: t.topology,
        connectionName,
        reconnect: { initialDelayMs: 400, maxDelayMs: 2000 },
        publishTimeoutMs,
      });
      cleanups.push(() => bus.close());
      return { bus, t, connectionName };
    }

    it('reconnects, resumes consumers and delivers what was published during and after the outage', async () => {
      const { bus, t, connectionName } = await setup();
      const received = new Set<string>();
      await bus.subscribe(t.queue('resume'), ['content.*'], async (event) => {
        received.add(event.id);
      });
      const before = published(0);
      await bus.publish(before);
      await waitFor('delivery before the outage', () => received.has(before.id));

      await dropConnection(connectionName);
      await waitFor('the bus to notice the outage', () => !bus.connected);
      await expect(bus.ping()).rejects.toThrow(/not connected/);
      // Published while disconnected: publish() waits for the reconnection.
      expect(bus.connected).toBe(false);
      const during = published(1);
      const duringPublish = bus.publish(during);

      await duringPublish;
      expect(bus.connected).toBe(true);
      await bus.ping();
      const after = Array.from({ length: 10 }, (_, i) => published(i + 2));
      for (const event of after) await bus.publish(event);

      await waitFor('every event from during and after the outage', () =>
        [during, ...after].every((event) => received.has(event.id)),
      );
    });

    it('redelivers a message whose handler was in flight when the connection dropped', async () => {
      const { bus, t, connectionName } = await setup();
      const event = published(1);
      let calls = 0;
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      await bus.subscribe(t.queue('inflight'), ['content.published'], async (got) => {
        if (got.id !== event.id) return;
        calls += 1;
        if (calls === 1) await gate;
      });
      await bus.publish(event);
      await waitFor('handler started', () => calls === 1);
      await dropConnection(connectionName);
      await waitFor('outage noticed', () => !bus.connected);
      // The handler finishes, but its ack cannot reach the broker any more.
      release();
      await waitFor('redelivery after reconnection', () => calls === 2);
      expect(bus.connected).toBe(true);
    });

    it('keeps consuming across two consecutive drops', async () => {
      const { bus, t, connectionName } = await setup();
      const received = new Set<string>();
      await bus.subscribe(t.queue('twice'), ['content.published'], async (event) => {
        received.add(event.id);
      });
      for (let round = 0; round < 2; round += 1) {
        await dropConnection(connectionName);
        await waitFor('outage noticed', () => !bus.connected);
        await waitFor('reconnected', () => bus.connected);
        const event = published(round);
        await bus.publish(event);
        await waitFor(`delivery after drop ${round + 1}`, () => received.has(event.id));
      }
    });

    it('with the outbox, an event enqueued during the outage is delivered after it', async () => {
      const t = testTopology();
      cleanups.push(() => t.remove());
      const dir = await mkdtemp(join(tmpdir(), 'flotilla-bus-outbox-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const store = createEmbeddedStore({ dir, compactIntervalMs: 0 });
      cleanups.push(() => store.close());
      const connectionName = `flotilla-test-${RUN}-${randomBytes(3).toString('hex')}`;
      const bus = await createAmqpBus({
        url: AMQP_URL,
        logger,
        topology: t.topology,
        connectionName,
        reconnect: { initialDelayMs: 3000, maxDelayMs: 3000 },
        publishTimeoutMs: 100,
      });
      cleanups.push(() => bus.close());
      const received = new Set<string>();
      await bus.subscribe(t.queue('outbox'), ['content.published'], async (event) => {
        received.add(event.id);
      });
      const outbox = createOutbox({ store, bus, logger });

      await dropConnection(connectionName);
      await waitFor('outage noticed', () => !bus.connected);
      const event = published(1);
      await outbox.enqueue(event);
      await outbox.flush();
      // The reconnection comes 1.5-3 s later; publish gave up after 100 ms.
      expect(bus.connected).toBe(false);
      expect(await outbox.pendingCount()).toBe(1);

      await waitFor('reconnected', () => bus.connected);
      await outbox.flush();
      expect(await outbox.pendingCount()).toBe(0);
      await waitFor('delivery after the outage', () => received.has(event.id));
    });

    it('publish() rejects when the outage outlasts publishTimeoutMs', async () => {
      const t = testTopology();
      cleanups.push(() => t.remove());
      const connectionName = `flotilla-test-${RUN}-${randomBytes(3).toString('hex')}`;
      const bus = await createAmqpBus({
        url: AMQP_URL,
        logger,
        topology: t.topology,
        connectionName,
        // The first reconnection attempt comes after at least 5 s, long after the timeout.
        reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 },
        publishTimeoutMs: 200,
      });
      cleanups.push(() => bus.close());
      await dropConnection(connectionName);
      await waitFor('outage noticed', () => !bus.connected);
      await expect(bus.publish(published(1))).rejects.toThrow(/unreachable/);
    });
  });
}

/**
 * Two content instances on one store, with the bus on the machine's RabbitMQ: registry events
 * start syncs, tasks are shared through the `flotilla.content.tasks`-style queue, and
 * content.synced / content.promoted / content.published reach another consumer.
 * Exchange and queue names are unique per run.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAmqpBus, type Bus } from '@flotilla/bus';
import { createLogger } from '@flotilla/kit';
import { createEvent, type EventEnvelope } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { FakeRegistry } from '../services/content/test/fake-registry.js';
import { startContent, type ContentHarness } from '../services/content/test/harness.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const run = randomBytes(4).toString('hex');
const topology = {
  exchange: `flotilla.test.${run}.events`,
  deadExchange: `flotilla.test.${run}.dead`,
  deadQueue: `flotilla.test.${run}.dead`,
};
const queues = {
  tasks: `flotilla.test.${run}.content.tasks`,
  registryEvents: `flotilla.test.${run}.content.registry-events`,
};

async function until<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('content with the bus on RabbitMQ', () => {
  const logger = createLogger({
    name: 'content-amqp-test',
    level: process.env.LOG_LEVEL ?? 'silent',
  });
  let dir: string;
  let store: Store;
  let buses: Bus[] = [];
  let a: ContentHarness;
  let b: ContentHarness;
  let upstream: FakeRegistry;
  const seen: EventEnvelope[] = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-amqp-'));
    store = createEmbeddedStore({ dir: path.join(dir, 'db'), logger });
    upstream = await new FakeRegistry().start();
    buses = await Promise.all(
      [0, 1, 2].map((i) =>
        createAmqpBus({
          url: AMQP_URL,
          logger,
          topology,
          connectionName: `content-test-${run}-${i}`,
        }),
      ),
    );
    const env = { FLOTILLA_REGISTRY_URL: upstream.url, FLOTILLA_CONTENT_WORKERS: '1' };
    a = await startContent(env, { dir, store, bus: buses[0], queues });
    b = await startContent(env, { dir, store, bus: buses[1], queues });
    await buses[2]!.subscribe(`flotilla.test.${run}.spy`, ['content.*'], async (event) => {
      seen.push(event);
    });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    for (const bus of buses) await bus.close();
    await store?.close();
    await upstream?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    // durable names are unique per run: remove them so the broker does not collect them
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createChannel();
    for (const q of [queues.tasks, queues.registryEvents, `flotilla.test.${run}.spy`]) {
      await channel.deleteQueue(q);
      await channel.deleteQueue(`${q}.retry`);
    }
    await channel.deleteQueue(topology.deadQueue);
    await channel.deleteExchange(topology.exchange);
    await channel.deleteExchange(topology.deadExchange);
    await connection.close();
  });

  it('syncs on registry.manifest.pushed from RabbitMQ and emits content.synced', async () => {
    const img = upstream.addImage('amqp/app', 'v1');
    await buses[2]!.publish(
      createEvent('registry.manifest.pushed', 'registry', {
        repository: 'amqp/app',
        digest: img.digest,
        mediaType: img.mediaType,
        size: img.bytes.length,
        tag: 'v1',
      }),
    );
    const synced = await until(() => seen.find((e) => e.type === 'content.synced'));
    expect(synced.data).toMatchObject({
      repository: 'amqp/app',
      channel: 'candidate',
      version: 1,
      added: 1,
      removed: 0,
    });
  });

  it('shares tasks between two workers and emits promoted and published events', async () => {
    upstream.blobDelayMs = 300;
    const names = Array.from({ length: 6 }, (_, i) => `shared/app${i}`);
    for (const n of names) upstream.addImage(n, '1');
    const ids: string[] = [];
    for (const n of names)
      ids.push((await a.api('POST', '/api/v1/syncs', { repository: n })).body.task.id);
    const done = await Promise.all(ids.map((id) => a.waitTask(id, 30_000)));
    expect(done.every((t) => t.state === 'completed')).toBe(true);
    expect(new Set(done.map((t) => t.worker)).size).toBe(2);
    upstream.blobDelayMs = 0;

    const promo = await b.api('POST', '/api/v1/promotions', {
      repository: 'amqp/app',
      tags: ['v1'],
      from: 'candidate',
      to: 'testing',
      reason: 'amqp',
    });
    expect(promo.status).toBe(201);
    const promoted = await until(() => seen.find((e) => e.type === 'content.promoted'));
    expect(promoted.data).toMatchObject({
      repository: 'amqp/app',
      from: 'candidate',
      to: 'testing',
      tags: ['v1'],
      actor: 'admin',
      reason: 'amqp',
    });

    const task = await b.waitTask(
      (await b.api('POST', '/api/v1/publications', { channel: 'testing' })).body.task.id,
    );
    expect(task.state).toBe('completed');
    const published = await until(() => seen.find((e) => e.type === 'content.published'));
    expect(published.data).toMatchObject({
      channel: 'testing',
      publication: 1,
      repositories: ['amqp/app'],
      newBlobs: 4,
    });
  });
});

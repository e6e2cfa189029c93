/**
 * Suite mode: the registry's events reach RabbitMQ (127.0.0.1:5672) through the outbox, on a
 * unique topology that is deleted afterwards. Skipped (with a reason) when no broker answers,
 * failing under CI=true.
 */
import { createAmqpBus, type AmqpBus } from '@flotilla/bus';
import { listen } from '@flotilla/kit';
import type { EventEnvelope } from '@flotilla/protocol';
import amqp from 'amqplib';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryService, type RegistryServiceInstance } from '../src/service.js';
import { ADMIN_PASSWORD, adminAuth } from './harness.js';
import { content, imageManifest, OCI_MANIFEST } from './http.js';

const AMQP_URL = process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';

async function brokerReachable(): Promise<boolean> {
  try {
    const connection = await amqp.connect(AMQP_URL, { timeout: 2000 });
    await connection.close();
    return true;
  } catch {
    if (process.env['CI'] === 'true')
      throw new Error(`RabbitMQ not reachable at ${AMQP_URL} (required when CI=true)`);
    console.warn(`skipping: RabbitMQ not reachable at ${AMQP_URL}`);
    return false;
  }
}

const reachable = await brokerReachable();

describe.skipIf(!reachable)('registry events over RabbitMQ', () => {
  const suffix = randomBytes(4).toString('hex');
  const topology = {
    exchange: `flotilla.test.registry.${suffix}`,
    deadExchange: `flotilla.test.registry.dead.${suffix}`,
    deadQueue: `flotilla.test.registry.dead.${suffix}`,
  };
  const queue = `flotilla.test.registry.events.${suffix}`;
  const logger = pino({ level: 'silent' });
  let dir: string;
  let bus: AmqpBus;
  let service: RegistryServiceInstance;
  let server: Awaited<ReturnType<typeof listen>>;
  const events: EventEnvelope[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-amqp-'));
    bus = await createAmqpBus({ url: AMQP_URL, logger, topology });
    await bus.subscribe(queue, ['registry.#'], async (event) => {
      events.push(event);
    });
    service = await createRegistryService({
      config: {
        port: 0,
        host: '127.0.0.1',
        dataDir: dir,
        storageDir: join(dir, 'registry'),
        deleteEnabled: true,
        uploadTtlMs: 3_600_000,
        adminPassword: ADMIN_PASSWORD,
        anonymousPull: true,
        authReloadIntervalMs: 0,
      },
      logger,
      bus,
    });
    await service.start();
    server = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  });

  afterAll(async () => {
    await server?.close();
    await service?.stop();
    await bus?.close();
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createChannel();
    for (const q of [queue, `${queue}.retry`, topology.deadQueue])
      await channel.deleteQueue(q).catch(() => undefined);
    await channel.deleteExchange(topology.exchange).catch(() => undefined);
    await channel.deleteExchange(topology.deadExchange).catch(() => undefined);
    await connection.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes registry.manifest.pushed for a push by tag', async () => {
    const config = content('{"amqp":true}');
    const post = await fetch(`${server.url}/v2/amqp/app/blobs/uploads/?digest=${config.digest}`, {
      method: 'POST',
      headers: { authorization: adminAuth },
      body: config.bytes,
    });
    expect(post.status).toBe(201);
    const manifest = imageManifest(config, []);
    const put = await fetch(`${server.url}/v2/amqp/app/manifests/v1`, {
      method: 'PUT',
      headers: { authorization: adminAuth, 'content-type': OCI_MANIFEST },
      body: manifest.bytes,
    });
    expect(put.status).toBe(201);
    for (let i = 0; i < 100 && events.length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'registry.manifest.pushed',
      source: 'registry',
      data: {
        repository: 'amqp/app',
        digest: manifest.digest,
        tag: 'v1',
        mediaType: OCI_MANIFEST,
        size: manifest.size,
      },
    });
  });
});

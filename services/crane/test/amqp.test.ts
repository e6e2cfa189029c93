import { randomBytes } from 'node:crypto';
import { createAmqpBus, type AmqpBus } from '@flotilla/bus';
import { createEvent } from '@flotilla/protocol';
import amqp from 'amqplib';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { writePublishedTree } from '../../../test/support/tree.js';
import { removeDir, startCrane, tempDir, type Crane } from './harness.js';
import { reloadQueueName } from '../src/index.js';

/**
 * Every crane instance consumes its own queue, so each one hears every content.published.
 * Runs against the machine's RabbitMQ with a private exchange per run, deleted afterwards.
 */
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const RUN = randomBytes(4).toString('hex');
const topology = {
  exchange: `flotilla.test.crane.${RUN}`,
  deadExchange: `flotilla.test.crane.dead.${RUN}`,
  deadQueue: `flotilla.test.crane.dead.${RUN}`,
};

async function brokerMissing(): Promise<string | null> {
  try {
    const connection = await amqp.connect(AMQP_URL);
    await connection.close();
    return null;
  } catch (err) {
    return `RabbitMQ unreachable: ${(err as Error).message}`;
  }
}

const missing = await brokerMissing();
if (missing && process.env.CI === 'true') throw new Error(missing);
if (missing) console.log(`skipping crane AMQP test: ${missing}`);

const buses: AmqpBus[] = [];
const cranes: Crane[] = [];
const queues: string[] = [];
let root: string | undefined;

afterAll(async () => {
  for (const c of cranes) await c.close();
  for (const b of buses) await b.close();
  if (root) await removeDir(root);
  if (missing) return;
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  for (const q of [...queues, ...queues.map((q) => `${q}.retry`), topology.deadQueue])
    await channel.deleteQueue(q);
  await channel.deleteExchange(topology.exchange);
  await channel.deleteExchange(topology.deadExchange);
  await connection.close();
});

describe.skipIf(missing !== null)('reload over RabbitMQ', () => {
  it('reloads every instance on content.published', async () => {
    root = await tempDir();
    await writePublishedTree(root, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const logger = pino({ level: 'silent' });
    for (const id of ['one', 'two']) {
      const bus = await createAmqpBus({
        url: AMQP_URL,
        logger,
        topology,
        connectionName: `crane-test-${RUN}`,
      });
      buses.push(bus);
      const instanceId = `test-${RUN}-${id}`;
      queues.push(reloadQueueName(instanceId));
      cranes.push(await startCrane(root, { FLOTILLA_CRANE_INSTANCE_ID: instanceId }, { bus }));
    }
    await writePublishedTree(root, {
      publication: 2,
      repositories: [{ name: 'c/d', tags: { y: { kind: 'image' } } }],
    });
    await buses[0]!.publish(
      createEvent('content.published', 'content', {
        channel: 'stable',
        publication: 2,
        repositories: ['c/d'],
        newBlobs: 4,
      }),
    );
    for (const crane of cranes) {
      for (let i = 0; i < 200 && crane.service.catalog().publication !== 2; i++)
        await new Promise((r) => setTimeout(r, 25));
      expect(crane.service.catalog().publication).toBe(2);
      expect((await crane.get('/v2/c/d/tags/list')).status).toBe(200);
    }
  });
});

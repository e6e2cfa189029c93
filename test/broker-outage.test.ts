/**
 * Broker outage in suite mode: registry and content run as `flotilla serve <service>`
 * over a private RabbitMQ node (test/support/rabbitmq-node.ts; the machine's shared broker is
 * never stopped). The broker is stopped (`rabbitmqctl stop_app`) and started again twice while
 * images are being pushed, some before, some during and some after each outage (the second one
 * outlasts the bus's wait for a connection, so publishes fail and are retried). Every push the
 * registry acknowledged reaches content's candidate channel, no process exits, and `/readyz`
 * answers 503 while the broker is down and 200 once it is back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ContentClient } from '@flotilla/content';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { pushImage } from './support/images.js';
import { tagsReachCandidate, type PushedTag } from './support/invariants.js';
import {
  privateRabbitAvailable,
  startPrivateRabbitNode,
  type PrivateRabbitNode,
} from './support/rabbitmq-node.js';

const available = privateRabbitAvailable();
if (!available) {
  if (process.env.CI === 'true')
    throw new Error('the broker-outage test needs rabbitmq-server installed');
  console.log('broker-outage test skipped: rabbitmq-server is not installed');
}

const SERVICES = ['registry', 'content'] as const;
type Service = (typeof SERVICES)[number];

describe.skipIf(!available)('suite mode: RabbitMQ stopped and started during pushes', () => {
  const secrets = {
    admin: randomBytes(12).toString('hex'),
    token: randomBytes(16).toString('hex'),
  };
  let node: PrivateRabbitNode | undefined;
  let work: string;
  let ports: ServicePorts;
  const procs = new Map<Service, FlotillaProcess>();
  let content: ContentClient;
  const pushed: PushedTag[] = [];
  let serial = 0;

  const registryUrl = () => `http://127.0.0.1:${ports.registry}`;
  const readyz = async (service: Service): Promise<number> =>
    fetch(`http://127.0.0.1:${ports[service]}/readyz`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.status,
      () => 0,
    );
  const push = async (): Promise<void> => {
    const repository = `outage/app${++serial}`;
    const image = await pushImage(registryUrl(), repository, '1', {
      layers: 2,
      layerBytes: 32 * 1024,
      auth: { username: 'admin', password: secrets.admin },
    });
    pushed.push({ repository, tag: '1', digest: image.digest });
  };

  beforeAll(async () => {
    node = await startPrivateRabbitNode();
    work = await mkdtemp(join(tmpdir(), 'flotilla-outage-'));
    ports = await freeServicePorts();
    for (const service of SERVICES) {
      const env = flotillaEnv({
        dataDir: join(work, service),
        ports,
        extra: {
          AMQP_URL: node.url,
          FLOTILLA_ADMIN_PASSWORD: secrets.admin,
          FLOTILLA_API_TOKEN: secrets.token,
          FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '3',
        },
      });
      procs.set(service, await startFlotilla(['serve', service], env, ports));
    }
    content = new ContentClient({ url: `http://127.0.0.1:${ports.content}`, token: secrets.token });
  }, 180_000);

  afterAll(async () => {
    // the broker must be up for a clean shutdown to be expected; start it even if a check failed
    await node?.startApp().catch(() => undefined);
    const codes: Record<string, number | null> = {};
    for (const [name, p] of procs) codes[name] = await p.stop();
    await node?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    expect(codes, 'every service exits 0 on SIGTERM').toEqual({ registry: 0, content: 0 });
  }, 180_000);

  it('loses no event, exits no process, and /readyz follows the broker', async () => {
    await push();
    await push();
    for (let outage = 1; outage <= 2; outage++) {
      // pushes in flight while the broker goes away
      const inFlight = Promise.all([push(), push(), push()]);
      await node!.stopApp();
      for (const service of SERVICES) {
        await waitFor(
          `${service} /readyz 503 while the broker is down (outage ${outage})`,
          async () => ((await readyz(service)) === 503 ? true : undefined),
          30_000,
        );
      }
      await inFlight;
      // the registry keeps taking pushes while its broker is down: the events wait in its outbox
      for (let i = 0; i < 3; i++) await push();
      // The second outage outlasts the bus's 30 s wait for a connection, so publishing fails and
      // the outboxes must keep the events for a later pass.
      if (outage === 2) await new Promise((r) => setTimeout(r, 35_000));
      await node!.startApp();
      for (const service of SERVICES) {
        await waitFor(
          `${service} /readyz 200 once the broker is back (outage ${outage})`,
          async () => ((await readyz(service)) === 200 ? true : undefined),
          90_000,
        );
      }
      await push();
    }
    expect(await tagsReachCandidate(content, pushed, 120_000)).toEqual([]);
    for (const [name, p] of procs) {
      expect(
        { name, exitCode: p.child.exitCode, signal: p.child.signalCode },
        `${name} kept running through the outages:\n${p.output()}`,
      ).toEqual({
        name,
        exitCode: null,
        signal: null,
      });
    }
  }, 400_000);
});

/**
 * No window between a manifest push and its event: the registry (suite mode, its own process)
 * is killed with SIGKILL at each point between the writes of a manifest put
 * (`FLOTILLA_FAULT_POINT=registry.manifest.<point>`); after a restart the push has its
 * `registry.manifest.pushed` event after all, and content (its own process, same RabbitMQ
 * vhost) syncs it into candidate. The same holds in all-in-one (one process, the in-process bus).
 */
import { ContentClient } from '@flotilla/content';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBinary } from './support/clients.js';
import {
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { makeImage, pushImage } from './support/images.js';

const exec = promisify(execFile);
const rabbitmqctl = (...args: string[]) =>
  exec('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });
const brokerUp =
  hasBinary('rabbitmqctl') &&
  (await rabbitmqctl('status').then(
    () => true,
    () => false,
  ));
if (!brokerUp) {
  if (process.env.CI === 'true')
    throw new Error(
      'the registry event crash test needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl',
    );
  console.log('registry event crash test skipped: RabbitMQ (rabbitmqctl) is not available');
}

describe.skipIf(!brokerUp)('a registry killed between a manifest put and its event', () => {
  const vhost = `flotilla-events-${randomBytes(4).toString('hex')}`;
  const secrets = {
    admin: randomBytes(12).toString('hex'),
    token: randomBytes(16).toString('hex'),
    webhook: randomBytes(16).toString('hex'),
  };
  let work: string;
  let ports: ServicePorts;
  let registry: FlotillaProcess | undefined;
  let contentProc: FlotillaProcess | undefined;
  let content: ContentClient;

  const envFor = (service: 'registry' | 'content', extra: Record<string, string> = {}) =>
    flotillaEnv({
      dataDir: join(work, service),
      ports,
      extra: {
        AMQP_URL: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`,
        FLOTILLA_PUBLISH_DIR: join(work, 'publish'),
        FLOTILLA_ADMIN_PASSWORD: secrets.admin,
        FLOTILLA_API_TOKEN: secrets.token,
        FLOTILLA_WEBHOOK_SECRET: secrets.webhook,
        ...extra,
      },
    });
  const registryUrl = () => `http://127.0.0.1:${ports.registry}`;

  beforeAll(async () => {
    await rabbitmqctl('add_vhost', vhost);
    await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
    work = await mkdtemp(join(tmpdir(), 'flotilla-events-crash-'));
    ports = await freeServicePorts();
    contentProc = await startFlotilla(['serve', 'content'], envFor('content'), ports);
    content = new ContentClient({ url: `http://127.0.0.1:${ports.content}`, token: secrets.token });
  }, 180_000);

  afterAll(async () => {
    await registry?.kill('SIGKILL');
    await contentProc?.stop();
    await rabbitmqctl('delete_vhost', vhost).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  // `stored`: the manifest and tag are on disk, nothing is enqueued (the window of the issue);
  // `journaled`: the change had not begun; `enqueued`: the outbox holds it, the journal too.
  for (const [i, point] of ['stored', 'journaled', 'enqueued'].entries()) {
    it(`killed at registry.manifest.${point}: after a restart the push is in the registry and reaches candidate`, async () => {
      const repository = `crash/events${i}`;
      const image = makeImage({ layerBytes: 4096 });
      registry = await startFlotilla(
        ['serve', 'registry'],
        envFor('registry', { FLOTILLA_FAULT_POINT: `registry.manifest.${point}` }),
        ports,
      );
      const pushed = await pushImage(registryUrl(), repository, '1', {
        image,
        auth: { username: 'admin', password: secrets.admin },
      }).then(
        () => 'answered',
        () => 'no answer',
      );
      expect(
        pushed,
        'the registry answered the manifest put: the fault point was not reached',
      ).toBe('no answer');
      await waitFor(
        'the registry to die',
        async () => (registry?.child.signalCode === 'SIGKILL' ? true : undefined),
        30_000,
      );
      if (point !== 'journaled') {
        expect(
          await readdir(join(work, 'registry', 'registry', 'journal')),
          'the crash left the journal entry',
        ).toHaveLength(1);
      }

      registry = await startFlotilla(['serve', 'registry'], envFor('registry'), ports);
      const digest = image.top.digest;
      const manifest = await fetch(`${registryUrl()}/v2/${repository}/manifests/1`, {
        method: 'HEAD',
        headers: { accept: image.top.mediaType },
      });
      if (point === 'journaled') {
        // the change never happened: no tag, and nothing to announce
        expect(manifest.status).toBe(404);
        expect(await readdir(join(work, 'registry', 'registry', 'journal'))).toEqual([]);
      } else {
        expect(manifest.status).toBe(200);
        expect(manifest.headers.get('docker-content-digest')).toBe(digest);
        await waitFor(
          `${repository}:1 in candidate`,
          async () => {
            const repo = await content.repository(repository).catch(() => undefined);
            return repo?.channels.find((c) => c.name === 'candidate')?.tags['1'] === digest
              ? true
              : undefined;
          },
          90_000,
        );
        expect(await readdir(join(work, 'registry', 'registry', 'journal'))).toEqual([]);
      }
      await registry.stop();
      registry = undefined;
    }, 240_000);
  }
});

describe('all-in-one killed between a manifest put and its event', () => {
  let work: string;
  let ports: ServicePorts;
  let all: FlotillaProcess | undefined;
  const admin = randomBytes(12).toString('hex');
  const token = randomBytes(16).toString('hex');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-events-aio-'));
    ports = await freeServicePorts();
  });
  afterAll(async () => {
    await all?.kill('SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('after a restart the push reaches candidate', async () => {
    const env = (extra: Record<string, string> = {}) =>
      flotillaEnv({
        dataDir: work,
        ports,
        extra: { FLOTILLA_ADMIN_PASSWORD: admin, FLOTILLA_API_TOKEN: token, ...extra },
      });
    const image = makeImage({ layerBytes: 4096 });
    all = await startFlotilla(
      ['start'],
      env({ FLOTILLA_FAULT_POINT: 'registry.manifest.stored' }),
      ports,
    );
    const pushed = await pushImage(`http://127.0.0.1:${ports.registry}`, 'aio/events', '1', {
      image,
      auth: { username: 'admin', password: admin },
    }).then(
      () => 'answered',
      () => 'no answer',
    );
    expect(pushed, 'the registry answered the manifest put: the fault point was not reached').toBe(
      'no answer',
    );
    await waitFor(
      'flotilla to die',
      async () => (all?.child.signalCode === 'SIGKILL' ? true : undefined),
      30_000,
    );

    all = await startFlotilla(['start'], env(), ports);
    const content = new ContentClient({ url: `http://127.0.0.1:${ports.content}`, token });
    await waitFor(
      'aio/events:1 in candidate',
      async () => {
        const repo = await content.repository('aio/events').catch(() => undefined);
        return repo?.channels.find((c) => c.name === 'candidate')?.tags['1'] === image.top.digest
          ? true
          : undefined;
      },
      60_000,
    );
    expect(await readdir(join(work, 'registry', 'journal'))).toEqual([]);
    expect(await all.stop()).toBe(0);
    all = undefined;
  }, 240_000);
});

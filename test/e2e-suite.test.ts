/**
 * Suite mode: each service in its own process (`flotilla serve <service>`), events over the
 * machine's RabbitMQ (in a private vhost, so the broker's other users are untouched). Then the
 * hard parts: `kill -9` of content in the middle of a publish, and the broker dropping every
 * connection in the middle of the flow. Nothing may be lost and no partial publication served.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parsePublicationMarker, parseRepositoryMetadata } from '@flotilla/protocol';
import { ContentClient } from '@flotilla/content';
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
import { pushImage } from './support/images.js';

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
    throw new Error('suite-mode test needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl');
  console.log('suite-mode end-to-end test skipped: RabbitMQ (rabbitmqctl) is not available');
}

// The redirector after mirrors: it is ready once the mirrors service has written a snapshot.
const SERVICES = ['registry', 'content', 'crane', 'mirrors', 'redirector'] as const;
type Service = (typeof SERVICES)[number];

describe.skipIf(!brokerUp)(
  'suite mode over RabbitMQ: kill -9 during publish, broker drop mid-flow',
  () => {
    const vhost = `flotilla-e2e-${randomBytes(4).toString('hex')}`;
    const secrets = {
      admin: randomBytes(12).toString('hex'),
      token: randomBytes(16).toString('hex'),
      webhook: randomBytes(16).toString('hex'),
    };
    let work: string;
    let ports: ServicePorts;
    const procs = new Map<Service, FlotillaProcess>();
    let content: ContentClient;

    const envFor = (service: Service) =>
      flotillaEnv({
        dataDir: join(work, service),
        ports,
        extra: {
          AMQP_URL: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`,
          FLOTILLA_PUBLISH_DIR: join(work, 'publish'),
          // Shared by mirrors (writes) and the redirector (reads), as a volume would be.
          FLOTILLA_SELECTION_SNAPSHOT: join(work, 'selection', 'snapshot.json'),
          FLOTILLA_CRANE_BLOB_BASE_URL: `http://127.0.0.1:${ports.redirector}/pub/containers`,
          FLOTILLA_ADMIN_PASSWORD: secrets.admin,
          FLOTILLA_API_TOKEN: secrets.token,
          FLOTILLA_WEBHOOK_SECRET: secrets.webhook,
          FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '3',
        },
      });
    const serve = async (service: Service) =>
      procs.set(service, await startFlotilla(['serve', service], envFor(service), ports));
    const registryUrl = () => `http://127.0.0.1:${ports.registry}`;
    const auth = () => ({ username: 'admin', password: secrets.admin });
    const marker = async () =>
      parsePublicationMarker(await readFile(join(work, 'publish', 'PUBLICATION'), 'utf8'));
    const craneManifest = (repo: string, ref: string) =>
      fetch(`http://127.0.0.1:${ports.crane}/v2/${repo}/manifests/${ref}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });

    const inChannel = async (repo: string, channel: string, tag: string, digest: string) => {
      const r = await content.repository(repo).catch(() => undefined);
      return r?.channels.find((c) => c.name === channel)?.tags[tag] === digest ? true : undefined;
    };
    const toStable = async (repo: string, digest: string) => {
      await waitFor(
        `${repo} synced into candidate`,
        () => inChannel(repo, 'candidate', '1', digest),
        90_000,
      );
      await content.promote({ repository: repo, tags: ['1'], from: 'candidate', to: 'testing' });
      await content.promote({ repository: repo, tags: ['1'], from: 'testing', to: 'stable' });
    };
    const finished = async (id: string) => {
      const t = await content.task(id);
      return ['completed', 'failed', 'canceled'].includes(t.state) ? t : undefined;
    };

    beforeAll(async () => {
      await rabbitmqctl('add_vhost', vhost);
      await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
      work = await mkdtemp(join(tmpdir(), 'flotilla-suite-'));
      ports = await freeServicePorts();
      for (const s of SERVICES) await serve(s);
      content = new ContentClient({
        url: `http://127.0.0.1:${ports.content}`,
        token: secrets.token,
      });
    }, 180_000);

    afterAll(async () => {
      const codes: Record<string, number | null> = {};
      for (const [name, p] of procs) codes[name] = await p.stop();
      await rabbitmqctl('delete_vhost', vhost).catch(() => undefined);
      if (work) await rm(work, { recursive: true, force: true });
      expect(codes, 'every service exits 0 on SIGTERM').toEqual(
        Object.fromEntries([...procs.keys()].map((k) => [k, 0])),
      );
    }, 120_000);

    it('completes the flow across a content crash and a broker outage', async () => {
      // Publication 1: twelve repositories pushed, synced by event, promoted and published.
      const first = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          pushImage(registryUrl(), `suite/app${i}`, '1', {
            layers: 2,
            layerBytes: 256 * 1024,
            auth: auth(),
          }),
        ),
      );
      for (const [i, img] of first.entries()) await toStable(`suite/app${i}`, img.digest);
      const publish1 = await content.publish({ channel: 'stable' });
      expect((await waitFor('publication 1', () => finished(publish1.id), 120_000)).state).toBe(
        'completed',
      );
      expect(await marker()).toBe(1);
      await waitFor('crane serves publication 1', async () =>
        (await craneManifest('suite/app0', '1')).status === 200 ? true : undefined,
      );

      // Publication 2 starts; content is killed (-9) once it has begun writing blobs.
      const late = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          pushImage(registryUrl(), `suite/late${i}`, '1', {
            layers: 3,
            layerBytes: 512 * 1024,
            auth: auth(),
          }),
        ),
      );
      for (const [i, img] of late.entries()) await toStable(`suite/late${i}`, img.digest);
      const countBlobs = async () => {
        let n = 0;
        for (const d of await readdir(join(work, 'publish', 'blobs', 'sha256')))
          n += (await readdir(join(work, 'publish', 'blobs', 'sha256', d))).length;
        return n;
      };
      const before = await countBlobs();
      const publish2 = await content.publish({ channel: 'stable' });
      for (let i = 0; i < 20_000 && (await countBlobs()) === before; i++)
        await new Promise((r) => setTimeout(r, 1));
      await procs.get('content')!.kill('SIGKILL');
      expect(
        await marker(),
        'the kill came after publication 2 completed; the test proves nothing',
      ).toBe(1);

      // The previous publication is intact and still served.
      const tree = join(work, 'publish');
      for (let i = 0; i < 12; i++) {
        const meta = parseRepositoryMetadata(
          JSON.parse(
            await readFile(
              join(tree, 'channels', 'stable', 'repositories', 'suite', `app${i}.json`),
              'utf8',
            ),
          ),
        );
        expect(meta.tags['1']).toBe(first[i]!.digest);
        expect((await craneManifest(`suite/app${i}`, '1')).status).toBe(200);
      }
      expect(
        (await craneManifest('suite/late0', '1')).status,
        'nothing of the unfinished publication is served',
      ).toBe(404);

      // Restarted, content picks the abandoned publish up again (its lease expired) and finishes it.
      await serve('content');
      const resumed = await waitFor(
        'the interrupted publish to finish',
        () => finished(publish2.id),
        120_000,
      );
      if (resumed.state !== 'completed') {
        const again = await content.publish({ channel: 'stable' });
        expect((await waitFor('the next publish', () => finished(again.id), 120_000)).state).toBe(
          'completed',
        );
      }
      expect(await marker()).toBe(2);
      for (const [i, img] of late.entries()) {
        await waitFor(`crane serves suite/late${i}`, async () => {
          const res = await craneManifest(`suite/late${i}`, '1');
          return res.status === 200 && res.headers.get('docker-content-digest') === img.digest
            ? true
            : undefined;
        });
      }

      // The broker drops every connection right after a push: the registry's event still reaches
      // content (outbox + reconnection), and the publish and crane's reload still happen.
      const final = await pushImage(registryUrl(), 'suite/final', '1', {
        layers: 1,
        layerBytes: 64 * 1024,
        auth: auth(),
      });
      await rabbitmqctl(
        'close_all_connections',
        '-p',
        vhost,
        'e2e: broker drops connections mid-flow',
      );
      await toStable('suite/final', final.digest);
      const publish3 = await waitFor(
        'a publish accepted after the outage',
        () => content.publish({ channel: 'stable' }),
        60_000,
      );
      expect((await waitFor('publication 3', () => finished(publish3.id), 120_000)).state).toBe(
        'completed',
      );
      expect(await marker()).toBe(3);
      await waitFor(
        'crane serves suite/final after the outage',
        async () => {
          const res = await craneManifest('suite/final', '1');
          return res.status === 200 && res.headers.get('docker-content-digest') === final.digest
            ? true
            : undefined;
        },
        60_000,
      );
      // The redirector process follows the snapshot: publication 3's manifest redirects to the
      // master (no mirror is registered).
      const hex = final.digest.slice('sha256:'.length);
      const location = await waitFor('the redirector to know publication 3', async () => {
        const res = await fetch(
          `http://127.0.0.1:${ports.redirector}/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex}`,
          { redirect: 'manual' },
        );
        return res.status === 302 ? res.headers.get('location') : undefined;
      });
      expect(location).toBe(
        `http://127.0.0.1:${ports.mirrors}/master/blobs/sha256/${hex.slice(0, 2)}/${hex}`,
      );
      for (const s of SERVICES) {
        const ready = await fetch(`http://127.0.0.1:${ports[s]}/readyz`);
        expect(ready.status, `${s} is ready again after the broker outage`).toBe(200);
      }
    }, 600_000);
  },
);

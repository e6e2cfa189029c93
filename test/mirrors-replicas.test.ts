/**
 * Three mirrors replicas over one store and one bus (in-process, sharing one embedded store
 * handle), each on a short crawl interval, against real mirrors on loopback: one replica at a
 * time crawls, and the crawls still happen.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalBus } from '@flotilla/bus';
import { listen, type RunningServer } from '@flotilla/kit';
import { createEmbeddedStore } from '@flotilla/store';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MirrorsClient } from '../services/mirrors/src/client.js';
import { loadMirrorsConfig } from '../services/mirrors/src/config.js';
import { createMirrorsService, type MirrorsService } from '../services/mirrors/src/service.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { writePublishedTree } from './support/tree.js';

const TOKEN = 'test-token-0123456789abcdef';
const REPLICAS = 3;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

describe('mirrors replicas', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()?.();
  });

  it('crawl on one replica at a time', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mirrors-replicas-'));
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    const master = path.join(work, 'master');
    await writePublishedTree(master, {
      publication: 1,
      repositories: [{ name: 'a/b', tags: { x: { kind: 'image' } } }],
    });
    const mirrors: StaticServer[] = [
      await startStaticServer(master),
      await startStaticServer(master),
    ];
    cleanups.push(() => Promise.all(mirrors.map((m) => m.stop())));

    const store = createEmbeddedStore({ dir: path.join(work, 'db'), compactIntervalMs: 0 });
    const bus = createLocalBus({ logger });
    cleanups.push(() => store.close());
    cleanups.push(() => bus.close());

    let running = 0;
    let most = 0;
    let rounds = 0;
    const services: MirrorsService[] = [];
    const servers: RunningServer[] = [];
    for (let i = 0; i < REPLICAS; i += 1) {
      const config = loadMirrorsConfig({
        FLOTILLA_DATA_DIR: path.join(work, `replica-${i}`),
        FLOTILLA_PUBLISH_DIR: master,
        FLOTILLA_API_TOKEN: TOKEN,
        FLOTILLA_MIRRORS_PORT: '0',
        FLOTILLA_MIRRORS_MASTER_URL: 'http://master.test/master',
        FLOTILLA_MIRRORS_CRAWL_INTERVAL: '20ms',
        FLOTILLA_MIRRORS_TREE_POLL_INTERVAL: '0',
        FLOTILLA_MIRRORS_CRAWL_TIMEOUT: '2s',
      });
      const service = await createMirrorsService({ config, logger, store, bus });
      // Count crawl rounds in flight across the replicas.
      const crawlAll = service.crawler.crawlAll.bind(service.crawler);
      service.crawler.crawlAll = async () => {
        running += 1;
        most = Math.max(most, running);
        try {
          return await crawlAll();
        } finally {
          running -= 1;
          rounds += 1;
        }
      };
      services.push(service);
      servers.push(
        await listen(service.handler, { host: '127.0.0.1', port: 0, logger, drainMs: 100 }),
      );
    }
    cleanups.push(async () => {
      for (const server of servers) await server.close();
      for (const service of services) await service.stop();
    });

    const client = new MirrorsClient({ url: (servers[0] as RunningServer).url, token: TOKEN });
    for (const [i, mirror] of mirrors.entries())
      await client.add({ name: `m${i}`, baseUrl: mirror.url, country: 'DE' });
    await Promise.all(services.map((s) => s.start()));

    for (let i = 0; i < 500 && rounds < 10; i += 1) await sleep(10);
    expect(rounds).toBeGreaterThanOrEqual(10);
    expect(most).toBe(1);
    const view = await client.get((await client.list())[0]!.id);
    expect(view.publication).toBe(1);
  }, 60_000);
});

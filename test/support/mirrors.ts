/**
 * Starts the mirrors service with the redirector in-process, as all-in-one runs them, for
 * tests: embedded store and local bus in a temporary directory, `listen(0)` on 127.0.0.1,
 * crawl interval and tree poll off (tests crawl on demand), a fixed API token, optional
 * injected GeoIP and seeded randomness.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalBus, type LocalBus } from '@flotilla/bus';
import { listen } from '@flotilla/kit';
import { createEmbeddedStore } from '@flotilla/store';
import type { Store } from '@flotilla/store';
import { pino } from 'pino';
import { request } from 'undici';
import { createMirrorsWithRedirector } from '../../services/cli/src/mirrors-with-redirector.js';
import { MirrorsClient } from '../../services/mirrors/src/client.js';
import { loadMirrorsConfig } from '../../services/mirrors/src/config.js';
import type { MirrorsService } from '../../services/mirrors/src/service.js';
import { loadRedirectorConfig } from '../../services/redirector/src/config.js';
import type { GeoLookup } from '../../services/redirector/src/geo.js';
import type { RedirectorService } from '../../services/redirector/src/service.js';
export { seeded } from './seeded.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

export interface HarnessOptions {
  publishDir: string;
  env?: Record<string, string>;
  geo?: GeoLookup;
  random?: () => number;
}

export interface Harness {
  url: string;
  service: MirrorsService;
  redirector: RedirectorService;
  store: Store;
  bus: LocalBus;
  client: MirrorsClient;
  stop(): Promise<void>;
}

export async function startMirrors(options: HarnessOptions): Promise<Harness> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mirrors-data-'));
  const env = {
    FLOTILLA_DATA_DIR: dataDir,
    FLOTILLA_PUBLISH_DIR: options.publishDir,
    FLOTILLA_API_TOKEN: TEST_TOKEN,
    FLOTILLA_MIRRORS_PORT: '0',
    FLOTILLA_MIRRORS_MASTER_URL: 'http://master.test/master',
    FLOTILLA_MIRRORS_CRAWL_INTERVAL: '0',
    FLOTILLA_MIRRORS_TREE_POLL_INTERVAL: '0',
    FLOTILLA_MIRRORS_CRAWL_TIMEOUT: '2s',
    FLOTILLA_MIRRORS_CRAWL_SAMPLE: '1000',
    ...options.env,
  };
  const config = loadMirrorsConfig(env);
  const redirectorConfig = loadRedirectorConfig(env);
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const store = createEmbeddedStore({ dir: path.join(dataDir, 'db'), compactIntervalMs: 0 });
  const bus = createLocalBus({ logger });
  const both = await createMirrorsWithRedirector({
    config,
    redirectorConfig,
    logger,
    store,
    bus,
    ...(options.geo ? { geo: options.geo } : {}),
    ...(options.random ? { random: options.random } : {}),
  });
  const server = await listen(both.handler, { host: '127.0.0.1', port: 0, logger, drainMs: 100 });
  await both.start();
  return {
    url: server.url,
    service: both.mirrors,
    redirector: both.redirector,
    store,
    bus,
    client: new MirrorsClient({ url: server.url, token: TEST_TOKEN }),
    async stop() {
      await server.close();
      await both.stop();
      await bus.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A GET (or other method) without following redirects; returns status, headers and text. */
export async function fetchRaw(
  url: string,
  init: {
    method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}> {
  const response = await request(url, {
    method: init.method ?? 'GET',
    headers: init.headers,
    body: init.body,
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text };
}

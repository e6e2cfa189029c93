/**
 * In-process registry for tests: a real service on listen(0) over a temporary directory,
 * with a local bus capturing events. `stop()` removes everything.
 */
import { createLocalBus } from '@flotilla/bus';
import { listen } from '@flotilla/kit';
import type { EventEnvelope } from '@flotilla/protocol';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { RegistryConfig } from '../src/config.js';
import { createRegistryService, type RegistryServiceInstance } from '../src/service.js';

export const ADMIN_PASSWORD = 'test-admin-password';
export const adminAuth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

export interface TestRegistry {
  url: string;
  dir: string;
  service: RegistryServiceInstance;
  events: EventEnvelope[];
  stop(): Promise<void>;
}

export async function startTestRegistry(
  overrides: Partial<RegistryConfig> = {},
): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
  const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const bus = createLocalBus({ logger });
  const events: EventEnvelope[] = [];
  const subscription = await bus.subscribe(
    `flotilla.test.${Date.now()}`,
    ['registry.#'],
    async (event) => {
      events.push(event);
    },
  );
  const config: RegistryConfig = {
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    storageDir: join(dir, 'registry'),
    deleteEnabled: true,
    uploadTtlMs: 24 * 3_600_000,
    adminPassword: ADMIN_PASSWORD,
    anonymousPull: true,
    authReloadIntervalMs: 0,
    ...overrides,
  };
  const service = await createRegistryService({ config, logger, bus });
  await service.start();
  const server = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  return {
    url: server.url,
    dir,
    service,
    events,
    async stop() {
      await server.close();
      await service.stop();
      await subscription.cancel();
      await bus.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

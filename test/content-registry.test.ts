/**
 * The happy path in one process: our registry and content on one local bus. A push to the
 * registry (Basic auth) emits registry.manifest.pushed; content syncs by itself (pulling with
 * the admin credentials), then promotion and publishing produce the tree.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus, type Bus } from '@flotilla/bus';
import { createLogger, listen, type RunningServer } from '@flotilla/kit';
import { parseRepositoryMetadata } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import {
  createRegistryService,
  loadRegistryConfig,
  type RegistryServiceInstance,
} from '@flotilla/registry';
import { startContent, type ContentHarness } from '../services/content/test/harness.js';
import { pushImage } from './support/images.js';

const PASSWORD = 'registry-admin-pw';

describe('registry → content, in process', () => {
  const logger = createLogger({
    name: 'content-registry-test',
    level: process.env.LOG_LEVEL ?? 'silent',
  });
  let dir: string;
  let bus: Bus;
  let store: Store;
  let registry: RegistryServiceInstance;
  let registryServer: RunningServer;
  let content: ContentHarness;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-registry-'));
    bus = createLocalBus({ logger });
    store = createEmbeddedStore({ dir: path.join(dir, 'db'), logger });
    registry = await createRegistryService({
      config: loadRegistryConfig({
        FLOTILLA_DATA_DIR: path.join(dir, 'registry'),
        FLOTILLA_ADMIN_PASSWORD: PASSWORD,
        FLOTILLA_REGISTRY_ANONYMOUS_PULL: 'false',
      }),
      logger,
      bus,
      store,
    });
    registryServer = await listen(registry.handler, { host: '127.0.0.1', port: 0, logger });
    await registry.start();
    content = await startContent(
      // Counts the image's own files; signing on promotion is covered by test/e2e-signing.test.ts.
      {
        FLOTILLA_REGISTRY_URL: registryServer.url,
        FLOTILLA_REGISTRY_PASSWORD: PASSWORD,
        FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
      },
      { dir: path.join(dir, 'content'), store, bus },
    );
  });
  afterAll(async () => {
    await content?.stop();
    await registryServer?.close();
    await registry?.stop();
    await bus?.close();
    await store?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('syncs on push, promotes and publishes', async () => {
    const pushed = await pushImage(registryServer.url, 'fedora/httpd', '39', {
      platforms: ['linux/amd64', 'linux/arm64'],
      layers: 2,
      auth: { username: 'admin', password: PASSWORD },
    });
    await registry.flushEvents();
    let tags: Record<string, string> | undefined;
    for (let i = 0; i < 200 && tags?.['39'] !== pushed.digest; i++) {
      const r = await content.api('GET', '/api/v1/repositories/fedora/httpd?channel=candidate');
      if (r.status === 200) tags = r.body.channels[0].tags;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(tags).toEqual({ '39': pushed.digest });

    for (const [from, to] of [
      ['candidate', 'testing'],
      ['testing', 'stable'],
    ]) {
      expect(
        (
          await content.api('POST', '/api/v1/promotions', {
            repository: 'fedora/httpd',
            tags: ['39'],
            from,
            to,
          })
        ).status,
      ).toBe(201);
    }
    const task = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', {})).body.task.id,
    );
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    const meta = parseRepositoryMetadata(
      await fs.readFile(
        path.join(
          content.service.parts.config.publishDir,
          'channels/stable/repositories/fedora/httpd.json',
        ),
      ),
    );
    expect(meta.tags).toEqual({ '39': pushed.digest });
    expect(Object.keys(meta.manifests).length).toBe(3);
    expect(Object.keys(meta.blobs).length).toBe(2 * 3);
  });
});

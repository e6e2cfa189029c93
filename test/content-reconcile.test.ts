/**
 * Lost events heal: our registry (in process, its own bus) takes pushes content never hears of;
 * content's reconcile, at start and then on its schedule, compares the registry's catalog and
 * tags with candidate and syncs what candidate lacks.
 */
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus, type Bus } from '@flotilla/bus';
import { createLogger, listen, type RunningServer } from '@flotilla/kit';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import {
  createRegistryService,
  loadRegistryConfig,
  type RegistryServiceInstance,
} from '@flotilla/registry';
import { startContent, type ContentHarness } from '../services/content/test/harness.js';
import { signatureTag } from '@flotilla/protocol';
import { pushImage } from './support/images.js';
import { pushSignature } from './support/sigstore.js';

const PASSWORD = 'registry-admin-pw';

describe('content reconciles with the registry', () => {
  const logger = createLogger({
    name: 'content-reconcile-test',
    level: process.env.LOG_LEVEL ?? 'silent',
  });
  let dir: string;
  let registryBus: Bus;
  let registryStore: Store;
  let registry: RegistryServiceInstance;
  let registryServer: RunningServer;
  let content: ContentHarness | undefined;
  const auth = { username: 'admin', password: PASSWORD };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-reconcile-'));
    // The registry's events go to a bus content does not listen on: every event is "lost".
    registryBus = createLocalBus({ logger });
    registryStore = createEmbeddedStore({ dir: path.join(dir, 'registry-db'), logger });
    registry = await createRegistryService({
      config: loadRegistryConfig({
        FLOTILLA_DATA_DIR: path.join(dir, 'registry'),
        FLOTILLA_ADMIN_PASSWORD: PASSWORD,
        FLOTILLA_REGISTRY_ANONYMOUS_PULL: 'false',
      }),
      logger,
      bus: registryBus,
      store: registryStore,
    });
    registryServer = await listen(registry.handler, { host: '127.0.0.1', port: 0, logger });
    await registry.start();
  });
  afterAll(async () => {
    await content?.stop();
    await registryServer?.close();
    await registry?.stop();
    await registryBus?.close();
    await registryStore?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const candidateTags = async (repository: string): Promise<Record<string, string> | undefined> => {
    const r = await content!.api('GET', `/api/v1/repositories/${repository}?channel=candidate`);
    return r.status === 200 ? r.body.channels[0].tags : undefined;
  };
  const until = async (what: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 300; i++) {
      if (await what()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('syncs at start what was pushed while content was not listening, then heals on schedule', async () => {
    const first = await pushImage(registryServer.url, 'fedora/httpd', '39', { layers: 2, auth });
    const other = await pushImage(registryServer.url, 'fedora/base', '40', { layers: 1, auth });

    content = await startContent(
      {
        FLOTILLA_REGISTRY_URL: registryServer.url,
        FLOTILLA_REGISTRY_PASSWORD: PASSWORD,
        FLOTILLA_CONTENT_RECONCILE_INTERVAL: '400ms',
      },
      { dir: path.join(dir, 'content') },
    );
    await until(
      async () =>
        (await candidateTags('fedora/httpd'))?.['39'] === first.digest &&
        (await candidateTags('fedora/base'))?.['40'] === other.digest,
    );
    expect(await candidateTags('fedora/httpd')).toEqual({ '39': first.digest });
    expect(await candidateTags('fedora/base')).toEqual({ '40': other.digest });
    // the first reconcile (at start; the list is newest first) found both behind
    const reconcile = (
      await content.api('GET', '/api/v1/tasks?kind=reconcile&state=completed')
    ).body.tasks.at(-1);
    expect(reconcile.result.behind).toEqual(['fedora/base', 'fedora/httpd']);

    // a new tag and a re-pushed tag (new digest), both events lost: the schedule heals them
    const added = await pushImage(registryServer.url, 'fedora/httpd', '40', { layers: 1, auth });
    const moved = await pushImage(registryServer.url, 'fedora/base', '40', { layers: 1, auth });
    await until(
      async () =>
        (await candidateTags('fedora/httpd'))?.['40'] === added.digest &&
        (await candidateTags('fedora/base'))?.['40'] === moved.digest,
    );
    expect(await candidateTags('fedora/httpd')).toEqual({ '39': first.digest, '40': added.digest });
    expect(await candidateTags('fedora/base')).toEqual({ '40': moved.digest });

    // a new signature of a tagged digest is brought over; one of a digest no tag reaches is not
    // (a sync brings only the signatures of what it syncs), and leaves the repository level
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signed = { privateKey, identity: 'registry.example/fedora/base', auth };
    await pushSignature(registryServer.url, 'fedora/base', other.digest, signed);
    await pushSignature(registryServer.url, 'fedora/base', moved.digest, signed);
    await until(
      async () => (await candidateTags('fedora/base'))?.[signatureTag(moved.digest)] !== undefined,
    );
    expect(Object.keys((await candidateTags('fedora/base')) ?? {}).sort()).toEqual(
      ['40', signatureTag(moved.digest)].sort(),
    );

    // once level, a reconcile queues nothing
    const { task } = await content.service.parts.tasks.submitReconcile();
    const done = await content.waitTask(task._id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.result).toMatchObject({ repositories: 2, behind: [], tasks: [] });
  });
});

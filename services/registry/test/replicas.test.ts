/**
 * Registry replicas over one storage directory: three services on listen(0) share the storage,
 * one store handle (standing in for MongoDB: the outbox and the leases) and one bus, as replicas
 * behind a load balancer would. Pushes are spread across replicas (an upload started on one is
 * continued and finished on others), tags race, and afterwards the storage is consistent, every
 * replica answers alike, and each manifest put that answered 201 is announced exactly once.
 */
import { createLocalBus, type LocalBus, type Subscription } from '@flotilla/bus';
import { listen, type RunningServer } from '@flotilla/kit';
import type { EventEnvelope } from '@flotilla/protocol';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryConfig } from '../src/config.js';
import { runFsck } from '../src/ops/fsck.js';
import { createRegistryService, type RegistryServiceInstance } from '../src/service.js';
import { ADMIN_PASSWORD } from './harness.js';
import { content, imageManifest, makeApi, OCI_MANIFEST, type Content } from './http.js';

const REPLICAS = 3;
const IMAGES = 12;
const RACERS = 6;
const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface Replica {
  service: RegistryServiceInstance;
  server: RunningServer;
  api: ReturnType<typeof makeApi>;
}

let dir: string;
let storageDir: string;
let store: Store;
let bus: LocalBus;
let subscription: Subscription;
const events: EventEnvelope[] = [];
const replicas: Replica[] = [];

function config(): RegistryConfig {
  return {
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    storageDir,
    deleteEnabled: true,
    uploadTtlMs: 24 * 3_600_000,
    adminPassword: ADMIN_PASSWORD,
    anonymousPull: true,
    authReloadIntervalMs: 0,
  };
}

async function startReplica(): Promise<Replica> {
  const service = await createRegistryService({ config: config(), logger, bus, store });
  await service.start();
  const server = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  return { service, server, api: makeApi(() => server.url) };
}

function replica(i: number): Replica {
  return replicas[i % replicas.length] as Replica;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-replicas-'));
  storageDir = join(dir, 'registry');
  store = createEmbeddedStore({ dir: join(dir, 'db'), logger });
  bus = createLocalBus({ logger });
  subscription = await bus.subscribe(
    'flotilla.test.registry-replicas',
    ['registry.#'],
    async (event) => {
      events.push(event);
    },
  );
  for (let i = 0; i < REPLICAS; i++) replicas.push(await startReplica());
});

afterAll(async () => {
  for (const r of replicas) {
    await r.server.close();
    await r.service.stop();
  }
  await subscription?.cancel();
  await bus?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A monolithic upload of `blob` to replica `at`. */
async function uploadWhole(at: number, name: string, blob: Content): Promise<void> {
  const res = await replica(at).api('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
    body: blob.bytes,
  });
  expect(res.status).toBe(201);
}

/** A chunked upload started on replica `at`, its chunks sent to the next replicas, finished on the one after. */
async function uploadAcrossReplicas(at: number, name: string, blob: Content): Promise<void> {
  const started = await replica(at).api('POST', `/v2/${name}/blobs/uploads/`);
  expect(started.status).toBe(202);
  let location = new URL(started.headers.get('location') as string, 'http://x').pathname;
  const half = Math.floor(blob.size / 2);
  const chunks = [blob.bytes.subarray(0, half), blob.bytes.subarray(half)];
  let offset = 0;
  for (const [k, chunk] of chunks.entries()) {
    const res = await replica(at + 1 + k).api('PATCH', location, {
      body: chunk,
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${offset}-${offset + chunk.length - 1}`,
      },
    });
    expect(res.status).toBe(202);
    offset += chunk.length;
    location = new URL(res.headers.get('location') as string, 'http://x').pathname;
  }
  const done = await replica(at + 3).api('PUT', `${location}?digest=${blob.digest}`);
  expect(done.status).toBe(201);
  expect(done.headers.get('docker-content-digest')).toBe(blob.digest);
}

interface Put {
  name: string;
  tag: string;
  digest: string;
}

async function putManifest(at: number, name: string, tag: string, manifest: Content): Promise<Put> {
  const res = await replica(at).api('PUT', `/v2/${name}/manifests/${tag}`, {
    body: manifest.bytes,
    headers: { 'content-type': OCI_MANIFEST },
  });
  expect(res.status).toBe(201);
  return { name, tag, digest: manifest.digest };
}

async function resolveEverywhere(name: string, tag: string): Promise<Array<string | null>> {
  return Promise.all(
    replicas.map(async (r) => {
      const res = await r.api('GET', `/v2/${name}/manifests/${tag}`, {
        headers: { accept: OCI_MANIFEST },
      });
      return res.status === 200 ? res.headers.get('docker-content-digest') : `status ${res.status}`;
    }),
  );
}

/** Dispatches on every replica (only the lease holder sends) until `count` events arrived; bounded. */
async function eventsArrived(count: number): Promise<void> {
  for (let round = 0; round < 100 && pushedEvents().length < count; round++) {
    for (const r of replicas) await r.service.flushEvents();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function pushedEvents(): EventEnvelope[] {
  return events.filter((e) => e.type === 'registry.manifest.pushed');
}

describe('registry replicas over one storage directory', () => {
  const puts: Put[] = [];

  it('pushes spread across replicas, with racing tags, leave one consistent registry and one event per put', async () => {
    const base = content(randomBytes(48 * 1024)); // one layer every image shares, uploaded by all at once
    await Promise.all(
      Array.from({ length: IMAGES }, async (_, i) => {
        const name = i % 2 === 0 ? 'replicas/shared' : `replicas/app-${i % 4}`;
        const layer = content(randomBytes(32 * 1024 + i));
        const cfg = content(JSON.stringify({ os: 'linux', architecture: 'amd64', image: i }));
        await Promise.all([
          uploadAcrossReplicas(i, name, base),
          uploadAcrossReplicas(i + 1, name, layer),
          uploadWhole(i + 2, name, cfg),
        ]);
        puts.push(await putManifest(i + 2, name, `v${i}`, imageManifest(cfg, [layer, base])));
      }),
    );

    // the same tag, put with different manifests on every replica at once
    const racers = await Promise.all(
      Array.from({ length: RACERS }, async (_, i) => {
        const cfg = content(JSON.stringify({ os: 'linux', architecture: 'amd64', racer: i }));
        await uploadWhole(i, 'replicas/shared', cfg);
        return imageManifest(cfg, [base]);
      }),
    );
    puts.push(
      ...(await Promise.all(racers.map((m, i) => putManifest(i, 'replicas/shared', 'race', m)))),
    );

    const report = await runFsck({ storageDir, logger });
    expect(report.danglingLinks).toEqual([]);
    expect(report.corrupt).toEqual([]);
    expect(report.temporaryFiles).toEqual([]);
    expect(report.uploadSessions).toBe(0);
    expect(report.clean).toBe(true);

    for (const put of puts.filter((p) => p.tag !== 'race')) {
      expect(await resolveEverywhere(put.name, put.tag)).toEqual(Array(REPLICAS).fill(put.digest));
    }
    const race = await resolveEverywhere('replicas/shared', 'race');
    expect(new Set(race).size).toBe(1);
    expect(racers.map((m) => m.digest)).toContain(race[0]);

    await eventsArrived(puts.length);
    const pushed = pushedEvents();
    const ids = pushed.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length); // no event published twice
    const announced = pushed.map((e) => {
      const data = e.data as { repository: string; tag?: string; digest: string };
      return `${data.repository}:${data.tag}@${data.digest}`;
    });
    expect(announced.sort()).toEqual(puts.map((p) => `${p.name}:${p.tag}@${p.digest}`).sort());
    for (const r of replicas) await r.service.flushEvents();
    expect(await store.collection('registry_outbox').countDocuments({ state: 'pending' })).toBe(0);
    expect(await store.collection('registry_outbox').countDocuments({ state: 'sent' })).toBe(
      events.length,
    );
    expect(await readdir(join(storageDir, 'journal')).catch(() => [])).toEqual([]);
  });

  it('a tag moved on one replica resolves to its new digest on every replica at once', async () => {
    expect(new Set(await resolveEverywhere('replicas/shared', 'v0')).size).toBe(1); // read everywhere first
    const cfg = content(JSON.stringify({ os: 'linux', architecture: 'amd64', moved: true }));
    await uploadWhole(0, 'replicas/shared', cfg);
    const moved = await putManifest(0, 'replicas/shared', 'v0', imageManifest(cfg, []));
    expect(await resolveEverywhere('replicas/shared', 'v0')).toEqual(
      Array(REPLICAS).fill(moved.digest),
    );
    const deleted = await replica(1).api('DELETE', `/v2/replicas/shared/manifests/${moved.digest}`);
    expect(deleted.status).toBe(202);
    expect(await resolveEverywhere('replicas/shared', 'v0')).toEqual(
      Array(REPLICAS).fill('status 404'),
    );
  });

  it("a starting replica leaves another's fresh journal entry and write in progress alone, and settles old ones", async () => {
    const name = 'replicas/shared';
    const [runningEvent, crashedEvent] = [randomUUID(), randomUUID()];
    const cfg = content(JSON.stringify({ os: 'linux', architecture: 'amd64', journal: true }));
    await uploadWhole(0, name, cfg);
    const visible = await putManifest(0, name, 'journaled', imageManifest(cfg, []));
    const journalDir = join(storageDir, 'journal');
    await mkdir(journalDir, { recursive: true });
    // another replica between its journal write and its change: the manifest is not visible yet
    const running = {
      kind: 'pushed',
      id: 'running',
      repository: name,
      digest: `sha256:${'5'.repeat(64)}`,
      tags: ['soon'],
      eventIds: [runningEvent],
    };
    await writeFile(join(journalDir, 'running.json'), JSON.stringify(running));
    // a replica that crashed long ago after its change and before its enqueue
    const crashed = {
      kind: 'pushed',
      id: 'crashed',
      repository: name,
      digest: visible.digest,
      tags: ['journaled'],
      eventIds: [crashedEvent],
    };
    await writeFile(join(journalDir, 'crashed.json'), JSON.stringify(crashed));
    const longAgo = new Date(Date.now() - 3_600_000);
    await utimes(join(journalDir, 'crashed.json'), longAgo, longAgo);
    // a manifest write in progress elsewhere, and one a crash left long ago
    const tagDir = join(
      storageDir,
      'repositories',
      name,
      '_manifests',
      'tags',
      'journaled',
      'current',
    );
    await writeFile(join(tagDir, 'link.tmp-inprogress'), 'x');
    await writeFile(join(tagDir, 'link.tmp-leftover'), 'x');
    await utimes(join(tagDir, 'link.tmp-leftover'), longAgo, longAgo);

    replicas.push(await startReplica());

    expect(await readdir(journalDir)).toEqual(['running.json']);
    expect((await readdir(tagDir)).sort()).toEqual(['link', 'link.tmp-inprogress']);
    await eventsArrived(puts.length + 3);
    expect(pushedEvents().filter((e) => e.id === crashedEvent)).toHaveLength(1);
    expect(pushedEvents().filter((e) => e.id === runningEvent)).toHaveLength(0);
    await rm(join(journalDir, 'running.json'));
    await rm(join(tagDir, 'link.tmp-inprogress'));
  });
});

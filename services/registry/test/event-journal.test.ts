/**
 * The event journal settles what a crash left from what the storage shows: a visible change
 * gets its event (with the id fixed before the change), a change that never happened gets none.
 * (The kill -9 test across processes is test/registry-events-crash.test.ts.)
 */
import type { EventEnvelope } from '@flotilla/protocol';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/domain/registry.js';
import { createManifestJournal } from '../src/events/manifest-journal.js';
import { withManifestEvents } from '../src/events/notifying-manifests.js';
import { createFilesystemDriver } from '../src/storage/driver.js';
import { startTestRegistry, type TestRegistry } from './harness.js';
import { content, imageManifest, makeApi, OCI_MANIFEST } from './http.js';

let reg: TestRegistry;
const api = makeApi(() => reg.url);
const NAME = 'journal/app';

beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

async function pushed(tag: string): Promise<string> {
  const config = content(JSON.stringify({ os: 'linux', architecture: 'amd64', tag }));
  expect(
    (
      await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${config.digest}`, {
        body: config.bytes,
      })
    ).status,
  ).toBe(201);
  const manifest = imageManifest(config, []);
  expect(
    (
      await api('PUT', `/v2/${NAME}/manifests/${tag}`, {
        body: manifest.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      })
    ).status,
  ).toBe(201);
  return manifest.digest;
}

describe('event journal', () => {
  it('a manifest put leaves no journal entry behind once its events are enqueued', async () => {
    await pushed('clean');
    expect(await readdir(join(reg.dir, 'registry', 'journal'))).toEqual([]);
  });

  it('replay announces visible changes with their fixed ids and drops the ones that never happened', async () => {
    const storage = join(reg.dir, 'registry');
    const journal = createManifestJournal({
      driver: createFilesystemDriver(storage),
      logger: pino({ level: 'silent' }),
    });
    const digest = await pushed('seen');
    const ghost = `sha256:${'7'.repeat(64)}`;
    await journal.write({
      kind: 'pushed',
      id: 'a',
      repository: NAME,
      digest,
      tags: ['seen', 'never'],
      eventIds: ['e-seen', 'e-never'],
    });
    await journal.write({
      kind: 'pushed',
      id: 'b',
      repository: NAME,
      digest: ghost,
      tags: ['ghost'],
      eventIds: ['e-ghost'],
    });
    expect((await api('DELETE', `/v2/${NAME}/manifests/seen`)).status).toBe(202);
    await journal.write({
      kind: 'tag-deleted',
      id: 'c',
      repository: NAME,
      digest,
      tag: 'seen',
      eventId: 'e-untag',
    });
    await journal.write({ kind: 'deleted', id: 'd', repository: NAME, digest, eventId: 'e-kept' });

    // a second journal object: as after a restart, nothing is in flight
    const afterRestart = createManifestJournal({
      driver: createFilesystemDriver(storage),
      logger: pino({ level: 'silent' }),
    });
    const sent: EventEnvelope[] = [];
    const count = await afterRestart.replay(
      (name) => reg.service.registry.repository(name).manifests,
      async (event) => {
        sent.push(event);
      },
    );
    // the tag was deleted since: only the untag is announced for it, the revision still exists
    expect(sent.map((e) => [e.id, e.type, (e.data as { tag?: string }).tag])).toEqual([
      ['e-untag', 'registry.manifest.deleted', 'seen'],
    ]);
    expect(count).toBe(1);
    expect(await readdir(join(storage, 'journal'))).toEqual([]);

    // and a push that is visible is announced with the id chosen before the change
    const again = await pushed('again');
    await afterRestart.write({
      kind: 'pushed',
      id: 'e',
      repository: NAME,
      digest: again,
      tags: ['again'],
      eventIds: ['e-again'],
    });
    const third = createManifestJournal({
      driver: createFilesystemDriver(storage),
      logger: pino({ level: 'silent' }),
    });
    const later: EventEnvelope[] = [];
    await third.replay(
      (name) => reg.service.registry.repository(name).manifests,
      async (event) => {
        later.push(event);
      },
    );
    expect(later).toMatchObject([
      {
        id: 'e-again',
        type: 'registry.manifest.pushed',
        data: { repository: NAME, digest: again, tag: 'again', mediaType: OCI_MANIFEST },
      },
    ]);
  });

  it('entries written in this process are left alone (their put is still running)', async () => {
    const storage = join(reg.dir, 'registry');
    const journal = createManifestJournal({
      driver: createFilesystemDriver(storage),
      logger: pino({ level: 'silent' }),
    });
    await journal.write({
      kind: 'pushed',
      id: 'running',
      repository: NAME,
      digest: `sha256:${'8'.repeat(64)}`,
      tags: [],
      eventIds: ['x'],
    });
    expect(
      await journal.replay(
        (name) => reg.service.registry.repository(name).manifests,
        async () => undefined,
      ),
    ).toBe(0);
    expect(await readdir(join(storage, 'journal'))).toEqual(['running.json']);
    await journal.remove('running');
  });

  it('a put whose events cannot be enqueued still succeeds; the journal keeps them for the next replay', async () => {
    const storage = join(reg.dir, 'registry');
    const driver = createFilesystemDriver(storage);
    const logger = pino({ level: 'silent' });
    const journal = createManifestJournal({ driver, logger });
    let stuck = 0;
    const refusing = {
      enqueue: async (): Promise<void> => {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
          code: 'ENOSPC',
        });
      },
    };
    const registry = createRegistry({
      driver,
      logger,
      uploadTtlMs: 3_600_000,
      decorateManifests: [withManifestEvents(refusing, journal, logger, () => stuck++)],
    });
    const config = content(JSON.stringify({ os: 'linux', architecture: 'amd64', stuck: true }));
    expect(
      (
        await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${config.digest}`, {
          body: config.bytes,
        })
      ).status,
    ).toBe(201);
    const manifest = imageManifest(config, []);
    const result = await registry
      .repository(NAME)
      .manifests.put(manifest.bytes, OCI_MANIFEST, { tag: 'stuck' });
    expect(result.tags).toEqual(['stuck']);
    expect(stuck).toBe(1);
    expect(await readdir(join(storage, 'journal'))).toHaveLength(1);

    // the same process replays it once the outbox takes events again
    const sent: EventEnvelope[] = [];
    expect(
      await journal.replay(
        (name) => registry.repository(name).manifests,
        async (event) => {
          sent.push(event);
        },
      ),
    ).toBe(1);
    expect(sent).toMatchObject([
      {
        type: 'registry.manifest.pushed',
        data: { repository: NAME, digest: manifest.digest, tag: 'stuck' },
      },
    ]);
    expect(await readdir(join(storage, 'journal'))).toEqual([]);
  });
});

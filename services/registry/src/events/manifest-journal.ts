import { createEvent, parseDigest, type EventEnvelope } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ManifestService } from '../domain/manifests.js';
import { PathNotFoundError, type StorageDriver } from '../storage/driver.js';
import { StoragePaths, TEMP_MARKER } from '../storage/paths.js';

/**
 * The event journal: closes the window between a manifest change and its event.
 *
 * Before a manifest put (or delete) can become visible, the events it will announce are
 * written, fsynced, to `journal/<id>.json`, with their ids fixed in advance. Only then does the
 * change happen; then the events go into the outbox and the entry is removed. A crash anywhere
 * in between leaves the entry, and `replay` (at start, and now and then) settles it from what
 * the storage shows: each announced change that is visible has its event enqueued (the fixed
 * ids make a second enqueue a no-op), a change that never became visible is dropped. So a
 * visible change always gets its event, and no event announces a change that did not happen.
 */

export const EVENT_SOURCE = 'registry';

export type JournalEntry =
  | {
      kind: 'pushed';
      id: string;
      repository: string;
      digest: string;
      tags: string[];
      eventIds: string[];
    }
  | { kind: 'deleted'; id: string; repository: string; digest: string; eventId: string }
  | {
      kind: 'tag-deleted';
      id: string;
      repository: string;
      digest: string;
      tag: string;
      eventId: string;
    };

export interface ManifestJournal {
  /** Writes the entry durably (fsync + rename) and marks it in flight in this process. */
  write(entry: JournalEntry): Promise<void>;
  /** Forgets a settled entry. */
  remove(id: string): Promise<void>;
  /** Leaves an unsettled entry to `replay` (its change is over, its events still to be enqueued). */
  release(id: string): void;
  /** The events an entry announces that the storage shows happened (in order). */
  settle(entry: JournalEntry, manifests: ManifestService): Promise<EventEnvelope[]>;
  /**
   * Settles every entry not in flight here: enqueue what happened, drop the rest. Returns events
   * enqueued. `minAgeMs`: only entries (and interrupted writes) at least this old, so replicas
   * sharing the storage never settle an entry whose put another replica is still making.
   */
  replay(
    manifestsOf: (repository: string) => ManifestService,
    enqueue: (event: EventEnvelope) => Promise<void>,
    options?: { minAgeMs?: number },
  ): Promise<number>;
}

function withId<T extends EventEnvelope>(event: T, id: string): T {
  return { ...event, id };
}

export function createManifestJournal(deps: {
  driver: StorageDriver;
  logger: Logger;
}): ManifestJournal {
  const { driver } = deps;
  const logger = deps.logger.child({ component: 'event-journal' });
  const inFlight = new Set<string>();

  async function read(id: string): Promise<JournalEntry | undefined> {
    try {
      return JSON.parse(
        (await driver.getContent(StoragePaths.journalEntry(id))).toString('utf8'),
      ) as JournalEntry;
    } catch (err) {
      if (err instanceof PathNotFoundError) return undefined;
      logger.warn({ err, entry: id }, 'failed to read journal entry; dropping it');
      return undefined;
    }
  }

  const journal: ManifestJournal = {
    async write(entry) {
      inFlight.add(entry.id);
      try {
        await driver.putContent(StoragePaths.journalEntry(entry.id), JSON.stringify(entry));
      } catch (err) {
        inFlight.delete(entry.id);
        throw err;
      }
    },

    async remove(id) {
      await driver.delete(StoragePaths.journalEntry(id));
      inFlight.delete(id);
    },

    release(id) {
      inFlight.delete(id);
    },

    async settle(entry, manifests) {
      const digest = parseDigest(entry.digest);
      if (entry.kind === 'pushed') {
        const stored = await manifests.get(digest);
        if (!stored) return [];
        const base = {
          repository: entry.repository,
          digest: entry.digest,
          mediaType: stored.mediaType,
          size: stored.bytes.byteLength,
        };
        if (entry.tags.length === 0)
          return [
            withId(
              createEvent('registry.manifest.pushed', EVENT_SOURCE, base),
              entry.eventIds[0] as string,
            ),
          ];
        const events: EventEnvelope[] = [];
        for (const [i, tag] of entry.tags.entries()) {
          if ((await manifests.resolveTag(tag)) !== entry.digest) continue; // never written, or since moved on
          events.push(
            withId(
              createEvent('registry.manifest.pushed', EVENT_SOURCE, { ...base, tag }),
              entry.eventIds[i] as string,
            ),
          );
        }
        return events;
      }
      if (entry.kind === 'deleted') {
        if (await manifests.get(digest)) return [];
        return [
          withId(
            createEvent('registry.manifest.deleted', EVENT_SOURCE, {
              repository: entry.repository,
              digest: entry.digest,
            }),
            entry.eventId,
          ),
        ];
      }
      if ((await manifests.resolveTag(entry.tag)) !== undefined) return [];
      return [
        withId(
          createEvent('registry.manifest.deleted', EVENT_SOURCE, {
            repository: entry.repository,
            digest: entry.digest,
            tag: entry.tag,
          }),
          entry.eventId,
        ),
      ];
    },

    async replay(manifestsOf, enqueue, options = {}) {
      const minAgeMs = options.minAgeMs ?? 0;
      /** Written at least `minAgeMs` ago (a file gone meanwhile was settled by someone else). */
      const oldEnough = async (name: string): Promise<boolean> => {
        if (minAgeMs <= 0) return true;
        try {
          const info = await driver.stat(`${StoragePaths.journalRoot}/${name}`);
          return Date.now() - info.modTime.getTime() >= minAgeMs;
        } catch (err) {
          if (err instanceof PathNotFoundError) return false;
          throw err;
        }
      };
      let names: string[];
      try {
        names = await driver.list(StoragePaths.journalRoot);
      } catch (err) {
        if (err instanceof PathNotFoundError) return 0;
        throw err;
      }
      let enqueued = 0;
      for (const name of names) {
        if (!(await oldEnough(name))) continue;
        if (name.includes(TEMP_MARKER)) {
          // a write the crash interrupted: its change never started
          await driver.delete(`${StoragePaths.journalRoot}/${name}`);
          continue;
        }
        if (!name.endsWith('.json')) continue;
        const id = name.slice(0, -'.json'.length);
        if (inFlight.has(id)) continue;
        const entry = await read(id);
        if (entry) {
          const events = await journal.settle(entry, manifestsOf(entry.repository));
          for (const event of events) await enqueue(event);
          enqueued += events.length;
          if (events.length > 0)
            logger.info(
              { repository: entry.repository, digest: entry.digest, events: events.length },
              'recovered events of an interrupted manifest change',
            );
        }
        await driver.delete(`${StoragePaths.journalRoot}/${name}`);
      }
      return enqueued;
    },
  };
  return journal;
}

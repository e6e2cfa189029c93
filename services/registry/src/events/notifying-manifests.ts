import { faultPoint } from '@flotilla/kit';
import { createEvent, digestOf, parseDigest, type EventEnvelope } from '@flotilla/protocol';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ManifestService } from '../domain/manifests.js';
import { EVENT_SOURCE, type JournalEntry, type ManifestJournal } from './manifest-journal.js';

export { EVENT_SOURCE };

/** Where events go: the outbox's `enqueue` (store-backed, survives broker outages). */
export interface EventSink {
  enqueue(event: EventEnvelope): Promise<void>;
}

/**
 * Decorator (CONVENTIONS 7, Distribution's `notifications.Listen`): every manifest push,
 * manifest delete and tag delete, wherever it comes from, announces itself. The events are
 * journaled before the change can become visible and enqueued in the outbox after it, before
 * the caller gets its answer (`./manifest-journal.ts`), so no crash leaves a visible change
 * without its event. Fault points (`FLOTILLA_FAULT_POINT`) sit between the writes:
 * `registry.manifest.journaled`, `registry.manifest.stored`, `registry.manifest.enqueued`.
 */
export function withManifestEvents(
  sink: EventSink,
  journal: ManifestJournal,
  logger: Logger,
  /** Called when events could not be enqueued (the journal keeps them; replay them soon). */
  onStuck: () => void = () => undefined,
): (service: ManifestService) => ManifestService {
  const log = logger.child({ component: 'events' });

  /** Journal, change, enqueue, forget; a failed change is settled from what became visible. */
  async function journaled<R>(
    service: ManifestService,
    entry: JournalEntry,
    change: () => Promise<R>,
    events: (result: R) => EventEnvelope[],
  ): Promise<R> {
    await journal.write(entry);
    faultPoint('registry.manifest.journaled');
    let result: R;
    try {
      result = await change();
    } catch (err) {
      // the change failed, perhaps half-way: announce exactly what became visible
      await settle(service, entry).catch((settleErr: unknown) => {
        log.warn(
          { err: settleErr, entry: entry.id },
          'failed to settle journal entry; it is retried',
        );
        journal.release(entry.id);
        onStuck();
      });
      throw err;
    }
    faultPoint('registry.manifest.stored');
    try {
      for (const event of events(result)) await sink.enqueue(event);
      faultPoint('registry.manifest.enqueued');
      await journal.remove(entry.id);
    } catch (err) {
      // the change is done and the journal still holds its events: answer success, retry soon
      log.warn(
        { err, entry: entry.id },
        'failed to enqueue manifest events; the journal keeps them',
      );
      journal.release(entry.id);
      onStuck();
    }
    return result;
  }

  async function settle(service: ManifestService, entry: JournalEntry): Promise<void> {
    for (const event of await journal.settle(entry, service)) await sink.enqueue(event);
    await journal.remove(entry.id);
  }

  return (service) => ({
    ...service,
    repository: service.repository,

    async put(bytes, contentType, reference, extraTags = []) {
      const tags = [
        ...new Set([...(reference.tag === undefined ? [] : [reference.tag]), ...extraTags]),
      ];
      let digest: string;
      try {
        digest =
          reference.digest === undefined ? digestOf(bytes) : parseDigest(reference.digest).digest;
      } catch {
        // a malformed digest: the store refuses the put before writing anything
        return service.put(bytes, contentType, reference, extraTags);
      }
      const entry: JournalEntry = {
        kind: 'pushed',
        id: randomUUID(),
        repository: service.repository,
        digest,
        tags,
        eventIds: (tags.length === 0 ? [''] : tags).map(() => randomUUID()),
      };
      const result = await journaled(
        service,
        entry,
        () => service.put(bytes, contentType, reference, extraTags),
        (r) => {
          const base = {
            repository: r.repository,
            digest: r.digest,
            mediaType: r.mediaType,
            size: r.size,
          };
          if (r.tags.length === 0)
            return [
              {
                ...createEvent('registry.manifest.pushed', EVENT_SOURCE, base),
                id: entry.eventIds[0] as string,
              },
            ];
          return r.tags.map((tag) => ({
            ...createEvent('registry.manifest.pushed', EVENT_SOURCE, { ...base, tag }),
            id: entry.eventIds[tags.indexOf(tag)] ?? randomUUID(),
          }));
        },
      );
      log.debug(
        { repository: result.repository, digest: result.digest },
        'manifest pushed event enqueued',
      );
      return result;
    },

    async delete(digest) {
      // nothing to announce when there is nothing to delete (the store answers MANIFEST_UNKNOWN)
      if (!(await service.get(digest))) return service.delete(digest);
      const entry: JournalEntry = {
        kind: 'deleted',
        id: randomUUID(),
        repository: service.repository,
        digest: digest.digest,
        eventId: randomUUID(),
      };
      return journaled(
        service,
        entry,
        () => service.delete(digest),
        (r) => [
          {
            ...createEvent('registry.manifest.deleted', EVENT_SOURCE, {
              repository: r.repository,
              digest: r.digest,
            }),
            id: entry.eventId,
          },
        ],
      );
    },

    async deleteTag(tag) {
      const current = await service.resolveTag(tag);
      if (current === undefined) return service.deleteTag(tag);
      const entry: JournalEntry = {
        kind: 'tag-deleted',
        id: randomUUID(),
        repository: service.repository,
        digest: current,
        tag,
        eventId: randomUUID(),
      };
      return journaled(
        service,
        entry,
        () => service.deleteTag(tag),
        (r) => [
          {
            ...createEvent('registry.manifest.deleted', EVENT_SOURCE, {
              repository: r.repository,
              digest: r.digest,
              tag,
            }),
            id: entry.eventId,
          },
        ],
      );
    },
  });
}

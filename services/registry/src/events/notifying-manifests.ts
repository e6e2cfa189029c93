import { createEvent } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ManifestService } from '../domain/manifests.js';

/** Where events go: the outbox's `enqueue` (store-backed, survives broker outages). */
export interface EventSink {
  enqueue(event: ReturnType<typeof createEvent>): Promise<void>;
}

export const EVENT_SOURCE = 'registry';

/**
 * Decorator (CONVENTIONS 7, Distribution's `notifications.Listen`): every manifest push,
 * manifest delete and tag delete, wherever it comes from, enqueues its event — after the
 * wrapped store has made the change durable, before the caller gets its answer.
 */
export function withManifestEvents(sink: EventSink, logger: Logger): (service: ManifestService) => ManifestService {
  const log = logger.child({ component: 'events' });
  return (service) => ({
    ...service,
    repository: service.repository,
    async put(bytes, contentType, reference, extraTags) {
      const result = await service.put(bytes, contentType, reference, extraTags);
      const base = { repository: result.repository, digest: result.digest, mediaType: result.mediaType, size: result.size };
      const events = result.tags.length === 0 ? [createEvent('registry.manifest.pushed', EVENT_SOURCE, base)] : result.tags.map((tag) => createEvent('registry.manifest.pushed', EVENT_SOURCE, { ...base, tag }));
      for (const event of events) await sink.enqueue(event);
      log.debug({ repository: result.repository, digest: result.digest }, 'manifest pushed event enqueued');
      return result;
    },
    async delete(digest) {
      const result = await service.delete(digest);
      await sink.enqueue(
        createEvent('registry.manifest.deleted', EVENT_SOURCE, { repository: result.repository, digest: result.digest }),
      );
      return result;
    },
    async deleteTag(tag) {
      const result = await service.deleteTag(tag);
      await sink.enqueue(
        createEvent('registry.manifest.deleted', EVENT_SOURCE, { repository: result.repository, digest: result.digest, tag }),
      );
      return result;
    },
  });
}

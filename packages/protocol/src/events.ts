import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { isDigest } from './digest.js';
import { isValidRepositoryName, isValidTag } from './reference.js';

/**
 * Events on the `flotilla.events` topic exchange (routing key = type), in a
 * CloudEvents-shaped envelope: `{specversion: '1.0', id, type, source, time, data}`.
 */

export const EVENT_TYPES = [
  'registry.manifest.pushed',
  'registry.manifest.deleted',
  'content.synced',
  'content.promoted',
  'content.published',
  'mirrors.crawled',
  'content.task.queued',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

const repository = z.string().refine(isValidRepositoryName, { message: 'invalid repository name' });
const digest = z.string().refine(isDigest, { message: 'invalid digest' });
const tag = z.string().refine(isValidTag, { message: 'invalid tag' });
const channel = z.string().min(1);
const count = z.number().int().nonnegative();

export const manifestPushedDataSchema = z.object({
  repository,
  digest,
  mediaType: z.string().min(1),
  size: count,
  tag: tag.optional(),
});

export const manifestDeletedDataSchema = z.object({
  repository,
  digest,
  tag: tag.optional(),
});

export const contentSyncedDataSchema = z.object({
  repository,
  channel,
  version: count,
  /** Number of tags added (or moved) by the sync. */
  added: count,
  /** Number of tags removed by the sync. */
  removed: count,
});

export const contentPromotedDataSchema = z.object({
  repository,
  from: channel,
  to: channel,
  tags: z.array(tag),
  digest,
  version: count,
  actor: z.string().min(1),
  reason: z.string().optional(),
});

export const contentPublishedDataSchema = z.object({
  channel,
  publication: count,
  repositories: z.array(repository),
  /** How many blobs this publication added to the tree. */
  newBlobs: count,
});

export const mirrorsCrawledDataSchema = z.object({
  mirror: z.string().min(1),
  publication: count,
  upToDate: z.boolean(),
});

/** Work for content's task workers (queue `flotilla.content.tasks`); the task itself is in the store. */
export const contentTaskQueuedDataSchema = z.object({
  task: z.string().min(1).max(100),
  kind: z.string().min(1).max(50),
});

export const EVENT_DATA_SCHEMAS = {
  'registry.manifest.pushed': manifestPushedDataSchema,
  'registry.manifest.deleted': manifestDeletedDataSchema,
  'content.synced': contentSyncedDataSchema,
  'content.promoted': contentPromotedDataSchema,
  'content.published': contentPublishedDataSchema,
  'mirrors.crawled': mirrorsCrawledDataSchema,
  'content.task.queued': contentTaskQueuedDataSchema,
} as const satisfies Record<EventType, z.ZodType>;

export type ManifestPushedData = z.infer<typeof manifestPushedDataSchema>;
export type ManifestDeletedData = z.infer<typeof manifestDeletedDataSchema>;
export type ContentSyncedData = z.infer<typeof contentSyncedDataSchema>;
export type ContentPromotedData = z.infer<typeof contentPromotedDataSchema>;
export type ContentPublishedData = z.infer<typeof contentPublishedDataSchema>;
export type MirrorsCrawledData = z.infer<typeof mirrorsCrawledDataSchema>;
export type ContentTaskQueuedData = z.infer<typeof contentTaskQueuedDataSchema>;

export type EventDataByType = { [K in EventType]: z.infer<(typeof EVENT_DATA_SCHEMAS)[K]> };

/** The envelope alone; `data` is checked per type by parseEvent. */
export const eventEnvelopeSchema = z.object({
  specversion: z.literal('1.0'),
  id: z.uuid(),
  type: z.string().min(1),
  source: z.string().min(1),
  time: z.iso.datetime({ offset: true }),
  data: z.unknown(),
});

export interface EventEnvelope<T = unknown> {
  specversion: '1.0';
  id: string;
  type: string;
  source: string;
  time: string;
  data: T;
}

/** An envelope whose type is `K` and whose data is that type's data. */
export type TypedEvent<K extends EventType = EventType> = EventEnvelope<EventDataByType[K]> & {
  type: K;
};

/** The discriminated union parseEvent returns: narrow it with `switch (event.type)`. */
export type FlotillaEvent = { [K in EventType]: TypedEvent<K> }[EventType];

export type EventErrorCode = 'EVENT_INVALID' | 'EVENT_TYPE_UNKNOWN';

export class EventError extends Error {
  readonly code: EventErrorCode;
  readonly issues: { path: string; message: string }[];

  constructor(
    code: EventErrorCode,
    message: string,
    issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'EventError';
    this.code = code;
    this.issues = issues;
  }
}

function issuesOf(error: z.ZodError, prefix: string): { path: string; message: string }[] {
  return error.issues.slice(0, 10).map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter((p) => p !== '').join('.'),
    message: issue.message,
  }));
}

/**
 * A uuid (RFC 9562 version 8) that is a function of `key`: an event announced again after a
 * crash gets the id it had, so an outbox that still holds it takes it once.
 */
export function eventIdFor(key: string): string {
  const hex = createHash('sha256').update(key).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Builds an envelope with a fresh uuid and the current time; validates `data` for its type. */
export function createEvent<K extends EventType>(
  type: K,
  source: string,
  data: EventDataByType[K],
  now: Date = new Date(),
): TypedEvent<K> {
  const schema: z.ZodType = EVENT_DATA_SCHEMAS[type];
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new EventError(
      'EVENT_INVALID',
      `invalid data for event ${type}`,
      issuesOf(result.error, 'data'),
    );
  }
  return {
    specversion: '1.0',
    id: randomUUID(),
    type,
    source,
    time: now.toISOString(),
    data: result.data as EventDataByType[K],
  };
}

/**
 * Validates an envelope received from the bus and its data for its type. Throws EventError
 * (EVENT_TYPE_UNKNOWN for a type not in EVENT_TYPES, EVENT_INVALID otherwise).
 */
export function parseEvent(value: unknown): FlotillaEvent {
  const envelope = eventEnvelopeSchema.safeParse(value);
  if (!envelope.success) {
    throw new EventError('EVENT_INVALID', 'invalid event envelope', issuesOf(envelope.error, ''));
  }
  const { type } = envelope.data;
  if (!isEventType(type)) {
    throw new EventError('EVENT_TYPE_UNKNOWN', `unknown event type "${type.slice(0, 100)}"`);
  }
  const schema: z.ZodType = EVENT_DATA_SCHEMAS[type];
  const data = schema.safeParse(envelope.data.data);
  if (!data.success) {
    throw new EventError(
      'EVENT_INVALID',
      `invalid data for event ${type}`,
      issuesOf(data.error, 'data'),
    );
  }
  return { ...envelope.data, type, data: data.data } as FlotillaEvent;
}

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  EVENT_DATA_SCHEMAS,
  EVENT_TYPES,
  EventError,
  createEvent,
  eventEnvelopeSchema,
  isEventType,
  parseEvent,
  type EventDataByType,
  type EventType,
} from '../src/index.js';
import { D1, D2 } from './fixtures.js';

const SAMPLES: EventDataByType = {
  'registry.manifest.pushed': {
    repository: 'fedora/httpd',
    digest: D1,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    size: 1234,
    tag: '39',
  },
  'registry.manifest.deleted': { repository: 'fedora/httpd', digest: D1 },
  'content.synced': {
    repository: 'fedora/httpd',
    channel: 'candidate',
    version: 3,
    added: 2,
    removed: 0,
  },
  'content.promoted': {
    repository: 'fedora/httpd',
    from: 'candidate',
    to: 'testing',
    tags: ['39', 'latest'],
    digest: D2,
    version: 7,
    actor: 'releng',
    reason: 'FEDORA-2024-1',
  },
  'content.published': {
    channel: 'stable',
    publication: 42,
    repositories: ['fedora/httpd'],
    newBlobs: 12,
  },
  'mirrors.crawled': { mirror: 'mirror.example.org', publication: 42, upToDate: true },
  'content.task.queued': { task: 'task-1', kind: 'sync' },
};

function errorOf(fn: () => unknown): EventError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EventError) return err;
    throw err;
  }
  throw new Error('expected an EventError');
}

describe('events', () => {
  it('lists the six event types of the architecture, plus content.task.queued', () => {
    expect([...EVENT_TYPES]).toEqual([
      'registry.manifest.pushed',
      'registry.manifest.deleted',
      'content.synced',
      'content.promoted',
      'content.published',
      'mirrors.crawled',
      'content.task.queued',
    ]);
    expect(Object.keys(EVENT_DATA_SCHEMAS).sort()).toEqual([...EVENT_TYPES].sort());
    expect(isEventType('content.synced')).toBe(true);
    expect(isEventType('content.deleted')).toBe(false);
  });

  it.each(EVENT_TYPES.map((t) => [t]))('creates and parses %s', (type: EventType) => {
    const event = createEvent(type, 'test', SAMPLES[type]);
    expect(event.specversion).toBe('1.0');
    expect(event.type).toBe(type);
    expect(event.source).toBe('test');
    expect(event.id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(new Date(event.time).toISOString()).toBe(event.time);
    expect(eventEnvelopeSchema.safeParse(event).success).toBe(true);
    const parsed = parseEvent(JSON.parse(JSON.stringify(event)));
    expect(parsed).toEqual(event);
  });

  it('gives every event a fresh id and takes the time it is given', () => {
    const now = new Date('2024-05-01T12:00:00.000Z');
    const a = createEvent('content.published', 'content', SAMPLES['content.published'], now);
    const b = createEvent('content.published', 'content', SAMPLES['content.published'], now);
    expect(a.id).not.toBe(b.id);
    expect(a.time).toBe('2024-05-01T12:00:00.000Z');
  });

  it('narrows the parsed union by type', () => {
    const event = parseEvent(createEvent('mirrors.crawled', 'mirrors', SAMPLES['mirrors.crawled']));
    if (event.type !== 'mirrors.crawled') throw new Error('wrong type');
    expect(event.data.upToDate).toBe(true);
  });

  it('accepts optional fields being absent and times with offsets', () => {
    const { tag: _t, ...untagged } = SAMPLES['registry.manifest.pushed'];
    const event = {
      ...createEvent('registry.manifest.pushed', 'registry', untagged),
      time: '2024-05-01T14:00:00+02:00',
    };
    expect(parseEvent(event).data).toEqual(untagged);
  });

  it('refuses an unknown type with EVENT_TYPE_UNKNOWN', () => {
    const event = {
      ...createEvent('content.synced', 'content', SAMPLES['content.synced']),
      type: 'content.exploded',
    };
    expect(errorOf(() => parseEvent(event)).code).toBe('EVENT_TYPE_UNKNOWN');
  });

  it.each([
    ['not an object', 'hello'],
    ['null', null],
    ['a wrong specversion', { specversion: '0.3' }],
    ['a non-uuid id', { id: 'abc' }],
    ['a bad time', { time: 'yesterday' }],
    ['an empty source', { source: '' }],
    ['no data', { data: undefined }],
    ['an empty channel', { data: { ...SAMPLES['content.synced'], channel: '' } }],
    ['a negative version', { data: { ...SAMPLES['content.synced'], version: -1 } }],
    ['a bad repository name', { data: { ...SAMPLES['content.synced'], repository: 'A/../b' } }],
    ['added as a list', { data: { ...SAMPLES['content.synced'], added: ['39'] } }],
  ])('refuses %s with EVENT_INVALID', (_what, patch) => {
    const base = createEvent('content.synced', 'content', SAMPLES['content.synced']);
    const value = patch !== null && typeof patch === 'object' ? { ...base, ...patch } : patch;
    expect(errorOf(() => parseEvent(value)).code).toBe('EVENT_INVALID');
  });

  it('type-checks data by event type (npx tsc -p packages/protocol/tsconfig.test.json)', () => {
    const listed = { channel: 's', publication: 1, repositories: [], newBlobs: [] };
    // @ts-expect-error newBlobs is a count, not a list
    expect(() => createEvent('content.published', 'content', listed)).toThrow(EventError);
    // @ts-expect-error not an event type
    expect(() => createEvent('content.exploded', 'content', {})).toThrow();
  });

  it('createEvent refuses data that does not match its type', () => {
    const bad = {
      ...SAMPLES['content.published'],
      publication: 1.5,
    } as EventDataByType['content.published'];
    const err = errorOf(() => createEvent('content.published', 'content', bad));
    expect(err.code).toBe('EVENT_INVALID');
    expect(err.issues[0]?.path).toBe('data.publication');
  });
});

describe('eventIdFor', () => {
  it('is a uuid that depends on its key alone', async () => {
    const { eventIdFor } = await import('../src/events.js');
    const a = eventIdFor('content.promoted|p1|sha256:aa');
    expect(a).toBe(eventIdFor('content.promoted|p1|sha256:aa'));
    expect(a).not.toBe(eventIdFor('content.promoted|p1|sha256:ab'));
    expect(z.uuid().safeParse(a).success).toBe(true);
  });
});

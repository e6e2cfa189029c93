import { describe, expect, it } from 'vitest';
import { diffTags } from '../src/domain/channels.js';
import {
  parseTimestamp,
  rememberDelivery,
  signBody,
  verifySignedDelivery,
} from '../src/hooks/bodhi.js';
import { contentCollections } from '../src/collections.js';
import { createEmbeddedStore } from '@flotilla/store';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushedRepositories } from '../src/hooks/distribution.js';
import { nextLink, parseChallenge } from '../src/sync/registry-client.js';
import { createTagFilter, globToRegExp } from '../src/sync/tag-filter.js';
import { TaskQueue } from '../src/tasks/task-queue.js';
import pino from 'pino';

describe('registry client parsing', () => {
  it('parses Bearer and Basic challenges', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scope: 'repository:a/b:pull',
      },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({
      scheme: 'basic',
      params: { realm: 'Registry Realm' },
    });
    expect(parseChallenge(undefined)).toBeUndefined();
  });

  it('resolves the next Link against the request URL', () => {
    expect(
      nextLink('</v2/a/tags/list?n=2&last=b>; rel="next"', 'http://r.example/v2/a/tags/list?n=2'),
    ).toBe('http://r.example/v2/a/tags/list?n=2&last=b');
    expect(nextLink('<https://other/x>; rel="prev"', 'http://r.example/')).toBeUndefined();
    expect(nextLink(undefined, 'http://r.example/')).toBeUndefined();
  });
});

describe('tag globs', () => {
  it('matches * and ? and escapes the rest', () => {
    expect(globToRegExp('1.*').test('1.0')).toBe(true);
    expect(globToRegExp('1.*').test('100')).toBe(false);
    expect(globToRegExp('v?').test('v1')).toBe(true);
    const filter = createTagFilter(['*'], ['*-debug']);
    expect(filter('2.0')).toBe(true);
    expect(filter('2.0-debug')).toBe(false);
    expect(createTagFilter()('anything')).toBe(true);
  });
});

describe('version diffs', () => {
  it('reports added, removed and moved tags', () => {
    const d = diffTags(
      [
        { tag: 'a', digest: 'sha256:1' },
        { tag: 'b', digest: 'sha256:2' },
      ],
      [
        { tag: 'b', digest: 'sha256:3' },
        { tag: 'c', digest: 'sha256:4' },
      ],
    );
    expect(d).toEqual({
      added: [{ tag: 'c', digest: 'sha256:4' }],
      removed: [{ tag: 'a', digest: 'sha256:1' }],
      changed: [{ tag: 'b', from: 'sha256:2', to: 'sha256:3' }],
    });
  });
});

describe('webhook verification', () => {
  const body = Buffer.from('{"update":"x"}');
  const now = Date.UTC(2026, 10, 27, 12);
  it('accepts seconds, milliseconds and ISO timestamps', () => {
    expect(parseTimestamp('1700000000')).toBe(1_700_000_000_000);
    expect(parseTimestamp('1700000000123')).toBe(1_700_000_000_123);
    expect(parseTimestamp('2026-11-27T12:00:00Z')).toBe(now);
    expect(parseTimestamp('yesterday')).toBeUndefined();
  });
  it('refuses a replay however long after, since the timestamp is not signed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bodhi-replay-'));
    const store = createEmbeddedStore({ dir });
    try {
      const c = contentCollections(store);
      const t0 = new Date('2026-01-01T00:00:00Z');
      await rememberDelivery(c, 'a'.repeat(64), t0);
      await expect(
        rememberDelivery(c, 'a'.repeat(64), new Date(t0.getTime() + 7 * 86_400_000)),
      ).rejects.toThrow(/already received/);
      await expect(
        rememberDelivery(c, 'b'.repeat(64), new Date(t0.getTime() + 7 * 86_400_000)),
      ).resolves.toBeUndefined();
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('checks signature and skew', () => {
    const ok = {
      secret: 's',
      rawBody: body,
      signature: signBody('s', body),
      timestamp: String(now / 1000),
      maxSkewSeconds: 300,
      now,
    };
    expect(verifySignedDelivery(ok)).toMatch(/^[0-9a-f]{64}$/);
    expect(() => verifySignedDelivery({ ...ok, signature: signBody('t', body) })).toThrow(
      /does not match/,
    );
    expect(() => verifySignedDelivery({ ...ok, signature: 'sha1=abc' })).toThrow(/malformed/);
    expect(() => verifySignedDelivery({ ...ok, timestamp: String(now / 1000 - 301) })).toThrow(
      /away from now/,
    );
    expect(() => verifySignedDelivery({ ...ok, timestamp: undefined })).toThrow(/Timestamp/);
  });
});

describe('Distribution notifications', () => {
  it('keeps manifest pushes only, each repository once', () => {
    const m = 'application/vnd.docker.distribution.manifest.v2+json';
    expect(
      pushedRepositories({
        events: [
          { action: 'push', target: { mediaType: m, repository: 'a/b' } },
          { action: 'push', target: { mediaType: m, repository: 'a/b' } },
          { action: 'pull', target: { mediaType: m, repository: 'c' } },
          { action: 'push', target: { mediaType: 'application/octet-stream', repository: 'd' } },
          { action: 'push', target: { mediaType: m, repository: 'BAD NAME' } },
        ],
      }),
    ).toEqual(['a/b']);
  });
});

describe('task queue long poll', () => {
  it('wakes a waiter when this process finishes or cancels the task, without waiting for its poll', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'task-wait-'));
    const store = createEmbeddedStore({ dir });
    try {
      // a poll interval far beyond the test's timeout: only the in-process wake-up can answer
      const queue = new TaskQueue(
        contentCollections(store),
        undefined,
        pino({ level: 'silent' }),
        60_000,
        3_600_000,
      );
      const { task: first } = await queue.submit({ kind: 'publish', key: 'publish:a', params: {} });
      const claimed = await queue.claim('me');
      expect(claimed?._id).toBe(first._id);
      const finished = queue.waitFinal(first._id, 3_600_000);
      await queue.finish(first._id, 'me', { state: 'completed', result: { ok: true } });
      expect((await finished).state).toBe('completed');

      const { task: second } = await queue.submit({
        kind: 'publish',
        key: 'publish:b',
        params: {},
      });
      const canceled = queue.waitFinal(second._id, 3_600_000);
      await queue.cancel(second._id);
      expect((await canceled).state).toBe('canceled');

      // and answers with the task as it stands when the wait runs out or is aborted
      const { task: third } = await queue.submit({ kind: 'publish', key: 'publish:c', params: {} });
      expect((await queue.waitFinal(third._id, 0)).state).toBe('waiting');
      const aborted = new AbortController();
      const abandoned = queue.waitFinal(third._id, 3_600_000, aborted.signal);
      aborted.abort();
      expect((await abandoned).state).toBe('waiting');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 10_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeRegistry } from './fake-registry.js';
import { READER, startContent, type ContentHarness } from './harness.js';

describe('content API: auth, validation, promotion policy, rollback, untag, audit', () => {
  let upstream: FakeRegistry;
  let content: ContentHarness;
  let v1: string;
  let v2: string;

  beforeAll(async () => {
    upstream = await new FakeRegistry().start();
    content = await startContent({ FLOTILLA_REGISTRY_URL: upstream.url });
    v1 = upstream.addImage('fedora/app', 'v1').digest;
    v2 = upstream.addImage('fedora/app', 'v2').digest;
    upstream.addImage('fedora/app', 'untested');
    const task = await content.api('POST', '/api/v1/syncs', { repository: 'fedora/app' });
    expect((await content.waitTask(task.body.task.id)).state).toBe('completed');
  });
  afterAll(async () => {
    await content?.stop();
    await upstream?.stop();
  });

  it('answers 401 without or with a wrong token, 403 for a read token on a write', async () => {
    const none = await content.api('GET', '/api/v1/repositories', undefined, { token: null });
    expect(none.status).toBe(401);
    expect(none.headers['content-type']).toMatch(/problem\+json/);
    expect(none.headers['www-authenticate']).toMatch(/Bearer/);
    expect(
      (await content.api('GET', '/api/v1/repositories', undefined, { token: 'nope' })).status,
    ).toBe(401);
    expect(
      (await content.api('GET', '/api/v1/repositories', undefined, { token: READER })).status,
    ).toBe(200);
    const forbidden = await content.api(
      'POST',
      '/api/v1/promotions',
      { repository: 'fedora/app', tags: ['v1'], from: 'candidate', to: 'testing' },
      { token: READER },
    );
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers['content-type']).toMatch(/problem\+json/);
  });

  it('rejects bad input with 400 problem JSON and applies nothing', async () => {
    const bad = [
      { repository: 'Bad Name', tags: ['v1'], from: 'candidate', to: 'testing' },
      { repository: 'fedora/app', tags: ['-bad-tag'], from: 'candidate', to: 'testing' },
      { repository: 'fedora/app', tags: ['v1'], from: 'candidate', to: 'nonsense' },
      { repository: 'fedora/app', tags: ['v1'], from: 'candidate', to: 'candidate' },
      { repository: 'fedora/app', from: 'candidate', to: 'testing' },
      { repository: 'fedora/app', tags: ['v1'], digest: v1, from: 'candidate', to: 'testing' },
      { repository: 'fedora/app', tags: ['v1'], from: 'candidate', to: 'testing', surprise: true },
      {
        repository: 'fedora/app',
        tags: ['v1', 'v2'],
        targetTags: ['x'],
        from: 'candidate',
        to: 'testing',
      },
    ];
    for (const body of bad) {
      const r = await content.api('POST', '/api/v1/promotions', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
      expect(r.body.status).toBe(400);
    }
    const malformed = await content.api('POST', '/api/v1/promotions', undefined, {
      raw: '{"repository":',
    });
    expect(malformed.status).toBe(400);
    expect(
      (
        await content.api('POST', '/api/v1/syncs', {
          repository: 'x',
          upstream: { url: 'ftp://nope' },
        })
      ).status,
    ).toBe(400);
    expect((await content.api('POST', '/api/v1/publications', { channel: 'NOPE' })).status).toBe(
      400,
    );
    expect(
      (
        await content.api('POST', '/api/v1/rollbacks', {
          repository: 'fedora/app',
          channel: 'testing',
          version: 0,
        })
      ).status,
    ).toBe(400);
    expect((await content.api('GET', '/api/v1/tasks?state=bogus')).status).toBe(400);
    expect((await content.api('GET', '/api/v1/tasks/not-an-id')).status).toBe(400);
    expect((await content.api('GET', '/api/v1/repositories/fedora/app?version=1')).status).toBe(
      400,
    );
    expect(
      (await content.api('GET', '/api/v1/repositories/fedora/app?channel=testing&bogus=1')).status,
    ).toBe(400);
    // a partially valid multi-tag promotion (one unknown tag) changes nothing
    const partial = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/app',
      tags: ['v1', 'missing'],
      from: 'candidate',
      to: 'testing',
    });
    expect(partial.status).toBe(404);
    const testing = await content.api('GET', '/api/v1/repositories/fedora/app?channel=testing');
    expect(testing.body.channels[0].version).toBe(0);
  });

  it('answers 404 for unknown repository, tag, digest, version, task, publication', async () => {
    expect((await content.api('GET', '/api/v1/repositories/no/such')).status).toBe(404);
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'no/such',
          tags: ['v1'],
          from: 'candidate',
          to: 'testing',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'fedora/app',
          tags: ['nope'],
          from: 'candidate',
          to: 'testing',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'fedora/app',
          digest: `sha256:${'a'.repeat(64)}`,
          from: 'candidate',
          to: 'testing',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await content.api('POST', '/api/v1/rollbacks', {
          repository: 'fedora/app',
          channel: 'candidate',
          version: 99,
        })
      ).status,
    ).toBe(404);
    expect(
      (await content.api('GET', '/api/v1/tasks/00000000-0000-0000-0000-000000000000')).status,
    ).toBe(404);
    expect((await content.api('GET', '/api/v1/publications/42')).status).toBe(404);
    expect(
      (await content.api('POST', '/api/v1/publications', { repositories: ['no/such'] })).status,
    ).toBe(404);
  });

  it('promotes by digest under new tag names, keeps the audit trail, untags and rolls back', async () => {
    const p1 = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/app',
      digest: v1,
      targetTags: ['1', 'stable-ish'],
      from: 'candidate',
      to: 'testing',
      reason: 'QA ok',
    });
    expect(p1.status, JSON.stringify(p1.body)).toBe(201);
    expect(p1.body.tags).toEqual({ '1': v1, 'stable-ish': v1 });
    const p2 = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/app',
      tags: ['v2'],
      from: 'candidate',
      to: 'testing',
    });
    expect(p2.body.version).toBe(2);

    // policy: stable requires testing; v1 is in testing (as "1"), untested is not
    expect(
      (
        await content.api('POST', '/api/v1/promotions', {
          repository: 'fedora/app',
          tags: ['untested'],
          from: 'candidate',
          to: 'stable',
        })
      ).status,
    ).toBe(409);
    const ok = await content.api('POST', '/api/v1/promotions', {
      repository: 'fedora/app',
      tags: ['1'],
      from: 'testing',
      to: 'stable',
    });
    expect(ok.status).toBe(201);

    const untag = await content.api('POST', '/api/v1/untags', {
      repository: 'fedora/app',
      channel: 'testing',
      tags: ['stable-ish'],
    });
    expect(untag.status).toBe(201);
    expect(untag.body.version).toBe(3);
    expect(untag.body.tags).toEqual({ '1': v1, v2 });
    expect(
      (
        await content.api('POST', '/api/v1/untags', {
          repository: 'fedora/app',
          channel: 'testing',
          tags: ['gone'],
        })
      ).status,
    ).toBe(404);

    const rollback = await content.api('POST', '/api/v1/rollbacks', {
      repository: 'fedora/app',
      channel: 'testing',
      version: 1,
    });
    expect(rollback.status).toBe(201);
    expect(rollback.body.version).toBe(4);
    expect(rollback.body.tags).toEqual({ '1': v1, 'stable-ish': v1 });

    const diff = await content.api(
      'GET',
      '/api/v1/repositories/fedora/app?channel=testing&version=3&compare=2',
    );
    expect(diff.body.diff).toMatchObject({
      from: 2,
      to: 3,
      removed: [{ tag: 'stable-ish', digest: v1 }],
      added: [],
      changed: [],
    });
    expect(diff.body.versions.map((v: { number: number }) => v.number)).toEqual([4, 3, 2, 1]);
    const old = await content.api(
      'GET',
      '/api/v1/repositories/fedora/app?channel=testing&version=2',
    );
    expect(old.body.channels[0].tags).toEqual({ '1': v1, 'stable-ish': v1, v2 });

    const trail = await content.api(
      'GET',
      '/api/v1/promotions?repository=fedora/app&channel=testing',
    );
    expect(trail.status).toBe(200);
    const kinds = trail.body.promotions.map((p: { kind: string }) => p.kind);
    expect(kinds).toEqual(['rollback', 'untag', 'promotion', 'promotion', 'promotion']);
    expect(trail.body.promotions[2]).toMatchObject({ from: 'testing', to: 'stable', tags: ['1'] });
    const first = trail.body.promotions[4];
    expect(first).toMatchObject({
      actor: 'admin',
      reason: 'QA ok',
      from: 'candidate',
      to: 'testing',
      digests: [v1],
    });
    expect(first.before).toEqual({ version: 0, tags: {} });
    expect(first.after).toEqual({ version: 1, tags: { '1': v1, 'stable-ish': v1 } });

    const list = await content.api('GET', '/api/v1/repositories');
    expect(list.body.repositories).toEqual([
      { name: 'fedora/app', channels: { candidate: 1, testing: 4, stable: 1 } },
    ]);
  });

  it('serialises concurrent promotions into one channel without losing an update', async () => {
    const tags = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const results = await Promise.all(
      tags.map((t) =>
        content.api('POST', '/api/v1/promotions', {
          repository: 'fedora/app',
          digest: v2,
          targetTags: [t],
          from: 'candidate',
          to: 'testing',
        }),
      ),
    );
    for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(201);
    const versions = results.map((r) => r.body.version as number).sort((a, b) => a - b);
    expect(new Set(versions).size).toBe(tags.length);
    const now = await content.api('GET', '/api/v1/repositories/fedora/app?channel=testing');
    for (const t of tags) expect(now.body.channels[0].tags[t]).toBe(v2);
    expect(now.body.channels[0].version).toBe(versions[versions.length - 1]);
  });

  it('serves OpenAPI 3.1 generated from the schemas', async () => {
    const r = await content.api('GET', '/api/v1/openapi.json', undefined, { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    const promo = r.body.paths['/promotions'].post.requestBody.content['application/json'].schema;
    expect(promo.properties.repository).toBeDefined();
    expect(promo.required).toEqual(expect.arrayContaining(['repository', 'from', 'to']));
    expect(r.body.components.schemas.Task.properties.state.enum).toContain('canceled');
  });
});

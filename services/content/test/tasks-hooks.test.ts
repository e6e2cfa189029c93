import { afterEach, describe, expect, it } from 'vitest';
import { createEvent } from '@flotilla/protocol';
import { signBody } from '../src/hooks/bodhi.js';
import { FakeRegistry } from './fake-registry.js';
import { HOOK_SECRET, startContent, type ContentHarness } from './harness.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function setup(env: Record<string, string> = {}) {
  const upstream = await new FakeRegistry().start();
  cleanups.push(() => upstream.stop());
  const content = await startContent({ FLOTILLA_REGISTRY_URL: upstream.url, ...env });
  cleanups.push(() => content.stop());
  return { upstream, content };
}
/** Starts a sync of `images` tags whose blobs the upstream serves slowly; returns its task id. */
async function startSlowSync(
  repository: string,
  images: number,
  layers: number,
  blobDelayMs: number,
) {
  const { upstream, content } = await setup();
  for (let i = 0; i < images; i++) upstream.addImage(repository, `t${i}`, { layers });
  upstream.blobDelayMs = blobDelayMs;
  const r = await content.api('POST', '/api/v1/syncs', { repository });
  return { content, id: r.body.task.id as string };
}
async function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('tasks', () => {
  it('cancels a running sync (state canceled, no version made) and refuses to cancel a finished task', async () => {
    const { content, id } = await startSlowSync('slow', 6, 2, 400);
    await until(async () =>
      (await content.api('GET', `/api/v1/tasks/${id}`)).body.state === 'running' ? true : undefined,
    );
    const cancel = await content.api('DELETE', `/api/v1/tasks/${id}`);
    expect([200, 202]).toContain(cancel.status);
    const done = await content.waitTask(id);
    expect(done.state).toBe('canceled');
    expect((await content.api('GET', '/api/v1/repositories/slow?channel=candidate')).status).toBe(
      404,
    );
    const again = await content.api('DELETE', `/api/v1/tasks/${id}`);
    expect(again.status).toBe(409);
    expect(again.headers['content-type']).toMatch(/problem\+json/);
  });

  it('answers GET /tasks/:id?wait= when the task ends, or as it stands when the wait runs out', async () => {
    const { content, id } = await startSlowSync('waited', 3, 1, 300);
    // a short wait returns the task still unfinished
    const early = await content.api('GET', `/api/v1/tasks/${id}?wait=0.05`);
    expect(early.status).toBe(200);
    expect(['waiting', 'running']).toContain(early.body.state);
    // a long one returns the final state, in one request
    const done = await content.api('GET', `/api/v1/tasks/${id}?wait=30`);
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('completed');
    expect(done.body.result.tags).toBe(3);
    // a finished task answers at once, whatever the wait
    expect((await content.api('GET', `/api/v1/tasks/${id}?wait=60`)).body.state).toBe('completed');
    for (const bad of ['-1', '61', 'soon']) {
      const res = await content.api('GET', `/api/v1/tasks/${id}?wait=${bad}`);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
    }
    expect(
      (await content.api('GET', '/api/v1/tasks/00000000-0000-0000-0000-000000000000?wait=1'))
        .status,
    ).toBe(404);
  });

  it('wakes a waiting GET when the task is canceled', async () => {
    const { content } = await setup({ FLOTILLA_CONTENT_WORKERS: '0' });
    const r = await content.api('POST', '/api/v1/publications', { channel: 'testing' });
    const id = r.body.task.id;
    const waiting = content.api('GET', `/api/v1/tasks/${id}?wait=30`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await content.api('DELETE', `/api/v1/tasks/${id}`)).status).toBe(200);
    const answered = await waiting;
    expect(answered.body.state).toBe('canceled');
  });

  it('cancels a waiting task at once and lists tasks by state', async () => {
    const { content } = await setup({ FLOTILLA_CONTENT_WORKERS: '0' });
    const r = await content.api('POST', '/api/v1/publications', { channel: 'testing' });
    expect(r.body.task.state).toBe('waiting');
    const cancel = await content.api('DELETE', `/api/v1/tasks/${r.body.task.id}`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.state).toBe('canceled');
    const list = await content.api('GET', '/api/v1/tasks?state=canceled');
    expect(list.body.tasks.map((t: { id: string }) => t.id)).toEqual([r.body.task.id]);
  });

  it('requeues a task whose worker died (expired lease) and runs it', async () => {
    const { content } = await setup();
    const c = content.store.collection('tasks');
    const past = new Date(Date.now() - 60_000).toISOString();
    await c.insertOne({
      _id: '11111111-1111-4111-8111-111111111111',
      kind: 'publish',
      state: 'running',
      key: 'publish',
      channel: 'stable',
      params: { channel: 'stable' },
      createdAt: past,
      startedAt: past,
      attempts: 1,
      lease: { owner: 'dead-worker', expiresAt: past },
    });
    const done = await content.waitTask('11111111-1111-4111-8111-111111111111');
    expect(done.state).toBe('completed');
    expect(done.attempts).toBe(2);
  });
});

describe('registry events and notifications', () => {
  it('coalesces a burst of registry.manifest.pushed into one running sync and one rerun', async () => {
    const { upstream, content } = await setup();
    upstream.addImage('burst', 'v1');
    upstream.blobDelayMs = 1000;
    const push = (tag: string) =>
      content.bus.publish(
        createEvent('registry.manifest.pushed', 'registry', {
          repository: 'burst',
          digest: `sha256:${'b'.repeat(64)}`,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          size: 10,
          tag,
        }),
      );
    await push('v1');
    await until(async () =>
      (await content.api('GET', '/api/v1/tasks?state=running')).body.tasks.length > 0
        ? true
        : undefined,
    );
    for (let i = 0; i < 5; i++) await push('v1');
    const all = await until(async () => {
      const tasks = (await content.api('GET', '/api/v1/tasks?repository=burst')).body.tasks as {
        state: string;
      }[];
      return tasks.every((t) => t.state === 'completed') ? tasks : undefined;
    });
    expect(all.length).toBe(2);
  });

  it('accepts Docker Distribution notifications with the bearer token only', async () => {
    const { upstream, content } = await setup();
    upstream.addImage('dist/app', 'v1');
    const envelope = {
      events: [
        {
          id: '1',
          action: 'push',
          target: {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            repository: 'dist/app',
            digest: 'sha256:x',
            tag: 'v1',
          },
        },
        {
          id: '2',
          action: 'push',
          target: {
            mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
            repository: 'dist/layer-only',
          },
        },
        {
          id: '3',
          action: 'pull',
          target: {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            repository: 'dist/pulled',
          },
        },
      ],
    };
    const type = { 'content-type': 'application/vnd.docker.distribution.events.v2+json' };
    expect(
      (
        await content.api('POST', '/api/v1/hooks/registry', envelope, {
          token: null,
          headers: type,
        })
      ).status,
    ).toBe(401);
    const r = await content.api('POST', '/api/v1/hooks/registry', envelope, { headers: type });
    expect(r.status).toBe(202);
    expect(r.body.tasks.map((t: { repository: string }) => t.repository)).toEqual(['dist/app']);
    expect((await content.waitTask(r.body.tasks[0].id)).state).toBe('completed');
  });
});

describe('Bodhi webhook', () => {
  const post = (content: ContentHarness, body: string, headers: Record<string, string>) =>
    content.api('POST', '/api/v1/hooks/bodhi', undefined, {
      token: null,
      raw: body,
      headers: { 'content-type': 'application/json', ...headers },
    });
  const signed = (body: string, at = Math.floor(Date.now() / 1000)) => ({
    'x-flotilla-signature': signBody(HOOK_SECRET, body),
    'x-flotilla-timestamp': String(at),
  });

  it('promotes the builds and publishes on a good signature; refuses bad, stale and replayed deliveries', async () => {
    const { upstream, content } = await setup();
    const img = upstream.addImage('fedora/web', '1.0');
    expect(
      (
        await content.waitTask(
          (await content.api('POST', '/api/v1/syncs', { repository: 'fedora/web' })).body.task.id,
        )
      ).state,
    ).toBe('completed');

    const body = JSON.stringify({
      update: 'FEDORA-2026-1',
      status: 'testing',
      builds: [{ repository: 'fedora/web', tag: '1.0' }],
    });
    expect(
      (
        await post(content, body, {
          ...signed(body),
          'x-flotilla-signature': signBody('wrong', body),
        })
      ).status,
    ).toBe(401);
    expect((await post(content, body, {})).status).toBe(401);
    expect(
      (await post(content, body, signed(body, Math.floor(Date.now() / 1000) - 600))).status,
    ).toBe(401);
    expect((await post(content, `${body} `, signed(body))).status).toBe(401);
    expect(
      (await content.api('GET', '/api/v1/repositories/fedora/web?channel=testing')).body.channels[0]
        .version,
    ).toBe(0);

    const headers = signed(body);
    const ok = await post(content, body, headers);
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    expect(ok.body.promotions[0]).toMatchObject({
      actor: 'bodhi',
      from: 'candidate',
      to: 'testing',
      version: 1,
    });
    const task = await content.waitTask(ok.body.task.id);
    expect(task.state).toBe('completed');
    expect(task.result).toMatchObject({
      channel: 'testing',
      publication: 1,
      repositories: ['fedora/web'],
    });

    const replay = await post(content, body, headers);
    expect(replay.status).toBe(409);
    expect(replay.headers['content-type']).toMatch(/problem\+json/);

    // stable requires testing: ok now; a build not in testing is refused and nothing applies
    const refused = JSON.stringify({
      update: 'FEDORA-2026-2',
      status: 'stable',
      builds: [
        { repository: 'fedora/web', digest: img.digest },
        { repository: 'fedora/web', tag: 'nope' },
      ],
    });
    expect((await post(content, refused, signed(refused))).status).toBe(404);
    expect(
      (await content.api('GET', '/api/v1/repositories/fedora/web?channel=stable')).body.channels[0]
        .version,
    ).toBe(0);
    const bad = JSON.stringify({ update: 'x', status: 'bogus', builds: [] });
    expect((await post(content, bad, signed(bad))).status).toBe(400);
  });
});

/**
 * Content syncing from a real Docker Distribution (Debian's docker-registry) filled by skopeo:
 * a multi-platform index and a single image behind Basic auth; then Distribution's own
 * notification webhook triggers a sync by itself.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRepositoryMetadata } from '@flotilla/protocol';
import { ADMIN, startContent, type ContentHarness } from '../services/content/test/harness.js';
import { requireBinaries, skopeo } from './support/clients.js';
import { startDistribution, type RunningDistribution } from './support/distribution.js';
import { makeImage, writeOciLayout, type TestImage } from './support/images.js';

const binaries = requireBinaries(['docker-registry', 'skopeo']);
const USER = { user: 'admin', password: 'distribution-pw' };

describe.skipIf(!binaries.ok)('content sync from Docker Distribution', () => {
  let dist: RunningDistribution;
  let content: ContentHarness;
  let work: string;

  const pushWithSkopeo = async (image: TestImage, ref: string, tag: string) => {
    const layout = await fs.mkdtemp(path.join(work, 'layout-'));
    const src = await writeOciLayout(layout, image, tag);
    await skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      '--dest-creds',
      `${USER.user}:${USER.password}`,
      src,
      `docker://${dist.host}/${ref}`,
    ]);
  };

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-dist-'));
    dist = await startDistribution({ htpasswd: USER });
    // Counts the images' own files; signing on promotion is covered by test/e2e-signing.test.ts.
    content = await startContent({
      FLOTILLA_REGISTRY_URL: dist.url,
      FLOTILLA_REGISTRY_USERNAME: USER.user,
      FLOTILLA_REGISTRY_PASSWORD: USER.password,
      FLOTILLA_CONTENT_SIGNING_CHANNELS: 'none',
    });
  });
  afterAll(async () => {
    await content?.stop();
    await dist?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('syncs a multi-platform index and a single image with Basic auth, then publishes them', async () => {
    const multi = makeImage({ platforms: ['linux/amd64', 'linux/arm64'], layers: 2 });
    const single = makeImage({ layers: 3 });
    await pushWithSkopeo(multi, 'fedora/base:40', '40');
    await pushWithSkopeo(single, 'fedora/base:40-minimal', '40-minimal');

    const r = await content.api('POST', '/api/v1/syncs', { repository: 'fedora/base' });
    const task = await content.waitTask(r.body.task.id);
    expect(task.state, JSON.stringify(task.error)).toBe('completed');
    expect(task.result).toMatchObject({ tags: 2, manifestsFetched: 4, blobsFetched: 2 * 3 + 4 });

    const repo = await content.api('GET', '/api/v1/repositories/fedora/base?channel=candidate');
    expect(repo.body.channels[0].tags).toEqual({
      '40': multi.top.digest,
      '40-minimal': single.top.digest,
    });

    // re-sync: HEADs only, nothing downloaded
    const again = await content.waitTask(
      (await content.api('POST', '/api/v1/syncs', { repository: 'fedora/base' })).body.task.id,
    );
    expect(again.result).toMatchObject({
      changed: false,
      unchanged: 2,
      manifestsFetched: 0,
      blobsFetched: 0,
    });

    for (const [from, to] of [
      ['candidate', 'testing'],
      ['testing', 'stable'],
    ]) {
      expect(
        (
          await content.api('POST', '/api/v1/promotions', {
            repository: 'fedora/base',
            tags: ['40', '40-minimal'],
            from,
            to,
          })
        ).status,
      ).toBe(201);
    }
    const pub = await content.waitTask(
      (await content.api('POST', '/api/v1/publications', {})).body.task.id,
    );
    expect(pub.state, JSON.stringify(pub.error)).toBe('completed');
    const root = content.service.parts.config.publishDir;
    const meta = parseRepositoryMetadata(
      await fs.readFile(path.join(root, 'channels/stable/repositories/fedora/base.json')),
    );
    expect(Object.keys(meta.manifests).sort()).toEqual(
      [multi.top.digest, ...multi.images.map((i) => i.manifest.digest), single.top.digest].sort(),
    );
    expect(
      Buffer.from(meta.manifests[multi.top.digest]!.data, 'base64').equals(multi.top.bytes),
    ).toBe(true);
    // the bytes Distribution serves are the bytes we publish
    const raw = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      `${USER.user}:${USER.password}`,
      `docker://${dist.host}/fedora/base:40`,
    ]);
    expect(raw.stdout.trim()).toBe(multi.top.bytes.toString().trim());
    expect(Object.keys(meta.blobs).length).toBe(2 * 3 + 4);
  });

  it('a mirror sync from a repository Distribution lacks (a typo) fails and keeps every tag', async () => {
    const image = makeImage({ layers: 1 });
    await pushWithSkopeo(image, 'up/app:1', '1');
    await pushWithSkopeo(image, 'up/app:2', '2');
    const upstream = { url: dist.url, username: USER.user, password: USER.password };
    const sync = async (repository: string) =>
      content.waitTask(
        (
          await content.api('POST', '/api/v1/syncs', {
            repository: 'mirror/app',
            mirror: true,
            upstream: { ...upstream, repository },
          })
        ).body.task.id,
      );
    expect((await sync('up/app')).state).toBe('completed');
    const before = (await content.api('GET', '/api/v1/repositories/mirror/app?channel=candidate'))
      .body.channels[0];
    expect(Object.keys(before.tags).sort()).toEqual(['1', '2']);

    const typo = await sync('up/ap');
    expect(typo.state).toBe('failed');
    expect(typo.error.message).toContain(`${dist.url}/v2/up/ap/tags/list`);
    expect(typo.error.details.upstream).toMatchObject({
      repository: 'up/ap',
      status: 404,
      errorCode: 'NAME_UNKNOWN',
    });
    const after = (await content.api('GET', '/api/v1/repositories/mirror/app?channel=candidate'))
      .body.channels[0];
    expect(after).toEqual(before);
  });

  it('syncs on Distribution’s own notification webhook', async () => {
    const hooked = await startDistribution({
      notifyUrl: `${content.url}/api/v1/hooks/registry`,
      notifyHeaders: { Authorization: `Bearer ${ADMIN}` },
    });
    try {
      // this Distribution is anonymous; point the default upstream at it for event-triggered syncs
      content.service.parts.config.registry.url = hooked.url;
      const image = makeImage({ layers: 1 });
      const layout = await fs.mkdtemp(path.join(work, 'layout-'));
      await skopeo([
        'copy',
        '--dest-tls-verify=false',
        await writeOciLayout(layout, image, 'v1'),
        `docker://${hooked.host}/hooked/app:v1`,
      ]);
      let tags: Record<string, string> | undefined;
      for (let i = 0; i < 200 && !tags?.v1; i++) {
        const repo = await content.api('GET', '/api/v1/repositories/hooked/app?channel=candidate');
        if (repo.status === 200) tags = repo.body.channels[0].tags;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(tags).toEqual({ v1: image.top.digest });
    } finally {
      await hooked.stop();
    }
  });
});

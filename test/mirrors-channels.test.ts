/**
 * Mirrors judged over a tree with per-channel views: `PUBLICATION` is the newest publication of
 * any channel and the records of every channel are one sequence, so a mirror is verified
 * against the blobs of testing and stable publications alike, each blob carried once.
 */
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMirrors, type Harness } from './support/mirrors.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';
import { blobPath, writePublishedTree, type WrittenTree } from './support/tree.js';

describe('mirrors over per-channel views', () => {
  let work: string;
  let trees: WrittenTree[];
  let mirror: StaticServer;
  let harness: Harness;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crawl-channels-'));
    const master = path.join(work, 'master');
    trees = [
      await writePublishedTree(master, {
        publication: 1,
        channel: 'testing',
        layout: 'channels',
        repositories: [{ name: 'app', tags: { t: { kind: 'image' } } }],
      }),
      await writePublishedTree(master, {
        publication: 2,
        channel: 'stable',
        layout: 'channels',
        repositories: [{ name: 'app', tags: { s: { kind: 'image' } } }],
      }),
    ];
    await cp(master, path.join(work, 'mirror'), { recursive: true });
    mirror = await startStaticServer(path.join(work, 'mirror'));
    harness = await startMirrors({ publishDir: master });
  });

  afterAll(async () => {
    await harness?.stop();
    await mirror?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('verifies the blobs of every channel’s publications, each blob once', async () => {
    expect(harness.service.index.marker).toBe(2);
    for (const tree of trees) {
      for (const digest of tree.newBlobs)
        expect(harness.service.index.introducedIn(digest.slice(7))).toBe(tree.publication);
    }
    const added = await harness.client.add({ name: 'mirror', baseUrl: mirror.url, country: 'DE' });
    const crawl = await harness.client.crawl(added.id);
    expect(crawl.crawl).toMatchObject({
      status: 'ok',
      claimedPublication: 2,
      verifiedPublication: 2,
    });
    const all = trees.flatMap((t) => t.newBlobs);
    expect(crawl.crawl.checked).toBe(all.length);
    for (const digest of all) expect(mirror.requests).toContain(`HEAD /${blobPath(digest)}`);
    let files = 0;
    const blobs = path.join(work, 'master', 'blobs', 'sha256');
    for (const d of await readdir(blobs)) files += (await readdir(path.join(blobs, d))).length;
    expect(files).toBe(new Set(all).size);
  });
});

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePublishedTree } from '../../../test/support/tree.js';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  removeDir,
  startCrane,
  tempDir,
  type Crane,
} from './harness.js';

const LIST = `sha256:${'3e'.repeat(32)}`;
const AMD64 = `sha256:${'c5'.repeat(32)}`;
const S2 = `sha256:${'a1'.repeat(32)}`;

// The shape pulp_docker's web distributor writes for Crane (version 4).
const zoo = {
  repository: 'zoo',
  'repo-registry-id': 'redhat/zoo',
  url: 'http://cdn.example.com/zoo/bar/',
  version: 4,
  type: 'pulp-docker-redirect',
  protected: false,
  schema2_data: [S2, '1.25.1-musl'],
  manifest_list_data: ['latest', LIST],
  manifest_list_amd64_tags: { latest: [AMD64, 2], old: [AMD64, 1] },
};

let root: string;
let crane: Crane;

beforeAll(async () => {
  root = await tempDir();
  const pulpDir = path.join(root, 'pulp');
  await mkdir(path.join(pulpDir, 'nested'), { recursive: true });
  await writeFile(path.join(pulpDir, 'zoo.json'), JSON.stringify(zoo));
  await writeFile(
    path.join(pulpDir, 'nested', 'hidden.json'),
    JSON.stringify({
      ...zoo,
      'repo-registry-id': 'redhat/hidden',
      protected: true,
      url: 'http://cdn.example.com/hidden',
    }),
  );
  await writeFile(
    path.join(pulpDir, 'broken.json'),
    '{"type": "pulp-docker-redirect", "version": 3',
  );
  await writeFile(
    path.join(pulpDir, 'v2.json'),
    JSON.stringify({ ...zoo, version: 2, 'repo-registry-id': 'old/v2' }),
  );
  const tree = path.join(root, 'tree');
  await writePublishedTree(tree, {
    publication: 1,
    repositories: [{ name: 'fedora/httpd', tags: { x: { kind: 'image' } } }],
  });
  crane = await startCrane(tree, { FLOTILLA_CRANE_PULP_DIR: pulpDir });
});

afterAll(async () => {
  await crane.close();
  await removeDir(root);
});

describe('Pulp 2 redirect files', () => {
  it('lists Pulp repositories next to published ones, without protected or invalid ones', async () => {
    expect((await crane.get('/v2/_catalog')).json()).toEqual({
      repositories: ['fedora/httpd', 'redhat/zoo'],
    });
  });

  it('redirects a manifest list to manifests/list when the client accepts lists', async () => {
    const r = await crane.get('/v2/redhat/zoo/manifests/latest', {
      accept: `${DOCKER_LIST}, ${DOCKER_MANIFEST}`,
    });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('http://cdn.example.com/zoo/bar/manifests/list/latest');
  });

  it('redirects a list tag to its amd64 image for clients that do not accept lists', async () => {
    const s2 = await crane.get('/v2/redhat/zoo/manifests/latest', { accept: DOCKER_MANIFEST });
    expect(s2.headers.location).toBe(`http://cdn.example.com/zoo/bar/manifests/2/${AMD64}`);
    const none = await crane.get('/v2/redhat/zoo/manifests/latest');
    expect(none.headers.location).toBe('http://cdn.example.com/zoo/bar/manifests/1/latest');
    const schema1 = await crane.get('/v2/redhat/zoo/manifests/old');
    expect(schema1.headers.location).toBe(`http://cdn.example.com/zoo/bar/manifests/1/${AMD64}`);
  });

  it('redirects schema2 tags and digests to manifests/2, the rest to manifests/1', async () => {
    const tag = await crane.get('/v2/redhat/zoo/manifests/1.25.1-musl', {
      accept: DOCKER_MANIFEST,
    });
    expect(tag.headers.location).toBe('http://cdn.example.com/zoo/bar/manifests/2/1.25.1-musl');
    const digest = await crane.get(`/v2/redhat/zoo/manifests/${S2}`, { accept: DOCKER_MANIFEST });
    expect(digest.headers.location).toBe(`http://cdn.example.com/zoo/bar/manifests/2/${S2}`);
    const other = await crane.get('/v2/redhat/zoo/manifests/unknown', { accept: DOCKER_MANIFEST });
    expect(other.headers.location).toBe('http://cdn.example.com/zoo/bar/manifests/1/unknown');
  });

  it('redirects blobs and tags', async () => {
    const blob = await crane.get(`/v2/redhat/zoo/blobs/${S2}`);
    expect(blob.status).toBe(302);
    expect(blob.headers.location).toBe(`http://cdn.example.com/zoo/bar/blobs/${S2}`);
    const tags = await crane.get('/v2/redhat/zoo/tags/list');
    expect(tags.headers.location).toBe('http://cdn.example.com/zoo/bar/tags/list');
  });

  it('answers 404 for a protected Pulp repository and validates references', async () => {
    expect((await crane.get('/v2/redhat/hidden/manifests/latest')).status).toBe(404);
    expect((await crane.get('/v2/redhat/zoo/blobs/sha256:nothex')).status).toBe(400);
    // a reference that is no tag names no manifest (the OCI conformance suite's expectation)
    expect((await crane.get('/v2/redhat/zoo/manifests/-x')).status).toBe(404);
    expect((await crane.get('/v2/redhat/zoo/manifests/sha256:nothex')).status).toBe(400);
  });

  it('is ready on Pulp content alone, before any Flotilla publication', async () => {
    const empty = await tempDir();
    const alone = await startCrane(path.join(empty, 'no-tree'), {
      FLOTILLA_CRANE_PULP_DIR: path.join(root, 'pulp'),
    });
    try {
      expect((await alone.get('/readyz')).status).toBe(200);
      expect((await alone.get('/v2/_catalog')).json()).toEqual({ repositories: ['redhat/zoo'] });
    } finally {
      await alone.close();
      await removeDir(empty);
    }
  });

  it('picks up a changed redirect file on the next reload', async () => {
    const empty = await tempDir();
    const dir = path.join(empty, 'pulp');
    await mkdir(dir);
    await writeFile(path.join(dir, 'zoo.json'), JSON.stringify(zoo));
    const alone = await startCrane(path.join(empty, 'no-tree'), { FLOTILLA_CRANE_PULP_DIR: dir });
    try {
      await writeFile(
        path.join(dir, 'zoo.json'),
        JSON.stringify({ ...zoo, url: 'https://cdn2.example.com/zoo' }),
      );
      await alone.service.reload();
      const r = await alone.get(`/v2/redhat/zoo/blobs/${S2}`);
      expect(r.headers.location).toBe(`https://cdn2.example.com/zoo/blobs/${S2}`);
    } finally {
      await alone.close();
      await removeDir(empty);
    }
  });

  it('counts the invalid files', async () => {
    expect((await crane.get('/metrics')).body.toString()).toMatch(
      /flotilla_crane_metadata_errors_total\{[^}]*kind="pulp"[^}]*\} 2/,
    );
  });
});

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePublishedTree, type WrittenTree } from '../../../test/support/tree.js';
import {
  ALL_MANIFESTS,
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  removeDir,
  startCrane,
  tempDir,
  type Crane,
} from './harness.js';

let root: string;
let tree: WrittenTree;
let crane: Crane;

const REPO = 'fedora/httpd';

beforeAll(async () => {
  root = await tempDir();
  const tags: Record<string, object> = {
    '39': {},
    '40': { kind: 'image' },
    docker: { flavour: 'docker' },
    dockerimg: { kind: 'image', flavour: 'docker' },
    armonly: { platforms: [{ os: 'linux', architecture: 'arm64' }], layers: 1 },
  };
  for (let i = 0; i < 5; i++) tags[`t${i}`] = { kind: 'image', layers: 1, layerSize: 16 };
  tree = await writePublishedTree(root, {
    publication: 7,
    repositories: [
      {
        name: REPO,
        tags,
        artifacts: [
          { subjectTag: '39', artifactType: 'application/vnd.example.sbom' },
          { subjectTag: '39' },
        ],
      },
      { name: 'fedora/other', tags: { latest: { kind: 'image', layers: 1 } } },
      ...['a', 'b', 'c', 'd', 'e'].map((n) => ({
        name: `list/${n}`,
        tags: { x: { kind: 'image' as const, layers: 1, layerSize: 8 } },
      })),
    ],
  });
  crane = await startCrane(root);
});

afterAll(async () => {
  await crane.close();
  await removeDir(root);
});

const repo = () => tree.repositories[REPO]!;

describe('GET /v2/', () => {
  it('answers 200 {} with the API version header', async () => {
    const r = await crane.get('/v2/');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({});
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect((await crane.get('/v2')).status).toBe(200);
  });
});

describe('the /v2 path grammar (protocol parseV2Path, shared with the registry)', () => {
  it.each([`/v2/${REPO}/manifests/%zz`, `/v2/${REPO}/blobs/sha256%3`])(
    'answers a malformed %% in %s with 400 NAME_INVALID',
    async (path) => {
      const r = await crane.get(path);
      expect(r.status).toBe(400);
      expect(r.json<{ errors: Array<{ code: string }> }>().errors[0]!.code).toBe('NAME_INVALID');
    },
  );
});

describe('manifests', () => {
  it('serves the exact bytes by tag with every header', async () => {
    const digest = repo().tags['39']!;
    const r = await crane.get(`/v2/${REPO}/manifests/39`, { accept: ALL_MANIFESTS });
    expect(r.status).toBe(200);
    expect(r.body.equals(repo().manifests[digest]!.bytes)).toBe(true);
    expect(r.headers['content-type']).toBe(OCI_INDEX);
    expect(r.headers['docker-content-digest']).toBe(digest);
    expect(r.headers.etag).toBe(`"${digest}"`);
    expect(r.headers['content-length']).toBe(String(repo().manifests[digest]!.bytes.length));
    expect(r.headers['cache-control']).toBe('public, max-age=30');
    expect(r.headers.vary).toBe('Accept');
  });

  it('serves by digest with a long-lived cache', async () => {
    const child = repo().images['39']![0]!.digest;
    const r = await crane.get(`/v2/${REPO}/manifests/${child}`, { accept: OCI_MANIFEST });
    expect(r.status).toBe(200);
    expect(r.body.equals(repo().manifests[child]!.bytes)).toBe(true);
    expect(r.headers['content-type']).toBe(OCI_MANIFEST);
    expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it('answers HEAD with the same headers and no body', async () => {
    const digest = repo().tags['39']!;
    const r = await crane.get(`/v2/${REPO}/manifests/39`, { accept: ALL_MANIFESTS }, 'HEAD');
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    expect(r.headers['content-length']).toBe(String(repo().manifests[digest]!.bytes.length));
    expect(r.headers['docker-content-digest']).toBe(digest);
  });

  it('answers 304 to If-None-Match, quoted or not', async () => {
    const digest = repo().tags['39']!;
    for (const inm of [`"${digest}"`, digest]) {
      const r = await crane.get(`/v2/${REPO}/manifests/39`, {
        accept: ALL_MANIFESTS,
        'if-none-match': inm,
      });
      expect(r.status).toBe(304);
      expect(r.body.length).toBe(0);
      expect(r.headers['docker-content-digest']).toBe(digest);
    }
    const other = await crane.get(`/v2/${REPO}/manifests/39`, {
      accept: ALL_MANIFESTS,
      'if-none-match': '"sha256:00"',
    });
    expect(other.status).toBe(200);
  });

  it('answers MANIFEST_UNKNOWN for a missing tag or digest', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/nope`, { accept: ALL_MANIFESTS });
    expect(r.status).toBe(404);
    expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('MANIFEST_UNKNOWN');
    const d = await crane.get(`/v2/${REPO}/manifests/sha256:${'0'.repeat(64)}`, {
      accept: ALL_MANIFESTS,
    });
    expect(d.status).toBe(404);
    // a manifest of another repository is not this repository's
    const foreign = tree.repositories['fedora/other']!.tags.latest!;
    expect(
      (await crane.get(`/v2/${REPO}/manifests/${foreign}`, { accept: ALL_MANIFESTS })).status,
    ).toBe(404);
  });

  it('answers a reference that is no tag with 404 MANIFEST_UNKNOWN, a malformed digest with 400', async () => {
    for (const ref of ['-bad', '.INVALID_MANIFEST_NAME']) {
      const badTag = await crane.get(`/v2/${REPO}/manifests/${ref}`);
      expect(badTag.status).toBe(404);
      expect(badTag.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe(
        'MANIFEST_UNKNOWN',
      );
    }
    const badDigest = await crane.get(`/v2/${REPO}/manifests/sha256:xyz`);
    expect(badDigest.status).toBe(400);
    expect(badDigest.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('DIGEST_INVALID');
  });
});

describe('Accept negotiation', () => {
  const digestOf = (tag: string) => repo().tags[tag]!;
  const amd64Of = (tag: string) =>
    repo().images[tag]!.find((i) => i.platform.architecture === 'amd64')!.digest;

  it('serves the stored type when accepted', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/docker`, { accept: DOCKER_LIST });
    expect(r.headers['content-type']).toBe(DOCKER_LIST);
    expect(r.headers['docker-content-digest']).toBe(digestOf('docker'));
  });

  it('accepts a comma list with parameters across several Accept headers', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/39`, {
      accept: `${DOCKER_MANIFEST};q=0.5, ${OCI_INDEX};q=0.9`,
    });
    expect(r.headers['content-type']).toBe(OCI_INDEX);
  });

  it('falls back to the linux/amd64 child of an OCI index by tag', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/39`, { accept: OCI_MANIFEST });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(OCI_MANIFEST);
    expect(r.headers['docker-content-digest']).toBe(amd64Of('39'));
    expect(r.body.equals(repo().manifests[amd64Of('39')]!.bytes)).toBe(true);
  });

  it('falls back to the linux/amd64 schema2 child of a manifest list for a client sending no Accept', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/docker`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(DOCKER_MANIFEST);
    expect(r.headers['docker-content-digest']).toBe(amd64Of('docker'));
  });

  it('serves a Docker schema2 image whatever the client accepts (as Distribution does)', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/dockerimg`, { accept: OCI_MANIFEST });
    expect(r.headers['content-type']).toBe(DOCKER_MANIFEST);
  });

  it('answers MANIFEST_UNKNOWN when neither the index nor an amd64 child is acceptable', async () => {
    const noChild = await crane.get(`/v2/${REPO}/manifests/armonly`, { accept: OCI_MANIFEST });
    expect(noChild.status).toBe(404);
    expect(noChild.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('MANIFEST_UNKNOWN');
    const ociImage = await crane.get(`/v2/${REPO}/manifests/40`, { accept: DOCKER_MANIFEST });
    expect(ociImage.status).toBe(404);
    const indexNoAccept = await crane.get(`/v2/${REPO}/manifests/39`); // OCI child not acceptable either
    expect(indexNoAccept.status).toBe(404);
  });

  it('by digest never substitutes another manifest', async () => {
    const ociIndex = await crane.get(`/v2/${REPO}/manifests/${digestOf('39')}`, {
      accept: OCI_MANIFEST,
    });
    expect(ociIndex.status).toBe(404);
    const dockerList = await crane.get(`/v2/${REPO}/manifests/${digestOf('docker')}`, {
      accept: DOCKER_MANIFEST,
    });
    expect(dockerList.status).toBe(200);
    expect(dockerList.headers['docker-content-digest']).toBe(digestOf('docker'));
  });

  it('treats */* as accepting anything', async () => {
    const r = await crane.get(`/v2/${REPO}/manifests/39`, { accept: '*/*' });
    expect(r.headers['content-type']).toBe(OCI_INDEX);
  });
});

describe('blobs', () => {
  it('HEAD answers size and digest from metadata', async () => {
    const layer = repo().images['39']![0]!.layers[0]!;
    const r = await crane.get(`/v2/${REPO}/blobs/${layer}`, {}, 'HEAD');
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(repo().blobs[layer]!.length));
    expect(r.headers['docker-content-digest']).toBe(layer);
    expect(r.headers.location).toBeUndefined();
  });

  it('GET redirects (307) to the blob base URL', async () => {
    const layer = repo().images['39']![0]!.layers[0]!;
    const hex = layer.slice(7);
    const r = await crane.get(`/v2/${REPO}/blobs/${layer}`);
    expect(r.status).toBe(307);
    expect(r.headers.location).toBe(
      `http://mirrors.test/pub/containers/blobs/sha256/${hex.slice(0, 2)}/${hex}`,
    );
    expect(r.headers['docker-content-digest']).toBe(layer);
  });

  it('answers BLOB_UNKNOWN for a digest outside this repository, even if it is in the tree', async () => {
    const foreign = tree.repositories['fedora/other']!.images.latest![0]!.layers[0]!;
    const r = await crane.get(`/v2/${REPO}/blobs/${foreign}`);
    expect(r.status).toBe(404);
    expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('BLOB_UNKNOWN');
    const head = await crane.get(`/v2/${REPO}/blobs/${foreign}`, {}, 'HEAD');
    expect(head.status).toBe(404);
    expect(head.body.length).toBe(0);
  });

  it('rejects a malformed digest with DIGEST_INVALID', async () => {
    const r = await crane.get(`/v2/${REPO}/blobs/sha256:1234`);
    expect(r.status).toBe(400);
    expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('DIGEST_INVALID');
  });
});

describe('tags/list and _catalog', () => {
  it('lists all tags sorted', async () => {
    const r = await crane.get(`/v2/${REPO}/tags/list`);
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ name: REPO, tags: Object.keys(repo().tags).sort() });
    expect(r.headers.link).toBeUndefined();
  });

  it('paginates tags with n, last and Link', async () => {
    const all = Object.keys(repo().tags).sort();
    const seen: string[] = [];
    let next: string | undefined = `/v2/${REPO}/tags/list?n=3`;
    for (let i = 0; i < 10 && next; i++) {
      const r = await crane.get(next);
      expect(r.status).toBe(200);
      const page = r.json<{ tags: string[] }>().tags;
      expect(page.length).toBeLessThanOrEqual(3);
      seen.push(...page);
      const link = r.headers.link as string | undefined;
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
    }
    expect(seen).toEqual(all);
    const after = await crane.get(`/v2/${REPO}/tags/list?last=${encodeURIComponent(all[1]!)}&n=2`);
    expect(after.json<{ tags: string[] }>().tags).toEqual(all.slice(2, 4));
  });

  it('paginates the catalog', async () => {
    const all = [REPO, 'fedora/other', 'list/a', 'list/b', 'list/c', 'list/d', 'list/e'].sort();
    const first = await crane.get('/v2/_catalog?n=4');
    expect(first.json()).toEqual({ repositories: all.slice(0, 4) });
    expect(first.headers.link).toBe(
      `</v2/_catalog?last=${encodeURIComponent(all[3]!)}&n=4>; rel="next"`,
    );
    const second = await crane.get(`/v2/_catalog?last=${encodeURIComponent(all[3]!)}&n=4`);
    expect(second.json()).toEqual({ repositories: all.slice(4) });
    expect(second.headers.link).toBeUndefined();
    expect((await crane.get('/v2/_catalog')).json()).toEqual({ repositories: all });
  });

  it('rejects a bad n', async () => {
    const r = await crane.get('/v2/_catalog?n=-1');
    expect(r.status).toBe(400);
  });
});

describe('referrers', () => {
  it('lists the manifests whose subject is the digest', async () => {
    const subject = repo().tags['39']!;
    const r = await crane.get(`/v2/${REPO}/referrers/${subject}`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(OCI_INDEX);
    const index = r.json<{ manifests: { digest: string; artifactType: string }[] }>();
    expect(index.manifests.map((m) => m.digest).sort()).toEqual(
      [...repo().referrers[subject]!].sort(),
    );
    const filtered = await crane.get(
      `/v2/${REPO}/referrers/${subject}?artifactType=application%2Fvnd.example.sbom`,
    );
    expect(filtered.headers['oci-filters-applied']).toBe('artifactType');
    expect(filtered.json<{ manifests: unknown[] }>().manifests).toHaveLength(1);
  });

  it('answers an empty index when there are none', async () => {
    const r = await crane.get(`/v2/${REPO}/referrers/${repo().tags['40']!}`);
    expect(r.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });
});

describe('method and name checks', () => {
  it('answers 405 UNSUPPORTED to anything but GET and HEAD', async () => {
    for (const method of ['PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      const r = await crane.get(`/v2/${REPO}/manifests/39`, {}, method);
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
      expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('UNSUPPORTED');
    }
  });

  it('answers NAME_INVALID for names outside the grammar', async () => {
    for (const name of ['Fedora/httpd', 'fedora//httpd', '-x', 'a%2Fb']) {
      const r = await crane.get(`/v2/${name}/tags/list`);
      expect(r.status, name).toBe(400);
      expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('NAME_INVALID');
    }
    // a raw request line, since HTTP clients normalise dot segments away
    const raw = await rawRequest(
      crane.url,
      'GET /v2/fedora/../httpd/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('NAME_INVALID');
  });

  it('answers NAME_UNKNOWN for a repository that is not published', async () => {
    const r = await crane.get('/v2/fedora/nothing/manifests/latest');
    expect(r.status).toBe(404);
    expect(r.json<{ errors: { code: string }[] }>().errors[0]!.code).toBe('NAME_UNKNOWN');
  });

  it('serves nothing outside the metadata', async () => {
    for (const p of [
      '/v2/PUBLICATION',
      '/v2/repositories/fedora/httpd.json',
      '/v2/../PUBLICATION',
      '/v2/fedora/httpd/blobs/',
    ]) {
      const r = await crane.get(p);
      expect(r.status, p).toBeGreaterThanOrEqual(400);
      expect(r.body.toString()).not.toContain('schemaVersion');
    }
  });

  it('answers 414 to an overlong URL', async () => {
    const r = await crane.get(`/v2/${'a'.repeat(5000)}/tags/list`);
    expect(r.status).toBe(414);
  });

  it('leaves /healthz, /readyz and /metrics to the express app', async () => {
    expect((await crane.get('/healthz')).status).toBe(200);
    expect((await crane.get('/readyz')).status).toBe(200);
    const metrics = await crane.get('/metrics');
    expect(metrics.body.toString()).toContain('flotilla_crane_publication');
    expect(metrics.body.toString()).toMatch(
      /flotilla_http_request_duration_seconds_count\{[^}]*route="\/v2\/:name\/manifests\/:reference"/,
    );
  });
});

function rawRequest(base: string, text: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
  });
}

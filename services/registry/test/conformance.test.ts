/**
 * The OCI distribution-spec conformance workflows (v1.1: pull, push, content discovery,
 * content management, automatic cross-mount), case by case as in
 * opencontainers/distribution-spec `conformance/0[1-4]_*_test.go`, against the in-process
 * registry.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRegistry, type TestRegistry } from './harness.js';
import {
  content,
  imageManifest,
  indexManifest,
  makeApi,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  type ApiResponse,
} from './http.js';

let reg: TestRegistry;
const api = makeApi(() => reg.url);
const NAME = 'conformance/test';
const CROSS = 'conformance/cross';
const dummyDigest = `sha256:${'0'.repeat(64)}`;

beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

async function pushBlob(
  name: string,
  blob: { bytes: Buffer; digest: string },
): Promise<ApiResponse> {
  const start = await api('POST', `/v2/${name}/blobs/uploads/`);
  expect(start.status).toBe(202);
  const location = start.headers.get('location') as string;
  return api('PUT', `${location}?digest=${blob.digest}`, {
    body: blob.bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
}

function okOr(status: number, ...others: number[]): boolean {
  return (status >= 200 && status < 300) || others.includes(status);
}

describe('pull', () => {
  const config = content(
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
  );
  const layer = content(randomBytes(2048));
  const manifest = imageManifest(config, [layer]);
  const tag = 'tagtest0';

  it('setup: pushes a config, a layer (chunked) and a manifest by tag', async () => {
    expect((await pushBlob(NAME, config)).status).toBe(201);
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`, {
      headers: { 'content-length': '0' },
    });
    const location = start.headers.get('location') as string;
    const patch = await api('PATCH', location, {
      body: layer.bytes,
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `0-${layer.size - 1}`,
      },
    });
    expect(patch.status).toBe(202);
    const put = await api('PUT', `${patch.headers.get('location')}?digest=${layer.digest}`);
    expect(put.status).toBe(201);
    const res = await api('PUT', `/v2/${NAME}/manifests/${tag}`, {
      body: manifest.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(res.status).toBe(201);
  });

  it('HEAD request to nonexistent blob should result in 404 response', async () => {
    expect((await api('HEAD', `/v2/${NAME}/blobs/${dummyDigest}`)).status).toBe(404);
  });

  it('HEAD request to existing blob should yield 200 with Content-Length and Docker-Content-Digest', async () => {
    const res = await api('HEAD', `/v2/${NAME}/blobs/${layer.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(layer.size));
    expect(res.headers.get('docker-content-digest')).toBe(layer.digest);
    expect(res.body.length).toBe(0);
  });

  it('GET nonexistent blob should result in 404 response', async () => {
    const res = await api('GET', `/v2/${NAME}/blobs/${dummyDigest}`);
    expect(res.status).toBe(404);
    expect(res.errorCode()).toBe('BLOB_UNKNOWN');
  });

  it('GET request to existing blob URL should yield 200', async () => {
    const res = await api('GET', `/v2/${NAME}/blobs/${layer.digest}`);
    expect(res.status).toBe(200);
    expect(res.body.equals(layer.bytes)).toBe(true);
  });

  it('HEAD request to manifest path (digest and tag) should yield 200 response', async () => {
    for (const ref of [manifest.digest, tag]) {
      const res = await api('HEAD', `/v2/${NAME}/manifests/${ref}`, {
        headers: { accept: OCI_MANIFEST },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(manifest.digest);
      expect(res.headers.get('content-length')).toBe(String(manifest.size));
    }
  });

  it('GET nonexistent manifest should return 404', async () => {
    // the suite (v1.1.1) asks for a reference that is neither a tag nor a digest
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await api(method, `/v2/${NAME}/manifests/.INVALID_MANIFEST_NAME`);
      expect(res.status).toBe(404);
      if (method === 'GET') expect(res.errorCode()).toBe('MANIFEST_UNKNOWN');
    }
    // writing under such a name is still a malformed request
    const put = await api('PUT', `/v2/${NAME}/manifests/.INVALID_MANIFEST_NAME`, {
      body: manifest.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(put.status).toBe(400);
    expect(put.errorCode()).toBe('MANIFEST_INVALID');
    const missing = await api('GET', `/v2/${NAME}/manifests/nonexistent`);
    expect(missing.status).toBe(404);
    expect(missing.errorCode()).toBe('MANIFEST_UNKNOWN');
  });

  it('GET request to manifest path (digest and tag) should yield 200 response with the exact bytes', async () => {
    for (const ref of [manifest.digest, tag]) {
      const res = await api('GET', `/v2/${NAME}/manifests/${ref}`, {
        headers: { accept: OCI_MANIFEST },
      });
      expect(res.status).toBe(200);
      expect(res.body.equals(manifest.bytes)).toBe(true);
      expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
    }
  });

  it('400 response body should contain OCI-conforming JSON message', async () => {
    const res = await api('GET', `/v2/${NAME}/manifests/sha256:totallywrong`);
    expect(res.status).toBe(400);
    expect(res.errorCode()).toBe('DIGEST_INVALID');
  });

  it('teardown: deletes blobs first, then the manifest (2xx)', async () => {
    expect(okOr((await api('DELETE', `/v2/${NAME}/blobs/${config.digest}`)).status, 404)).toBe(
      true,
    );
    expect(okOr((await api('DELETE', `/v2/${NAME}/blobs/${layer.digest}`)).status, 404)).toBe(true);
    expect((await api('DELETE', `/v2/${NAME}/manifests/${manifest.digest}`)).status).toBe(202);
  });
});

describe('push', () => {
  const blobA = content(randomBytes(1000));
  const config1 = content(
    '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}',
  );
  const layerBlob = content(randomBytes(3000));
  const blobB = content(randomBytes(4000));
  const chunk1 = blobB.bytes.subarray(0, 2000);
  const chunk2 = blobB.bytes.subarray(2000);
  const chunk1Range = `0-${chunk1.length - 1}`;
  const chunk2Range = `${chunk1.length}-${blobB.size - 1}`;
  const emptyConfig = content('{}');
  let last: ApiResponse;
  let prev: ApiResponse;

  it('streamed: PATCH request with blob in body should yield 202 response', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    expect(start.headers.get('location')).toBeTruthy();
    last = await api('PATCH', start.headers.get('location') as string, {
      body: blobA.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(last.status).toBe(202);
    expect(last.headers.get('range')).toBe(`0-${blobA.size - 1}`);
  });

  it('streamed: PUT request to session URL with digest should yield 201 response', async () => {
    const res = await api('PUT', `${last.headers.get('location')}?digest=${blobA.digest}`, {
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/${NAME}/blobs/${blobA.digest}`);
    expect(res.headers.get('docker-content-digest')).toBe(blobA.digest);
  });

  it('monolithic: GET nonexistent blob should result in 404 response', async () => {
    expect((await api('GET', `/v2/${NAME}/blobs/${dummyDigest}`)).status).toBe(404);
  });

  it('monolithic: POST request with digest and blob should yield a 201', async () => {
    last = await api('POST', `/v2/${NAME}/blobs/uploads/?digest=${config1.digest}`, {
      body: config1.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(last.status).toBe(201);
    expect(last.headers.get('location')).toBeTruthy();
  });

  it('monolithic: GET request to blob URL from prior request should yield 200', async () => {
    expect((await api('GET', `/v2/${NAME}/blobs/${config1.digest}`)).status).toBe(200);
  });

  it('monolithic: POST request should yield a session ID; PUT upload of a blob should yield a 201', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    expect(start.status).toBe(202);
    expect(start.headers.get('docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
    const res = await api('PUT', `${start.headers.get('location')}?digest=${layerBlob.digest}`, {
      body: layerBlob.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    expect((await api('GET', `/v2/${NAME}/blobs/${layerBlob.digest}`)).status).toBe(200);
  });

  it('chunked: out-of-order blob upload should return 416', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`, {
      headers: { 'content-length': '0' },
    });
    const res = await api('PATCH', start.headers.get('location') as string, {
      body: chunk2,
      headers: { 'content-type': 'application/octet-stream', 'content-range': chunk2Range },
    });
    expect(res.status).toBe(416);
    expect(res.headers.get('range')).toBe('0-0');
  });

  it('chunked: PATCH request with first chunk should return 202', async () => {
    prev = await api('POST', `/v2/${NAME}/blobs/uploads/`, { headers: { 'content-length': '0' } });
    last = await api('PATCH', prev.headers.get('location') as string, {
      body: chunk1,
      headers: { 'content-type': 'application/octet-stream', 'content-range': chunk1Range },
    });
    expect(last.status).toBe(202);
    expect(last.headers.get('range')).toBe(chunk1Range);
  });

  it('chunked: retry previous blob chunk should return 416', async () => {
    const res = await api('PATCH', prev.headers.get('location') as string, {
      body: chunk1,
      headers: { 'content-type': 'application/octet-stream', 'content-range': chunk1Range },
    });
    expect(res.status).toBe(416);
    expect(res.headers.get('range')).toBe(chunk1Range);
  });

  it('chunked: GET on stale blob upload should return 204 with a range and location', async () => {
    last = await api('GET', prev.headers.get('location') as string);
    expect(last.status).toBe(204);
    expect(last.headers.get('location')).toBeTruthy();
    expect(last.headers.get('range')).toBe(chunk1Range);
  });

  it('chunked: PATCH request with second chunk should return 202; PUT with digest should return 201', async () => {
    last = await api('PATCH', last.headers.get('location') as string, {
      body: chunk2,
      headers: { 'content-type': 'application/octet-stream', 'content-range': chunk2Range },
    });
    expect(last.status).toBe(202);
    const res = await api('PUT', `${last.headers.get('location')}?digest=${blobB.digest}`, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': '0' },
    });
    expect(res.status).toBe(201);
    const got = await api('GET', `/v2/${NAME}/blobs/${blobB.digest}`);
    expect(got.body.equals(blobB.bytes)).toBe(true);
  });

  it('chunked: PUT with the final chunk (Content-Range) finishes the upload', async () => {
    const start = await api('POST', `/v2/${NAME}/blobs/uploads/`);
    const patch = await api('PATCH', start.headers.get('location') as string, {
      body: chunk1,
      headers: { 'content-range': chunk1Range },
    });
    const res = await api('PUT', `${patch.headers.get('location')}?digest=${blobB.digest}`, {
      body: chunk2,
      headers: { 'content-range': chunk2Range },
    });
    expect(res.status).toBe(201);
  });

  it('cross-mount: without from, of a nonexistent blob, yields a session id (202)', async () => {
    const res = await api('POST', `/v2/${CROSS}/blobs/uploads/?mount=${dummyDigest}`);
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toMatch(new RegExp(`^/v2/${CROSS}/blobs/uploads/`));
  });

  it("cross-mount: POST request to mount another repository's blob should return 201", async () => {
    last = await api('POST', `/v2/${CROSS}/blobs/uploads/?mount=${blobA.digest}&from=${NAME}`);
    expect(last.status).toBe(201);
    expect(last.headers.get('location')).toBe(`/v2/${CROSS}/blobs/${blobA.digest}`);
    expect((await api('GET', last.headers.get('location') as string)).status).toBe(200);
  });

  it('cross-mount: a mount from a repository without the blob yields a session (202)', async () => {
    const res = await api(
      'POST',
      `/v2/${CROSS}/blobs/uploads/?mount=${blobB.digest}&from=conformance/empty`,
    );
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toMatch(new RegExp(`^/v2/${CROSS}/blobs/uploads/`));
  });

  it('cross-mount: without from, automatic content discovery returns 201', async () => {
    const res = await api('POST', `/v2/conformance/auto/blobs/uploads/?mount=${layerBlob.digest}`);
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/conformance/auto/blobs/${layerBlob.digest}`);
    expect((await api('HEAD', `/v2/conformance/auto/blobs/${layerBlob.digest}`)).status).toBe(200);
  });

  it('manifest: GET nonexistent manifest should return 404', async () => {
    expect((await api('GET', `/v2/${NAME}/manifests/nonexistent`)).status).toBe(404);
  });

  const manifest1 = imageManifest(config1, [layerBlob]);
  it('manifest: PUT should accept a manifest upload (four tags)', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await api('PUT', `/v2/${NAME}/manifests/test${i}`, {
        body: manifest1.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('location')).toBe(`/v2/${NAME}/manifests/${manifest1.digest}`);
      expect(res.headers.get('docker-content-digest')).toBe(manifest1.digest);
    }
  });

  it('manifest: registry should accept a manifest upload with no layers', async () => {
    expect((await pushBlob(NAME, emptyConfig)).status).toBe(201);
    const empty = imageManifest(emptyConfig, [], {}, OCI_EMPTY);
    const res = await api('PUT', `/v2/${NAME}/manifests/emptylayer`, {
      body: empty.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(res.status).toBe(201);
  });

  it('manifest: GET request to manifest URL (digest) should yield 200 response', async () => {
    const res = await api('GET', `/v2/${NAME}/manifests/${manifest1.digest}`, {
      headers: { accept: OCI_MANIFEST },
    });
    expect(res.status).toBe(200);
  });

  it('manifest: PUT by digest, with several ?tag= at once', async () => {
    const res = await api(
      'PUT',
      `/v2/${NAME}/manifests/${manifest1.digest}?tag=multi1&tag=multi2`,
      {
        body: manifest1.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      },
    );
    expect(res.status).toBe(201);
    for (const tag of ['multi1', 'multi2']) {
      const got = await api('GET', `/v2/${NAME}/manifests/${tag}`);
      expect(got.headers.get('docker-content-digest')).toBe(manifest1.digest);
    }
  });

  it('teardown: deletes blobs and manifests created in tests (2xx)', async () => {
    expect((await api('DELETE', `/v2/${NAME}/blobs/${config1.digest}`)).status).toBe(202);
    expect((await api('DELETE', `/v2/${NAME}/manifests/${manifest1.digest}`)).status).toBe(202);
    expect((await api('GET', `/v2/${NAME}/manifests/test0`)).status).toBe(404);
  });
});

describe('content discovery', () => {
  const NAME2 = 'conformance/discovery';
  const config = content(
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"discovery":1}',
  );
  const layer = content(randomBytes(500));
  const emptyJson = content('{}');
  const refBlobA = content('reference blob A');
  const refBlobB = content('reference blob B');
  const typeA = 'application/vnd.flotilla.test.a';
  const typeB = 'application/vnd.flotilla.test.b';
  const subject = imageManifest(config, [layer]);
  const missingSubject = imageManifest(content('{"missing":true}'), []);
  const subjectDescriptor = (m: typeof subject) => ({
    mediaType: OCI_MANIFEST,
    digest: m.digest,
    size: m.size,
  });
  const annotation = (v: string) => ({ annotations: { 'org.opencontainers.conformance.test': v } });
  const refAConfig = imageManifest(
    refBlobA,
    [emptyJson],
    { subject: subjectDescriptor(subject), ...annotation('A config') },
    typeA,
  );
  const refALayer = content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: typeA,
      config: { mediaType: OCI_EMPTY, digest: emptyJson.digest, size: emptyJson.size },
      layers: [
        { mediaType: 'application/octet-stream', digest: refBlobA.digest, size: refBlobA.size },
      ],
      subject: subjectDescriptor(subject),
      ...annotation('A layer'),
    }),
  );
  const refBConfig = imageManifest(
    refBlobB,
    [emptyJson],
    { subject: subjectDescriptor(subject), ...annotation('B config') },
    typeB,
  );
  const refBLayer = content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: typeB,
      config: { mediaType: OCI_EMPTY, digest: emptyJson.digest, size: emptyJson.size },
      layers: [
        { mediaType: 'application/octet-stream', digest: refBlobB.digest, size: refBlobB.size },
      ],
      subject: subjectDescriptor(subject),
      ...annotation('B layer'),
    }),
  );
  const refIndex = indexManifest([refAConfig, refALayer], {
    artifactType: 'application/vnd.flotilla.test.index',
    subject: subjectDescriptor(subject),
    ...annotation('index'),
  });
  const refC = content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: typeA,
      config: { mediaType: OCI_EMPTY, digest: emptyJson.digest, size: emptyJson.size },
      layers: [
        { mediaType: 'application/octet-stream', digest: refBlobA.digest, size: refBlobA.size },
      ],
      subject: subjectDescriptor(missingSubject),
      ...annotation('C'),
    }),
  );

  it('setup: tags, references (before and after the subject, to a missing subject), with OCI-Subject', async () => {
    for (const b of [config, layer, emptyJson, refBlobA])
      expect((await pushBlob(NAME2, b)).status).toBe(201);
    for (let i = 0; i < 4; i++) {
      const res = await api('PUT', `/v2/${NAME2}/manifests/test${i}`, {
        body: subject.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expect(res.status).toBe(201);
    }
    for (const m of [refAConfig, refALayer]) {
      const res = await api('PUT', `/v2/${NAME2}/manifests/${m.digest}`, {
        body: m.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('oci-subject')).toBe(subject.digest);
    }
    let res = await api('PUT', `/v2/${NAME2}/manifests/${refIndex.digest}`, {
      body: refIndex.bytes,
      headers: { 'content-type': OCI_INDEX },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('oci-subject')).toBe(subject.digest);
    expect((await pushBlob(NAME2, refBlobB)).status).toBe(201);
    for (const m of [refBConfig, refBLayer]) {
      res = await api('PUT', `/v2/${NAME2}/manifests/${m.digest}`, {
        body: m.bytes,
        headers: { 'content-type': OCI_MANIFEST },
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('oci-subject')).toBe(subject.digest);
    }
    res = await api('PUT', `/v2/${NAME2}/manifests/${refC.digest}`, {
      body: refC.bytes,
      headers: { 'content-type': OCI_MANIFEST },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('oci-subject')).toBe(missingSubject.digest);
  });

  it('GET request to list tags should yield 200 response, sorted', async () => {
    const res = await api('GET', `/v2/${NAME2}/tags/list`);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ name: NAME2, tags: ['test0', 'test1', 'test2', 'test3'] });
  });

  it('GET number of tags should be limitable by `n` query parameter, with a Link header', async () => {
    const res = await api('GET', `/v2/${NAME2}/tags/list?n=2`);
    expect(res.json<{ tags: string[] }>().tags).toEqual(['test0', 'test1']);
    expect(res.headers.get('link')).toBe(`</v2/${NAME2}/tags/list?n=2&last=test1>; rel="next"`);
  });

  it('GET start of tag is set by `last` query parameter', async () => {
    const res = await api('GET', `/v2/${NAME2}/tags/list?n=2&last=test1`);
    expect(res.json<{ tags: string[] }>().tags).toEqual(['test2', 'test3']);
    expect(res.headers.get('link')).toBeNull();
  });

  it('tags/list of an unknown repository is NAME_UNKNOWN', async () => {
    const res = await api('GET', `/v2/conformance/nothing-here/tags/list`);
    expect(res.status).toBe(404);
    expect(res.errorCode()).toBe('NAME_UNKNOWN');
  });

  it('GET referrers of a nonexistent subject should result in an empty 200 index', async () => {
    const res = await api('GET', `/v2/${NAME2}/referrers/${dummyDigest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_INDEX);
    expect(res.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });

  it('GET referrers of an existing subject should yield 200 with five descriptors and annotations', async () => {
    const res = await api('GET', `/v2/${NAME2}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_INDEX);
    const index = res.json<{
      manifests: Array<{
        digest: string;
        artifactType?: string;
        annotations?: Record<string, string>;
        size: number;
        mediaType: string;
      }>;
    }>();
    expect(index.manifests).toHaveLength(5);
    const byDigest = new Map(index.manifests.map((m) => [m.digest, m]));
    expect(byDigest.get(refAConfig.digest)).toMatchObject({
      artifactType: typeA,
      size: refAConfig.size,
      mediaType: OCI_MANIFEST,
      annotations: { 'org.opencontainers.conformance.test': 'A config' },
    });
    expect(byDigest.get(refALayer.digest)?.artifactType).toBe(typeA);
    expect(byDigest.get(refIndex.digest)).toMatchObject({
      mediaType: OCI_INDEX,
      artifactType: 'application/vnd.flotilla.test.index',
    });
    expect(byDigest.get(refBLayer.digest)?.annotations).toEqual({
      'org.opencontainers.conformance.test': 'B layer',
    });
  });

  it('GET referrers with an artifactType filter should yield 200 with OCI-Filters-Applied', async () => {
    const res = await api(
      'GET',
      `/v2/${NAME2}/referrers/${subject.digest}?artifactType=${encodeURIComponent(typeA)}`,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('oci-filters-applied')).toBe('artifactType');
    const digests = res
      .json<{ manifests: Array<{ digest: string }> }>()
      .manifests.map((m) => m.digest)
      .sort();
    expect(digests).toEqual([refAConfig.digest, refALayer.digest].sort());
  });

  it('GET referrers of a missing manifest should yield 200 with the one referrer', async () => {
    const res = await api('GET', `/v2/${NAME2}/referrers/${missingSubject.digest}`);
    expect(
      res.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest),
    ).toEqual([refC.digest]);
  });

  it('a deleted referrer disappears from the referrers list', async () => {
    expect((await api('DELETE', `/v2/${NAME2}/manifests/${refC.digest}`)).status).toBe(202);
    const res = await api('GET', `/v2/${NAME2}/referrers/${missingSubject.digest}`);
    expect(res.json<{ manifests: unknown[] }>().manifests).toEqual([]);
  });

  it('teardown: deletes manifests by digest and by tag (2xx or 404)', async () => {
    for (const ref of [
      refIndex.digest,
      subject.digest,
      refAConfig.digest,
      refALayer.digest,
      'test0',
      refBConfig.digest,
      refBLayer.digest,
    ]) {
      const res = await api('DELETE', `/v2/${NAME2}/manifests/${ref}`);
      expect(okOr(res.status, 404)).toBe(true);
    }
  });
});

describe('content management', () => {
  const NAME3 = 'conformance/management';
  const config = content(
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"mgmt":1}',
  );
  const layer = content(randomBytes(700));
  const manifest = imageManifest(config, [layer]);

  it('setup: pushes a manifest with two tags', async () => {
    for (const b of [config, layer]) expect((await pushBlob(NAME3, b)).status).toBe(201);
    for (const tag of ['tagA', 'tagB']) {
      expect(
        (
          await api('PUT', `/v2/${NAME3}/manifests/${tag}`, {
            body: manifest.bytes,
            headers: { 'content-type': OCI_MANIFEST },
          })
        ).status,
      ).toBe(201);
    }
  });

  it('DELETE request to manifest tag should return 202; the tag is gone, the manifest stays', async () => {
    expect((await api('DELETE', `/v2/${NAME3}/manifests/tagA`)).status).toBe(202);
    expect((await api('GET', `/v2/${NAME3}/manifests/tagA`)).status).toBe(404);
    expect((await api('GET', `/v2/${NAME3}/manifests/${manifest.digest}`)).status).toBe(200);
    expect((await api('GET', `/v2/${NAME3}/tags/list`)).json()).toEqual({
      name: NAME3,
      tags: ['tagB'],
    });
  });

  it('DELETE request to manifest (digest) should yield 202 response; GET afterwards 404; its tags go with it', async () => {
    expect((await api('DELETE', `/v2/${NAME3}/manifests/${manifest.digest}`)).status).toBe(202);
    expect((await api('GET', `/v2/${NAME3}/manifests/${manifest.digest}`)).status).toBe(404);
    expect((await api('GET', `/v2/${NAME3}/manifests/tagB`)).status).toBe(404);
    expect((await api('GET', `/v2/${NAME3}/tags/list`)).json()).toEqual({ name: NAME3, tags: [] });
    expect((await api('DELETE', `/v2/${NAME3}/manifests/${manifest.digest}`)).status).toBe(404);
  });

  it('DELETE request to blob URL should yield 202 response; GET afterwards 404', async () => {
    for (const b of [config, layer]) {
      expect((await api('DELETE', `/v2/${NAME3}/blobs/${b.digest}`)).status).toBe(202);
      expect((await api('GET', `/v2/${NAME3}/blobs/${b.digest}`)).status).toBe(404);
    }
    expect((await api('DELETE', `/v2/${NAME3}/blobs/${layer.digest}`)).status).toBe(404);
  });

  it('deletes are refused with 405 UNSUPPORTED when disabled', async () => {
    const locked = await startTestRegistry({ deleteEnabled: false });
    try {
      const lockedApi = makeApi(() => locked.url);
      const res = await lockedApi('DELETE', `/v2/${NAME3}/manifests/${manifest.digest}`);
      expect(res.status).toBe(405);
      expect(res.errorCode()).toBe('UNSUPPORTED');
      const blob = await lockedApi('DELETE', `/v2/${NAME3}/blobs/${layer.digest}`);
      expect(blob.status).toBe(405);
    } finally {
      await locked.stop();
    }
  });
});

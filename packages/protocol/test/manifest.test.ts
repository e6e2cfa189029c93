import { describe, expect, it } from 'vitest';
import {
  MANIFEST_MEDIA_TYPES,
  MAX_MANIFEST_BYTES,
  MediaType,
  SCHEMA1_REFUSAL,
  artifactTypeOf,
  blobDescriptors,
  childManifests,
  digestOf,
  isImageManifestMediaType,
  isIndexMediaType,
  isManifestMediaType,
  normalizeMediaType,
  parseManifest,
} from '../src/index.js';
import {
  D1,
  D2,
  D3,
  D512,
  bytes,
  dockerManifest,
  dockerManifestList,
  ociCode,
  ociErrorOf,
  ociIndex,
  ociManifest,
} from './fixtures.js';

describe('media types', () => {
  it('lists the four accepted manifest types', () => {
    expect([...MANIFEST_MEDIA_TYPES].sort()).toEqual(
      [
        MediaType.OCI_MANIFEST,
        MediaType.OCI_INDEX,
        MediaType.DOCKER_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
      ].sort(),
    );
  });
  it('classifies types, ignoring parameters and case', () => {
    expect(isManifestMediaType(`${MediaType.OCI_MANIFEST}; charset=utf-8`)).toBe(true);
    expect(isManifestMediaType(MediaType.OCI_CONFIG)).toBe(false);
    expect(isManifestMediaType(MediaType.DOCKER_SCHEMA1)).toBe(false);
    expect(isIndexMediaType(MediaType.DOCKER_MANIFEST_LIST.toUpperCase())).toBe(true);
    expect(isIndexMediaType(MediaType.OCI_MANIFEST)).toBe(false);
    expect(isImageManifestMediaType(MediaType.DOCKER_MANIFEST)).toBe(true);
    expect(isImageManifestMediaType(42)).toBe(false);
    expect(normalizeMediaType(' Application/JSON ; x=y')).toBe('application/json');
  });
});

describe('parseManifest accepts', () => {
  it('an OCI image manifest, keeping config, layers and annotations', () => {
    const raw = bytes(
      ociManifest({ annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' } }),
    );
    const m = parseManifest(raw, MediaType.OCI_MANIFEST);
    expect(m.mediaType).toBe(MediaType.OCI_MANIFEST);
    expect(m.kind).toBe('image');
    expect(m.digest).toBe(digestOf(raw));
    expect(m.size).toBe(raw.byteLength);
    expect(m.config).toEqual({ mediaType: MediaType.OCI_CONFIG, digest: D1, size: 1469 });
    expect(m.layers.map((l) => l.digest)).toEqual([D2, D3]);
    expect(m.layers[1]!.annotations).toEqual({ 'org.example': 'x' });
    expect(m.manifests).toEqual([]);
    expect(m.annotations).toEqual({ 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
    expect(blobDescriptors(m).map((d) => d.digest)).toEqual([D1, D2, D3]);
    expect(childManifests(m)).toEqual([]);
    expect(artifactTypeOf(m)).toBe(MediaType.OCI_CONFIG);
  });

  it('an OCI index, keeping platforms', () => {
    const m = parseManifest(bytes(ociIndex()), MediaType.OCI_INDEX);
    expect(m.kind).toBe('index');
    expect(m.config).toBeUndefined();
    expect(m.layers).toEqual([]);
    expect(childManifests(m).map((d) => d.digest)).toEqual([D2, D3]);
    expect(m.manifests[1]!.platform).toEqual({
      architecture: 'arm64',
      os: 'linux',
      variant: 'v8',
      'os.features': ['x'],
    });
    expect(blobDescriptors(m)).toEqual([]);
    expect(artifactTypeOf(m)).toBeUndefined();
  });

  it('a Docker schema 2 manifest, keeping urls of foreign layers', () => {
    const m = parseManifest(bytes(dockerManifest()), MediaType.DOCKER_MANIFEST);
    expect(m.mediaType).toBe(MediaType.DOCKER_MANIFEST);
    expect(m.kind).toBe('image');
    expect(m.config?.mediaType).toBe(MediaType.DOCKER_CONFIG);
    expect(m.layers[1]!.urls).toEqual(['https://example.com/layer.tar.gz']);
  });

  it('a Docker manifest list', () => {
    const m = parseManifest(bytes(dockerManifestList()), MediaType.DOCKER_MANIFEST_LIST);
    expect(m.kind).toBe('index');
    expect(m.manifests[0]!.platform).toEqual({ architecture: 'ppc64le', os: 'linux' });
  });

  it('an artifact manifest with subject and artifactType, and an empty layer list', () => {
    const subject = { mediaType: MediaType.OCI_MANIFEST, digest: D3, size: 100 };
    const raw = bytes(
      ociManifest({
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: MediaType.OCI_EMPTY, digest: D1, size: 2, data: 'e30=' },
        layers: [],
        subject,
      }),
    );
    const m = parseManifest(raw, MediaType.OCI_MANIFEST);
    expect(m.subject).toEqual(subject);
    expect(m.artifactType).toBe('application/vnd.example.sbom');
    expect(artifactTypeOf(m)).toBe('application/vnd.example.sbom');
    expect(m.layers).toEqual([]);
  });

  it('an index with subject and artifactType', () => {
    const m = parseManifest(
      bytes(
        ociIndex({
          subject: { mediaType: MediaType.OCI_INDEX, digest: D512, size: 5 },
          artifactType: 'x/y',
        }),
      ),
    );
    expect(m.subject?.digest).toBe(D512);
    expect(m.artifactType).toBe('x/y');
  });

  it('resolves the media type from the body when there is no Content-Type', () => {
    expect(parseManifest(bytes(dockerManifest())).mediaType).toBe(MediaType.DOCKER_MANIFEST);
    expect(parseManifest(bytes(dockerManifestList())).mediaType).toBe(
      MediaType.DOCKER_MANIFEST_LIST,
    );
    expect(parseManifest(bytes(ociIndex())).mediaType).toBe(MediaType.OCI_INDEX);
  });

  it('infers OCI types by shape when neither Content-Type nor mediaType says', () => {
    const { mediaType: _m, ...image } = ociManifest();
    const { mediaType: _i, ...index } = ociIndex();
    expect(parseManifest(bytes(image)).mediaType).toBe(MediaType.OCI_MANIFEST);
    expect(parseManifest(bytes(index)).mediaType).toBe(MediaType.OCI_INDEX);
    expect(parseManifest(bytes(image), 'application/json').mediaType).toBe(MediaType.OCI_MANIFEST);
    expect(parseManifest(bytes(index), MediaType.OCI_INDEX).mediaType).toBe(MediaType.OCI_INDEX);
  });

  it('ignores Content-Type parameters and case', () => {
    const m = parseManifest(
      bytes(ociManifest()),
      `${MediaType.OCI_MANIFEST.toUpperCase()}; charset=utf-8`,
    );
    expect(m.mediaType).toBe(MediaType.OCI_MANIFEST);
  });

  it('hashes the exact bytes, whitespace included', () => {
    const raw = bytes(JSON.stringify(ociManifest(), null, 3));
    expect(parseManifest(raw).digest).toBe(digestOf(raw));
    expect(parseManifest(raw).digest).not.toBe(digestOf(bytes(ociManifest())));
  });

  it('accepts exactly MAX_MANIFEST_BYTES', () => {
    const base = JSON.stringify(ociManifest());
    const raw = bytes(base.slice(0, -1) + ' '.repeat(MAX_MANIFEST_BYTES - base.length) + '}');
    expect(raw.byteLength).toBe(MAX_MANIFEST_BYTES);
    expect(parseManifest(raw).size).toBe(MAX_MANIFEST_BYTES);
  });
});

describe('parseManifest refuses', () => {
  it('more than 4 MiB with SIZE_INVALID and status 413', () => {
    const err = ociErrorOf(() => parseManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1)));
    expect(err.code).toBe('SIZE_INVALID');
    expect(err.status).toBe(413);
  });

  it.each([
    ['invalid JSON', '{"schemaVersion": 2,'],
    ['empty body', ''],
    ['a JSON array', '[]'],
    ['JSON null', 'null'],
    ['a JSON string', '"x"'],
  ])('%s with MANIFEST_INVALID', (_what, text) => {
    expect(ociCode(() => parseManifest(bytes(text), MediaType.OCI_MANIFEST))).toBe(
      'MANIFEST_INVALID',
    );
    expect(ociCode(() => parseManifest(bytes(text)))).toBe('MANIFEST_INVALID');
  });

  it('invalid UTF-8 with MANIFEST_INVALID', () => {
    expect(ociCode(() => parseManifest(new Uint8Array([0x7b, 0xff, 0x7d])))).toBe(
      'MANIFEST_INVALID',
    );
  });

  it('a mediaType field that contradicts the Content-Type', () => {
    const err = ociErrorOf(() => parseManifest(bytes(ociManifest()), MediaType.OCI_INDEX));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/contradicts Content-Type/);
    expect(ociCode(() => parseManifest(bytes(dockerManifest()), MediaType.OCI_MANIFEST))).toBe(
      'MANIFEST_INVALID',
    );
  });

  it('a shape that does not match the Content-Type', () => {
    const { mediaType: _m, ...image } = ociManifest();
    expect(ociCode(() => parseManifest(bytes(image), MediaType.OCI_INDEX))).toBe(
      'MANIFEST_INVALID',
    );
  });

  it.each([
    [
      'a malformed layer digest',
      { layers: [{ mediaType: MediaType.OCI_LAYER, digest: 'sha256:abc', size: 1 }] },
    ],
    [
      'an uppercase digest',
      { layers: [{ mediaType: MediaType.OCI_LAYER, digest: D2.toUpperCase(), size: 1 }] },
    ],
    [
      'an unsupported digest algorithm',
      { layers: [{ mediaType: MediaType.OCI_LAYER, digest: 'md5:abc', size: 1 }] },
    ],
    ['a negative size', { layers: [{ mediaType: MediaType.OCI_LAYER, digest: D2, size: -1 }] }],
    ['a fractional size', { layers: [{ mediaType: MediaType.OCI_LAYER, digest: D2, size: 1.5 }] }],
    ['a size as a string', { layers: [{ mediaType: MediaType.OCI_LAYER, digest: D2, size: '1' }] }],
    ['a huge size', { layers: [{ mediaType: MediaType.OCI_LAYER, digest: D2, size: 1e300 }] }],
    ['a descriptor without mediaType', { layers: [{ digest: D2, size: 1 }] }],
    ['a missing config', { config: undefined }],
    [
      'a bad config digest',
      { config: { mediaType: MediaType.OCI_CONFIG, digest: 'nope', size: 1 } },
    ],
    ['layers that are not an array', { layers: {} }],
    ['schemaVersion 3', { schemaVersion: 3 }],
    ['no schemaVersion', { schemaVersion: undefined }],
    ['a bad subject', { subject: { mediaType: MediaType.OCI_MANIFEST, digest: D1, size: -5 } }],
    ['non-string annotations', { annotations: { a: 1 } }],
    ['a mediaType that is not a string', { mediaType: 7 }],
  ])('%s in an OCI manifest with MANIFEST_INVALID', (_what, patch) => {
    expect(ociCode(() => parseManifest(bytes(ociManifest(patch))))).toBe('MANIFEST_INVALID');
  });

  it('bad descriptors in an index', () => {
    const index = ociIndex({
      manifests: [{ mediaType: MediaType.OCI_MANIFEST, digest: D1, size: -1 }],
    });
    expect(ociCode(() => parseManifest(bytes(index)))).toBe('MANIFEST_INVALID');
    const list = dockerManifestList({
      manifests: [{ mediaType: MediaType.DOCKER_MANIFEST, digest: 'x', size: 1 }],
    });
    expect(ociCode(() => parseManifest(bytes(list)))).toBe('MANIFEST_INVALID');
    const platform = ociIndex({
      manifests: [
        { mediaType: MediaType.OCI_MANIFEST, digest: D1, size: 1, platform: { os: 'linux' } },
      ],
    });
    expect(ociCode(() => parseManifest(bytes(platform)))).toBe('MANIFEST_INVALID');
  });

  it('a Docker manifest without its mediaType field', () => {
    const { mediaType: _m, ...body } = dockerManifest();
    expect(ociCode(() => parseManifest(bytes(body), MediaType.DOCKER_MANIFEST))).toBe(
      'MANIFEST_INVALID',
    );
  });

  it('a body whose type cannot be determined', () => {
    expect(ociErrorOf(() => parseManifest(bytes({ schemaVersion: 2 }))).message).toMatch(
      /cannot determine/,
    );
    expect(
      ociCode(() => parseManifest(bytes(ociManifest({ mediaType: MediaType.OCI_CONFIG })))),
    ).toBe('MANIFEST_INVALID');
  });

  it.each([MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED])(
    'Docker schema 1 by Content-Type %s',
    (type) => {
      const err = ociErrorOf(() =>
        parseManifest(bytes({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [] }), type),
      );
      expect(err.code).toBe('UNSUPPORTED');
      expect(err.message).toBe(SCHEMA1_REFUSAL);
      expect(err.message).toBe('Docker schema 1 manifests are not supported; push schema 2 or OCI');
      expect(err.status).toBe(415);
    },
  );

  it('Docker schema 1 by schemaVersion 1 or mediaType in the body', () => {
    const body = {
      schemaVersion: 1,
      name: 'a',
      tag: 'b',
      architecture: 'amd64',
      fsLayers: [],
      history: [],
    };
    expect(ociErrorOf(() => parseManifest(bytes(body))).message).toBe(SCHEMA1_REFUSAL);
    expect(ociErrorOf(() => parseManifest(bytes(body), 'application/json')).code).toBe(
      'UNSUPPORTED',
    );
    expect(ociErrorOf(() => parseManifest(bytes(body), MediaType.OCI_MANIFEST)).code).toBe(
      'UNSUPPORTED',
    );
    expect(
      ociErrorOf(() => parseManifest(bytes({ mediaType: MediaType.DOCKER_SCHEMA1 }))).code,
    ).toBe('UNSUPPORTED');
  });

  it('an unknown Content-Type with UNSUPPORTED 415', () => {
    const err = ociErrorOf(() =>
      parseManifest(bytes(ociManifest()), 'application/vnd.oci.artifact.manifest.v1+json'),
    );
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.status).toBe(415);
  });
});

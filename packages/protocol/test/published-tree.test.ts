import { describe, expect, it } from 'vitest';
import {
  MediaType,
  PublishedPaths,
  PublishedTreeError,
  legacyView,
  publishedView,
  digestOf,
  formatPublicationMarker,
  parsePublicationMarker,
  parsePublicationRecord,
  parseRepositoryMetadata,
  publicationRecordSchema,
  repositoryMetadataSchema,
} from '../src/index.js';
import { D1, D2, D512, ociCode } from './fixtures.js';

const MANIFEST_BYTES = Buffer.from('{"schemaVersion":2}');
const MANIFEST_DIGEST = digestOf(MANIFEST_BYTES);

function metadata(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 1,
    repository: 'fedora/httpd',
    publication: 42,
    tags: { '39': MANIFEST_DIGEST, latest: MANIFEST_DIGEST },
    manifests: {
      [MANIFEST_DIGEST]: {
        mediaType: MediaType.OCI_INDEX,
        size: MANIFEST_BYTES.byteLength,
        data: MANIFEST_BYTES.toString('base64'),
      },
    },
    blobs: { [D1]: 5242880, [D2]: 0 },
    ...extra,
  };
}

function treeError(fn: () => unknown): PublishedTreeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PublishedTreeError) return err;
    throw err;
  }
  throw new Error('expected a PublishedTreeError');
}

describe('PublishedPaths', () => {
  it('builds blob paths for sha256 only', () => {
    expect(PublishedPaths.blob(D1)).toBe(`blobs/sha256/${D1.slice(7, 9)}/${D1.slice(7)}`);
    expect(ociCode(() => PublishedPaths.blob(D512))).toBe('UNSUPPORTED');
    expect(ociCode(() => PublishedPaths.blob('sha256:../../x'))).toBe('DIGEST_INVALID');
    expect(ociCode(() => PublishedPaths.blob('md5:abc'))).toBe('UNSUPPORTED');
  });

  it('builds repository paths from valid names only', () => {
    expect(PublishedPaths.repository('fedora/httpd')).toBe('repositories/fedora/httpd.json');
    for (const name of [
      '../etc/passwd',
      'a/../../b',
      '%2e%2e/x',
      '/abs',
      'a//b',
      'A',
      '',
      'a/.',
      'a'.repeat(256),
    ]) {
      expect(ociCode(() => PublishedPaths.repository(name))).toBe('NAME_INVALID');
    }
  });

  it('builds publication paths and names the marker', () => {
    expect(PublishedPaths.publication(0)).toBe('publications/0.json');
    expect(PublishedPaths.publication(42)).toBe('publications/42.json');
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(treeError(() => PublishedPaths.publication(n)).code).toBe('PUBLICATION_INVALID');
    }
    expect(PublishedPaths.marker).toBe('PUBLICATION');
  });

  it('gives each channel a view of its own, apart from the shared blobs and records', () => {
    const testing = publishedView('testing');
    expect(testing.channel).toBe('testing');
    expect(testing.marker).toBe('channels/testing/PUBLICATION');
    expect(testing.repositoriesDir).toBe('channels/testing/repositories');
    expect(testing.repository('fedora/httpd')).toBe(
      'channels/testing/repositories/fedora/httpd.json',
    );
    expect(PublishedPaths.channelRepository('stable', 'a')).toBe(
      'channels/stable/repositories/a.json',
    );
    expect(PublishedPaths.channelMarker('stable')).toBe('channels/stable/PUBLICATION');
    expect(ociCode(() => testing.repository('../x'))).toBe('NAME_INVALID');
    for (const channel of ['', '..', 'a/b', 'Stable', '-x', 'a'.repeat(65), 'x y']) {
      expect(treeError(() => publishedView(channel)).code).toBe('CHANNEL_INVALID');
    }
  });

  it('reads trees written before channels through the root view', () => {
    const legacy = legacyView();
    expect(legacy.channel).toBeNull();
    expect(legacy.marker).toBe('PUBLICATION');
    expect(legacy.repositoriesDir).toBe('repositories');
    expect(legacy.repository('fedora/httpd')).toBe('repositories/fedora/httpd.json');
  });
});

describe('PUBLICATION marker', () => {
  it.each([
    ['42', 42],
    ['0', 0],
    ['42\n', 42],
    ['  7 \r\n', 7],
    ['007', 7],
  ])('parses %j', (text, n) => {
    expect(parsePublicationMarker(text)).toBe(n);
    expect(parsePublicationMarker(Buffer.from(text))).toBe(n);
  });

  it.each(['', ' ', '-1', '1.5', '1e3', '0x10', '4 2', 'abc', '١٢', '9'.repeat(16), '+1'])(
    'refuses %j',
    (text) => {
      expect(treeError(() => parsePublicationMarker(text)).code).toBe('MARKER_INVALID');
    },
  );

  it('formats what it parses', () => {
    expect(formatPublicationMarker(42)).toBe('42\n');
    expect(parsePublicationMarker(formatPublicationMarker(123456))).toBe(123456);
    expect(treeError(() => formatPublicationMarker(-1)).code).toBe('PUBLICATION_INVALID');
  });
});

describe('repository metadata', () => {
  it('parses the documented shape from text, bytes or a value', () => {
    const value = metadata();
    const text = JSON.stringify(value);
    for (const input of [text, Buffer.from(text), value]) {
      const parsed = parseRepositoryMetadata(input);
      expect(parsed.repository).toBe('fedora/httpd');
      expect(parsed.tags['39']).toBe(MANIFEST_DIGEST);
      expect(parsed.manifests[MANIFEST_DIGEST]?.mediaType).toBe(MediaType.OCI_INDEX);
      expect(parsed.blobs[D1]).toBe(5242880);
    }
    expect(repositoryMetadataSchema.safeParse(value).success).toBe(true);
  });

  it('never resolves a tag through Object.prototype', () => {
    const text = JSON.stringify(metadata()).replace('"latest"', '"__proto__"');
    const parsed = parseRepositoryMetadata(text);
    expect(Object.keys(parsed.tags).sort()).toEqual(['39', '__proto__']);
    expect(parsed.tags['__proto__']).toBe(MANIFEST_DIGEST);
    expect(parsed.tags['constructor']).toBeUndefined();
    expect(parsed.tags['toString']).toBeUndefined();
    expect(JSON.parse(JSON.stringify(parsed))).toEqual(JSON.parse(text));
  });

  it.each([
    ['invalid JSON', '{'],
    ['schemaVersion 2', metadata({ schemaVersion: 2 })],
    ['a bad repository name', metadata({ repository: '../x' })],
    ['a negative publication', metadata({ publication: -1 })],
    ['a bad tag', metadata({ tags: { '-x': MANIFEST_DIGEST } })],
    ['a tag to a bad digest', metadata({ tags: { x: 'sha256:1' } })],
    ['a tag to a manifest that is not listed', metadata({ tags: { x: D2 } })],
    ['tags as an array', metadata({ tags: [] })],
    [
      'a manifest whose size differs from its data',
      metadata({
        manifests: { [MANIFEST_DIGEST]: { mediaType: MediaType.OCI_INDEX, size: 1, data: 'e30=' } },
      }),
    ],
    [
      'a manifest with a non-manifest media type',
      metadata({
        manifests: {
          [MANIFEST_DIGEST]: { mediaType: MediaType.OCI_CONFIG, size: 2, data: 'e30=' },
        },
      }),
    ],
    [
      'manifest data that is not base64',
      metadata({
        manifests: { [MANIFEST_DIGEST]: { mediaType: MediaType.OCI_INDEX, size: 2, data: '{}' } },
      }),
    ],
    ['a sha512 blob', metadata({ blobs: { [D512]: 1 } })],
    ['a negative blob size', metadata({ blobs: { [D1]: -1 } })],
  ])('refuses %s with METADATA_INVALID', (_what, input) => {
    const err = treeError(() => parseRepositoryMetadata(input));
    expect(err.code).toBe('METADATA_INVALID');
  });
});

describe('publication records', () => {
  const record = {
    schemaVersion: 1,
    publication: 42,
    channel: 'stable',
    time: '2024-05-01T12:00:00.000Z',
    repositories: ['fedora/httpd', 'fedora/nginx'],
    newBlobs: [D1, D2],
  };

  it('parses the documented shape', () => {
    expect(publicationRecordSchema.parse(record)).toEqual(record);
    expect(parsePublicationRecord(JSON.stringify(record))).toEqual(record);
  });

  it.each([
    ['a bad time', { time: 'now' }],
    ['a fractional publication', { publication: 1.5 }],
    ['a bad repository', { repositories: ['A'] }],
    ['newBlobs as a count', { newBlobs: 2 }],
    ['a sha512 new blob', { newBlobs: [D512] }],
    ['an empty channel', { channel: '' }],
  ])('refuses %s', (_what, patch) => {
    expect(treeError(() => parsePublicationRecord({ ...record, ...patch })).code).toBe(
      'METADATA_INVALID',
    );
  });
});

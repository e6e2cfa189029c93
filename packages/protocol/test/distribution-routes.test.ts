import { describe, expect, it } from 'vitest';
import { OciError, parseV2Path } from '../src/index.js';

describe('parseV2Path', () => {
  it.each([
    ['/v2', { kind: 'base' }],
    ['/v2/', { kind: 'base' }],
    ['/v2/_catalog', { kind: 'catalog' }],
    ['/v2/a/b/tags/list', { kind: 'tags', name: 'a/b' }],
    [
      '/v2/a/manifests/b/manifests/latest',
      { kind: 'manifest', name: 'a/manifests/b', reference: 'latest' },
    ],
    [
      '/v2/x/manifests/y/blobs/sha256:ab',
      { kind: 'blob', name: 'x/manifests/y', reference: 'sha256:ab' },
    ],
    ['/v2/a/b/referrers/sha256%3Aab', { kind: 'referrers', name: 'a/b', reference: 'sha256:ab' }],
    ['/v2/a/blobs/uploads/', { kind: 'uploads', name: 'a' }],
    ['/v2/a/blobs/uploads', { kind: 'uploads', name: 'a' }],
    ['/v2/a/blobs/uploads/0f3c-id', { kind: 'upload', name: 'a', reference: '0f3c-id' }],
    [
      '/v2/a/blobs/uploads/blobs/sha256:ab',
      { kind: 'blob', name: 'a/blobs/uploads', reference: 'sha256:ab' },
    ],
    ['/v2/a/b/blobs/', { kind: 'unknown' }],
    ['/v2/manifests/x', { kind: 'unknown' }],
    ['/v2/a/manifests/x/y', { kind: 'unknown' }],
    ['/v2/tags/list', { kind: 'unknown' }],
    ['/v2x/a/manifests/b', { kind: 'unknown' }],
  ])('%s', (path, route) => {
    expect(parseV2Path(path)).toEqual(route);
  });

  it.each([
    '/v2/a/manifests/%zz',
    '/v2/a/blobs/sha256%3',
    '/v2/a/blobs/uploads/%',
    '/v2/a/referrers/%E0%A4%A',
  ])('refuses a malformed %% in %s as NAME_INVALID (400)', (path) => {
    let error: unknown;
    try {
      parseV2Path(path);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).code).toBe('NAME_INVALID');
    expect((error as OciError).status).toBe(400);
  });
});

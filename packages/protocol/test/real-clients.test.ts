import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MediaType,
  SCHEMA1_REFUSAL,
  childManifests,
  digestOf,
  parseManifest,
} from '../src/index.js';
import { ociErrorOf } from './fixtures.js';

/**
 * Manifests written by the real clients installed here (buildah 1.28.2 `push dir:` and
 * `manifest push --all`, skopeo 1.9.3 `copy --format v2s1`), stored byte for byte in test/data.
 */
function load(name: string): Buffer {
  return readFileSync(new URL(`./data/${name}`, import.meta.url));
}

describe('manifests produced by real clients', () => {
  it.each([
    ['buildah-oci-manifest.manifest', MediaType.OCI_MANIFEST, 'image'],
    ['buildah-docker-manifest.manifest', MediaType.DOCKER_MANIFEST, 'image'],
    ['buildah-oci-index.manifest', MediaType.OCI_INDEX, 'index'],
    ['buildah-docker-manifest-list.manifest', MediaType.DOCKER_MANIFEST_LIST, 'index'],
    ['buildah-oci-index-child.manifest', MediaType.OCI_MANIFEST, 'image'],
    ['buildah-docker-manifest-list-child.manifest', MediaType.DOCKER_MANIFEST, 'image'],
  ])('%s parses as %s, with and without Content-Type', (file, mediaType, kind) => {
    const raw = load(file);
    for (const parsed of [parseManifest(raw, mediaType), parseManifest(raw)]) {
      expect(parsed.mediaType).toBe(mediaType);
      expect(parsed.kind).toBe(kind);
      expect(parsed.digest).toBe(digestOf(raw));
      expect(parsed.size).toBe(raw.byteLength);
    }
  });

  it('index children are referenced by the digest and size of their exact bytes', () => {
    for (const [index, child] of [
      ['buildah-oci-index.manifest', 'buildah-oci-index-child.manifest'],
      ['buildah-docker-manifest-list.manifest', 'buildah-docker-manifest-list-child.manifest'],
    ] as const) {
      const [entry] = childManifests(parseManifest(load(index)));
      const raw = load(child);
      expect(entry).toMatchObject({
        digest: digestOf(raw),
        size: raw.byteLength,
        platform: { architecture: 'arm64', os: 'linux' },
      });
    }
  });

  it('keeps annotations written by buildah', () => {
    expect(parseManifest(load('buildah-oci-manifest.manifest')).annotations).toMatchObject({
      'org.example': 'yes',
    });
  });

  it('refuses a signed schema 1 manifest from skopeo with the clear message', () => {
    const raw = load('skopeo-schema1-signed.manifest');
    for (const type of [undefined, MediaType.DOCKER_SCHEMA1_SIGNED, 'application/json']) {
      const err = ociErrorOf(() => parseManifest(raw, type));
      expect(err.code).toBe('UNSUPPORTED');
      expect(err.message).toBe(SCHEMA1_REFUSAL);
    }
  });
});

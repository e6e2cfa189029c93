import { digestOf, EventError, MediaType, OciError, PublishedTreeError } from '../src/index.js';

export const D1 = digestOf('config');
export const D2 = digestOf('layer-1');
export const D3 = digestOf('layer-2');
export const D512 = digestOf('x', 'sha512');

export function bytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
}

export function ociManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OCI_MANIFEST,
    config: { mediaType: MediaType.OCI_CONFIG, digest: D1, size: 1469 },
    layers: [
      { mediaType: MediaType.OCI_LAYER_GZIP, digest: D2, size: 32654 },
      {
        mediaType: MediaType.OCI_LAYER_ZSTD,
        digest: D3,
        size: 16724,
        annotations: { 'org.example': 'x' },
      },
    ],
    ...extra,
  };
}

export function ociIndex(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OCI_INDEX,
    manifests: [
      {
        mediaType: MediaType.OCI_MANIFEST,
        digest: D2,
        size: 7143,
        platform: { architecture: 'amd64', os: 'linux' },
      },
      {
        mediaType: MediaType.OCI_MANIFEST,
        digest: D3,
        size: 7682,
        platform: { architecture: 'arm64', os: 'linux', variant: 'v8', 'os.features': ['x'] },
      },
    ],
    ...extra,
  };
}

export function dockerManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.DOCKER_MANIFEST,
    config: { mediaType: MediaType.DOCKER_CONFIG, digest: D1, size: 7023 },
    layers: [
      { mediaType: MediaType.DOCKER_LAYER_GZIP, digest: D2, size: 32654 },
      {
        mediaType: MediaType.DOCKER_FOREIGN_LAYER,
        digest: D3,
        size: 73109,
        urls: ['https://example.com/layer.tar.gz'],
      },
    ],
    ...extra,
  };
}

export function dockerManifestList(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.DOCKER_MANIFEST_LIST,
    manifests: [
      {
        mediaType: MediaType.DOCKER_MANIFEST,
        digest: D2,
        size: 7143,
        platform: { architecture: 'ppc64le', os: 'linux' },
      },
    ],
    ...extra,
  };
}

export function isTypedError(err: unknown): boolean {
  return err instanceof OciError || err instanceof EventError || err instanceof PublishedTreeError;
}

/** Runs fn; a typed error is an acceptable outcome, anything else is rethrown. */
export function valueOrTypedError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isTypedError(err)) throw err;
  }
}

export function ociCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof OciError) return err.code;
    throw err;
  }
  throw new Error('expected an OciError, nothing was thrown');
}

export function ociErrorOf(fn: () => unknown): OciError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OciError) return err;
    throw err;
  }
  throw new Error('expected an OciError, nothing was thrown');
}

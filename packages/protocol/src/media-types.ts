/**
 * Media types of the OCI image spec and Docker's image manifest v2. Docker schema 1 is
 * listed only so it can be recognised and refused with a clear message.
 */
export const MediaType = {
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  OCI_CONFIG: 'application/vnd.oci.image.config.v1+json',
  OCI_EMPTY: 'application/vnd.oci.empty.v1+json',
  OCI_LAYER: 'application/vnd.oci.image.layer.v1.tar',
  OCI_LAYER_GZIP: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OCI_LAYER_ZSTD: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OCI_LAYER_NONDIST: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OCI_LAYER_NONDIST_GZIP: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OCI_LAYER_NONDIST_ZSTD: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DOCKER_CONFIG: 'application/vnd.docker.container.image.v1+json',
  DOCKER_LAYER_GZIP: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DOCKER_FOREIGN_LAYER: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DOCKER_SCHEMA1: 'application/vnd.docker.distribution.manifest.v1+json',
  DOCKER_SCHEMA1_SIGNED: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type MediaTypeValue = (typeof MediaType)[keyof typeof MediaType];

/** The four manifest media types Flotilla accepts, stores and serves. */
export const MANIFEST_MEDIA_TYPES = [
  MediaType.OCI_MANIFEST,
  MediaType.OCI_INDEX,
  MediaType.DOCKER_MANIFEST,
  MediaType.DOCKER_MANIFEST_LIST,
] as const;

export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

export const INDEX_MEDIA_TYPES = [MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST] as const;
export const IMAGE_MANIFEST_MEDIA_TYPES = [
  MediaType.OCI_MANIFEST,
  MediaType.DOCKER_MANIFEST,
] as const;
export const SCHEMA1_MEDIA_TYPES = [
  MediaType.DOCKER_SCHEMA1,
  MediaType.DOCKER_SCHEMA1_SIGNED,
] as const;

/**
 * `application/vnd.oci.image.index.v1+json; charset=utf-8` → `application/vnd.oci.image.index.v1+json`:
 * drops parameters, trims and lower-cases (media types are case-insensitive).
 */
export function normalizeMediaType(value: string): string {
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}

/**
 * One of the four accepted manifest types (image manifests and indexes, OCI and Docker).
 * These predicates accept a raw Content-Type (parameters and case are ignored).
 */
export function isManifestMediaType(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    (MANIFEST_MEDIA_TYPES as readonly string[]).includes(normalizeMediaType(value))
  );
}

/** An OCI index or a Docker manifest list. */
export function isIndexMediaType(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    (INDEX_MEDIA_TYPES as readonly string[]).includes(normalizeMediaType(value))
  );
}

/** An OCI image manifest or a Docker schema 2 manifest. */
export function isImageManifestMediaType(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    (IMAGE_MANIFEST_MEDIA_TYPES as readonly string[]).includes(normalizeMediaType(value))
  );
}

export function isSchema1MediaType(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    (SCHEMA1_MEDIA_TYPES as readonly string[]).includes(normalizeMediaType(value))
  );
}

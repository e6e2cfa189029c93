/**
 * Writes a published tree exactly in the format docs/architecture.md fixes, for tests of the
 * services that read it (crane, mirrors):
 *
 * ```
 * <root>/
 *   blobs/sha256/<first 2 hex>/<64 hex>   every layer, config and manifest, exact bytes
 *   repositories/<name>.json              { schemaVersion: 1, repository, publication, tags,
 *                                           manifests: {digest: {mediaType, size, data}},
 *                                           blobs: {digest: size} }
 *   publications/<n>.json                 { schemaVersion: 1, publication, channel, time,
 *                                           repositories, newBlobs }
 *   PUBLICATION                           "<n>\n", written last, by rename
 * ```
 *
 * That is the single view of trees written before channels (`layout: 'root'`, the default);
 * `layout: 'channels'` writes the repository files and a marker under `channels/<channel>/`
 * instead, as content does now.
 *
 * Images are real: each layer is a gzip'd tar holding one file of random bytes, and the config
 * carries the matching `rootfs.diff_ids`, so podman can unpack what it pulls. An index has two
 * platforms (linux/amd64 and linux/arm64) unless told otherwise.
 *
 * It is deliberately self-contained (node:crypto, node:zlib, node:fs only): it is an
 * independent oracle of the format, so a bug in @flotilla/protocol's paths or schemas does
 * not hide itself in the tests.
 *
 * Appending: call it again on the same root with a higher `publication`; only blobs that were
 * not in the tree yet are listed in that publication's `newBlobs`, and only the repositories
 * named are rewritten (others keep their metadata).
 *
 * ```ts
 * const tree = await writePublishedTree(root, {
 *   publication: 1,
 *   repositories: [{ name: 'fedora/httpd', tags: { '39': {}, latest: { kind: 'image' } } }],
 * });
 * tree.repositories['fedora/httpd'].tags['39'] // the index digest
 * ```
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export type ManifestFlavour = 'oci' | 'docker';

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** What to put behind a tag. `{}` is an OCI index with linux/amd64 and linux/arm64 children. */
export interface ManifestSpec {
  /** `index` (default) or a single-platform `image`. */
  kind?: 'index' | 'image';
  /** OCI media types (default) or Docker schema2 / manifest list. */
  flavour?: ManifestFlavour;
  /** Index children (default linux/amd64 + linux/arm64); for an image, its config platform. */
  platforms?: PlatformSpec[];
  /** Layers per image (default 2). */
  layers?: number;
  /** Random bytes in each layer's single file (default 1024). */
  layerSize?: number;
}

export interface ArtifactSpec {
  /** The tag whose manifest this artifact refers to (`subject`). */
  subjectTag: string;
  artifactType?: string;
}

export interface RepositorySpec {
  name: string;
  tags: Record<string, ManifestSpec>;
  /** Referrers (OCI manifests with a `subject`), untagged but present in `manifests`. */
  artifacts?: ArtifactSpec[];
}

export interface TreeSpec {
  publication: number;
  channel?: string;
  repositories: RepositorySpec[];
  /** Skip writing PUBLICATION (to simulate a publication in progress). */
  withoutMarker?: boolean;
  /**
   * `root` (default): the single view of trees written before channels, `repositories/` at the
   * root. `channels`: the channel's own view, `channels/<channel>/repositories/<name>.json` and
   * `channels/<channel>/PUBLICATION` (written before the root `PUBLICATION`).
   */
  layout?: 'root' | 'channels';
}

export interface WrittenManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

export interface WrittenRepository {
  name: string;
  /** tag → manifest digest */
  tags: Record<string, string>;
  /** every manifest in the metadata, by digest */
  manifests: Record<string, WrittenManifest>;
  /** every layer and config, by digest */
  blobs: Record<string, Buffer>;
  /** per tag: the image manifests under it (the tag's own digest when it is an image) */
  images: Record<
    string,
    Array<{ digest: string; platform: PlatformSpec; config: string; layers: string[] }>
  >;
  /** the referrers written, by subject digest */
  referrers: Record<string, string[]>;
  /** the metadata object written to repositories/<name>.json */
  metadata: RepositoryMetadataFile;
}

export interface RepositoryMetadataFile {
  schemaVersion: 1;
  repository: string;
  publication: number;
  tags: Record<string, string>;
  manifests: Record<string, { mediaType: string; size: number; data: string }>;
  blobs: Record<string, number>;
}

export interface WrittenTree {
  root: string;
  publication: number;
  channel: string;
  repositories: Record<string, WrittenRepository>;
  /** digests of the blobs this publication added (also in publications/<n>.json) */
  newBlobs: string[];
}

const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const DEFAULT_PLATFORMS: PlatformSpec[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
];

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Relative path of a blob in the tree: `blobs/sha256/<2 hex>/<64 hex>`. */
export function blobPath(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
}

async function writeAtomically(file: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** A one-file ustar archive. */
function tarOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number): void => {
    header.write(value, offset, Math.min(Buffer.byteLength(value), length), 'utf8');
  };
  const octal = (n: number, length: number): string =>
    n.toString(8).padStart(length - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(content.length, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  header.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

interface BuildContext {
  blobs: Map<string, Buffer>;
}

function addBlob(ctx: BuildContext, bytes: Buffer): string {
  const digest = sha256Digest(bytes);
  ctx.blobs.set(digest, bytes);
  return digest;
}

function buildImage(
  ctx: BuildContext,
  repo: WrittenRepository,
  flavour: ManifestFlavour,
  platform: PlatformSpec,
  spec: ManifestSpec,
): { digest: string; bytes: Buffer; mediaType: string; layers: string[]; config: string } {
  const layerCount = spec.layers ?? 2;
  const layerSize = spec.layerSize ?? 1024;
  const layers: Array<{ mediaType: string; digest: string; size: number }> = [];
  const diffIds: string[] = [];
  for (let i = 0; i < layerCount; i++) {
    const tar = tarOneFile(
      `layer-${i}-${randomBytes(4).toString('hex')}.bin`,
      randomBytes(layerSize),
    );
    diffIds.push(sha256Digest(tar));
    const gz = gzipSync(tar);
    const digest = addBlob(ctx, gz);
    repo.blobs[digest] = gz;
    layers.push({
      mediaType: flavour === 'oci' ? MT.ociLayer : MT.dockerLayer,
      digest,
      size: gz.length,
    });
  }
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: { Env: ['PATH=/usr/bin'], Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: 'flotilla test tree' })),
    }),
  );
  const configDigest = addBlob(ctx, configBytes);
  repo.blobs[configDigest] = configBytes;
  const mediaType = flavour === 'oci' ? MT.ociManifest : MT.dockerManifest;
  const bytes = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType,
        config: {
          mediaType: flavour === 'oci' ? MT.ociConfig : MT.dockerConfig,
          digest: configDigest,
          size: configBytes.length,
        },
        layers,
      },
      null,
      3, // Distribution keeps whatever formatting was pushed; odd indentation proves we do too
    ),
  );
  const digest = addBlob(ctx, bytes);
  repo.manifests[digest] = { mediaType, bytes, digest };
  return { digest, bytes, mediaType, layers: layers.map((l) => l.digest), config: configDigest };
}

function buildRepository(
  ctx: BuildContext,
  spec: RepositorySpec,
  publication: number,
): WrittenRepository {
  const repo: WrittenRepository = {
    name: spec.name,
    tags: {},
    manifests: {},
    blobs: {},
    images: {},
    referrers: {},
    metadata: undefined as unknown as RepositoryMetadataFile,
  };
  for (const [tag, manifestSpec] of Object.entries(spec.tags)) {
    const flavour = manifestSpec.flavour ?? 'oci';
    const kind = manifestSpec.kind ?? 'index';
    if (kind === 'image') {
      const platform = manifestSpec.platforms?.[0] ?? DEFAULT_PLATFORMS[0]!;
      const image = buildImage(ctx, repo, flavour, platform, manifestSpec);
      repo.tags[tag] = image.digest;
      repo.images[tag] = [
        { digest: image.digest, platform, config: image.config, layers: image.layers },
      ];
      continue;
    }
    const platforms = manifestSpec.platforms ?? DEFAULT_PLATFORMS;
    const children = platforms.map((platform) => ({
      platform,
      image: buildImage(ctx, repo, flavour, platform, manifestSpec),
    }));
    const mediaType = flavour === 'oci' ? MT.ociIndex : MT.dockerList;
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        manifests: children.map(({ platform, image }) => ({
          mediaType: image.mediaType,
          digest: image.digest,
          size: image.bytes.length,
          platform,
        })),
      }),
    );
    const digest = addBlob(ctx, bytes);
    repo.manifests[digest] = { mediaType, bytes, digest };
    repo.tags[tag] = digest;
    repo.images[tag] = children.map(({ platform, image }) => ({
      digest: image.digest,
      platform,
      config: image.config,
      layers: image.layers,
    }));
  }
  for (const artifact of spec.artifacts ?? []) {
    const subjectDigest = repo.tags[artifact.subjectTag];
    if (!subjectDigest)
      throw new Error(`artifact subject tag ${artifact.subjectTag} is not in ${spec.name}`);
    const subject = repo.manifests[subjectDigest]!;
    const payload = randomBytes(64);
    const payloadDigest = addBlob(ctx, payload);
    repo.blobs[payloadDigest] = payload;
    const emptyConfig = Buffer.from('{}');
    const emptyDigest = addBlob(ctx, emptyConfig);
    repo.blobs[emptyDigest] = emptyConfig;
    const artifactType = artifact.artifactType ?? 'application/vnd.example.signature';
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
        layers: [
          { mediaType: 'application/octet-stream', digest: payloadDigest, size: payload.length },
        ],
        subject: {
          mediaType: subject.mediaType,
          digest: subjectDigest,
          size: subject.bytes.length,
        },
        annotations: { 'org.example.kind': 'test-referrer' },
      }),
    );
    const digest = addBlob(ctx, bytes);
    repo.manifests[digest] = { mediaType: MT.ociManifest, bytes, digest };
    (repo.referrers[subjectDigest] ??= []).push(digest);
  }
  repo.metadata = {
    schemaVersion: 1,
    repository: spec.name,
    publication,
    tags: { ...repo.tags },
    manifests: Object.fromEntries(
      Object.values(repo.manifests).map((m) => [
        m.digest,
        { mediaType: m.mediaType, size: m.bytes.length, data: m.bytes.toString('base64') },
      ]),
    ),
    blobs: Object.fromEntries(Object.entries(repo.blobs).map(([d, b]) => [d, b.length])),
  };
  return repo;
}

/** Writes (or appends) one publication to the tree at `root`; see the module comment. */
export async function writePublishedTree(root: string, spec: TreeSpec): Promise<WrittenTree> {
  const ctx: BuildContext = { blobs: new Map() };
  const channel = spec.channel ?? 'stable';
  const repositories: Record<string, WrittenRepository> = {};
  for (const repoSpec of spec.repositories) {
    repositories[repoSpec.name] = buildRepository(ctx, repoSpec, spec.publication);
  }
  const newBlobs: string[] = [];
  for (const [digest, bytes] of ctx.blobs) {
    const file = path.join(root, blobPath(digest));
    if (await exists(file)) continue;
    await writeAtomically(file, bytes);
    newBlobs.push(digest);
  }
  newBlobs.sort();
  const viewDir = spec.layout === 'channels' ? path.join(root, 'channels', channel) : root;
  for (const repo of Object.values(repositories)) {
    await writeAtomically(
      path.join(viewDir, 'repositories', `${repo.name}.json`),
      JSON.stringify(repo.metadata),
    );
  }
  await writeAtomically(
    path.join(root, 'publications', `${spec.publication}.json`),
    JSON.stringify({
      schemaVersion: 1,
      publication: spec.publication,
      channel,
      time: new Date().toISOString(),
      repositories: Object.keys(repositories).sort(),
      newBlobs,
    }),
  );
  if (!spec.withoutMarker) {
    if (spec.layout === 'channels')
      await writeAtomically(path.join(viewDir, 'PUBLICATION'), `${spec.publication}\n`);
    await writeAtomically(path.join(root, 'PUBLICATION'), `${spec.publication}\n`);
  }
  return { root, publication: spec.publication, channel, repositories, newBlobs };
}

/** Writes only the PUBLICATION marker (e.g. after `withoutMarker`). */
export async function writePublicationMarker(root: string, publication: number): Promise<void> {
  await writeAtomically(path.join(root, 'PUBLICATION'), `${publication}\n`);
}

/** Overwrites repositories/<name>.json with arbitrary bytes (to test corrupt metadata). */
export async function writeRawRepositoryMetadata(
  root: string,
  name: string,
  bytes: string | Buffer,
): Promise<void> {
  await writeAtomically(path.join(root, 'repositories', `${name}.json`), bytes);
}

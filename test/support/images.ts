/**
 * Test images, built in memory from random bytes: real tar+gzip layers (node:zlib), an OCI
 * config with correct `diff_ids` (podman checks them), an image manifest per platform and,
 * with two platforms, an OCI index.
 *
 * ```ts
 * const image = makeImage({ layers: 2, layerBytes: 64 * 1024, platforms: ['linux/amd64', 'linux/arm64'] });
 * const layout = await writeOciLayout(dir, image, 'v1');    // then: skopeo copy oci:<dir>:v1 docker://…
 * const pushed = await pushImage(url, 'fedora/httpd', '39', { layers: 2, layerBytes: 4096,
 *   auth: { username: 'admin', password } });                // pure HTTP (undici)
 * // pushed.digest → the tagged manifest (the index when two platforms), pushed.blobs → every blob digest
 * ```
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Blob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface ImageManifest {
  platform: { os: string; architecture: string; variant?: string };
  config: Blob;
  layers: Blob[];
  /** The manifest itself (its bytes are what gets pushed). */
  manifest: Blob;
}

export interface TestImage {
  /** One per platform. */
  images: ImageManifest[];
  /** Present with two or more platforms. */
  index?: Blob;
  /** What a tag points at: the index, or the single manifest. */
  top: Blob;
}

export interface MakeImageOptions {
  /** Layers per image (default 1). */
  layers?: number;
  /** Random bytes per layer before gzip (default 1024). */
  layerBytes?: number;
  /** `os/arch[/variant]` (default `['linux/amd64']`); two or more make an index. */
  platforms?: string[];
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blob(mediaType: string, bytes: Buffer): Blob {
  return { digest: sha256(bytes), mediaType, bytes };
}

/** A one-file ustar archive. */
function tarWithFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, '0')}\0`,
    136,
    12,
    'ascii',
  );
  header.write('        ', 148, 8, 'ascii');
  header.write('0', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024, 0)]);
}

export function makeImage(options: MakeImageOptions = {}): TestImage {
  const platforms = options.platforms ?? ['linux/amd64'];
  const images = platforms.map((spec, p): ImageManifest => {
    const [os = 'linux', architecture = 'amd64', variant] = spec.split('/');
    const layers: Blob[] = [];
    const diffIds: string[] = [];
    for (let i = 0; i < (options.layers ?? 1); i++) {
      const tar = tarWithFile(`file-${p}-${i}.bin`, randomBytes(options.layerBytes ?? 1024));
      diffIds.push(sha256(tar));
      layers.push(blob(OCI_LAYER_GZIP, gzipSync(tar, { level: 1 })));
    }
    const platform = variant === undefined ? { os, architecture } : { os, architecture, variant };
    const config = blob(
      OCI_CONFIG,
      Buffer.from(
        JSON.stringify({
          created: new Date().toISOString(),
          ...platform,
          config: { Cmd: ['/bin/true'] },
          rootfs: { type: 'layers', diff_ids: diffIds },
          history: diffIds.map(() => ({ created_by: 'flotilla test' })),
        }),
      ),
    );
    const manifest = blob(
      OCI_MANIFEST,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.bytes.length },
          layers: layers.map((l) => ({
            mediaType: l.mediaType,
            digest: l.digest,
            size: l.bytes.length,
          })),
        }),
      ),
    );
    return { platform, config, layers, manifest };
  });
  if (images.length === 1) return { images, top: (images[0] as ImageManifest).manifest };
  const index = blob(
    OCI_INDEX,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: images.map((i) => ({
          mediaType: OCI_MANIFEST,
          digest: i.manifest.digest,
          size: i.manifest.bytes.length,
          platform: i.platform,
        })),
      }),
    ),
  );
  return { images, index, top: index };
}

/** Every blob of the image, top-level manifest last. */
export function allBlobs(image: TestImage): Blob[] {
  const out: Blob[] = [];
  for (const i of image.images) out.push(i.config, ...i.layers, i.manifest);
  if (image.index) out.push(image.index);
  return out;
}

/**
 * Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) so that
 * `skopeo copy oci:<dir>:<tag> docker://…` can push it. Returns the skopeo source reference.
 */
export async function writeOciLayout(dir: string, image: TestImage, tag: string): Promise<string> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of allBlobs(image))
    await writeFile(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: image.top.mediaType,
          digest: image.top.digest,
          size: image.top.bytes.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return `oci:${dir}:${tag}`;
}

export interface PushOptions extends MakeImageOptions {
  auth?: { username: string; password: string };
  /** Push this image instead of making a new one. */
  image?: TestImage;
}

export interface PushedImage {
  /** The tagged manifest's digest (the index's with two platforms). */
  digest: string;
  image: TestImage;
  /** Every blob and manifest digest pushed. */
  blobs: string[];
}

/** Pushes an image over plain HTTP (monolithic blob uploads, manifests by digest, top by tag). */
export async function pushImage(
  url: string,
  repository: string,
  tag: string,
  options: PushOptions = {},
): Promise<PushedImage> {
  const image = options.image ?? makeImage(options);
  const headers: Record<string, string> = {};
  if (options.auth) {
    headers['authorization'] =
      `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`;
  }
  const base = url.replace(/\/+$/, '');
  const putBlob = async (b: Blob): Promise<void> => {
    const head = await request(`${base}/v2/${repository}/blobs/${b.digest}`, {
      method: 'HEAD',
      headers,
    });
    await head.body.dump();
    if (head.statusCode === 200) return;
    const start = await request(`${base}/v2/${repository}/blobs/uploads/`, {
      method: 'POST',
      headers,
    });
    await start.body.dump();
    const location = start.headers['location'];
    if (start.statusCode !== 202 || typeof location !== 'string')
      throw new Error(`upload start failed: ${start.statusCode}`);
    const target = new URL(location, `${base}/`);
    target.searchParams.set('digest', b.digest);
    const put = await request(target, {
      method: 'PUT',
      headers: {
        ...headers,
        'content-type': 'application/octet-stream',
        'content-length': String(b.bytes.length),
      },
      body: b.bytes,
    });
    const text = await put.body.text();
    if (put.statusCode !== 201) throw new Error(`blob upload failed: ${put.statusCode} ${text}`);
  };
  const putManifest = async (b: Blob, reference: string): Promise<void> => {
    const res = await request(`${base}/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': b.mediaType },
      body: b.bytes,
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`manifest push failed: ${res.statusCode} ${text}`);
  };
  for (const i of image.images) {
    await putBlob(i.config);
    for (const layer of i.layers) await putBlob(layer);
    if (image.index) await putManifest(i.manifest, i.manifest.digest);
  }
  await putManifest(image.top, tag);
  return { digest: image.top.digest, image, blobs: allBlobs(image).map((b) => b.digest) };
}

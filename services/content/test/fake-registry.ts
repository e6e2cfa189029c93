/**
 * A small in-process Docker Registry V2 server for content's tests: tags with `Link`
 * pagination, manifests by tag or digest (HEAD and GET), blobs, optional Basic or Bearer
 * (token realm) auth, a request log, and injected failures.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const sha256 = (b: Uint8Array | string): string =>
  `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Repo {
  tags: Map<string, string>;
  manifests: Map<string, { bytes: Buffer; mediaType: string }>;
  blobs: Map<string, Buffer>;
}

export interface FakeRegistryOptions {
  auth?: 'none' | 'basic' | 'bearer';
  username?: string;
  password?: string;
}

export interface ImageRef {
  digest: string;
  bytes: Buffer;
  mediaType: string;
  blobs: { digest: string; size: number }[];
}

export class FakeRegistry {
  readonly requests: string[] = [];
  /** TCP connections accepted so far. */
  connections = 0;
  private readonly repos = new Map<string, Repo>();
  private readonly failures: { prefix: string; status: number; remaining: number }[] = [];
  private server?: Server;
  /** Answers a request itself when it returns true (a registry misbehaving on purpose). */
  intercept?: (method: string, path: string, res: ServerResponse) => boolean;
  /** Blob digests whose GETs wait until their gate opens. */
  private readonly gates = new Map<string, Promise<void>>();
  /** Milliseconds each blob GET waits before answering. */
  blobDelayMs = 0;
  url = '';
  private readonly token = randomBytes(8).toString('hex');

  constructor(private readonly options: FakeRegistryOptions = {}) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', () => {
      this.connections += 1;
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** GETs of `digest` wait until the returned function is called. */
  gate(digest: string): () => void {
    let open: () => void = () => undefined;
    this.gates.set(digest, new Promise<void>((resolve) => (open = resolve)));
    return () => open();
  }

  /** The next `count` requests whose path starts with `prefix` answer `status`. */
  failNext(prefix: string, status: number, count = 1): void {
    this.failures.push({ prefix, status, remaining: count });
  }

  private repo(name: string): Repo {
    let r = this.repos.get(name);
    if (!r) {
      r = { tags: new Map(), manifests: new Map(), blobs: new Map() };
      this.repos.set(name, r);
    }
    return r;
  }

  addBlob(repo: string, bytes: Buffer): { digest: string; size: number } {
    const digest = sha256(bytes);
    this.repo(repo).blobs.set(digest, bytes);
    return { digest, size: bytes.length };
  }

  /** An OCI image with `layers` random layers of `layerSize` bytes, tagged `tag` when given. */
  addImage(
    repo: string,
    tag: string | undefined,
    options: { layers?: number; layerSize?: number; arch?: string } = {},
  ): ImageRef {
    const layers = Array.from({ length: options.layers ?? 2 }, () =>
      this.addBlob(repo, randomBytes(options.layerSize ?? 512)),
    );
    const config = this.addBlob(
      repo,
      Buffer.from(
        JSON.stringify({
          architecture: options.arch ?? 'amd64',
          os: 'linux',
          rootfs: { type: 'layers', diff_ids: [] },
          nonce: randomBytes(8).toString('hex'),
        }),
      ),
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    };
    return this.putManifest(repo, tag, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST, [
      config,
      ...layers,
    ]);
  }

  /** An OCI index over one image per architecture. */
  addIndex(
    repo: string,
    tag: string,
    archs: string[] = ['amd64', 'arm64'],
  ): ImageRef & { children: ImageRef[] } {
    const children = archs.map((arch) => this.addImage(repo, undefined, { arch }));
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((c, i) => ({
        mediaType: OCI_MANIFEST,
        digest: c.digest,
        size: c.bytes.length,
        platform: { os: 'linux', architecture: archs[i] },
      })),
    };
    const ref = this.putManifest(repo, tag, Buffer.from(JSON.stringify(index)), OCI_INDEX, []);
    return { ...ref, children };
  }

  putManifest(
    repo: string,
    tag: string | undefined,
    bytes: Buffer,
    mediaType: string,
    blobs: { digest: string; size: number }[],
  ): ImageRef {
    const digest = sha256(bytes);
    const r = this.repo(repo);
    r.manifests.set(digest, { bytes, mediaType });
    if (tag) r.tags.set(tag, digest);
    return { digest, bytes, mediaType, blobs };
  }

  tag(repo: string, tag: string, digest: string): void {
    this.repo(repo).tags.set(tag, digest);
  }

  untag(repo: string, tag: string): void {
    this.repo(repo).tags.delete(tag);
  }

  count(method: string, fragment: string): number {
    return this.requests.filter((r) => r.startsWith(`${method} `) && r.includes(fragment)).length;
  }

  private authorized(req: IncomingMessage): boolean {
    const mode = this.options.auth ?? 'none';
    const header = req.headers.authorization ?? '';
    if (mode === 'none') return true;
    if (mode === 'basic') {
      const expected = `Basic ${Buffer.from(`${this.options.username}:${this.options.password}`).toString('base64')}`;
      return header === expected;
    }
    return header === `Bearer ${this.token}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const failure = this.failures.find((f) => f.remaining > 0 && url.pathname.startsWith(f.prefix));
    if (failure) {
      failure.remaining--;
      res.writeHead(failure.status).end('injected failure');
      return;
    }
    if (this.intercept?.(req.method ?? 'GET', url.pathname, res)) return;
    if (url.pathname === '/token') {
      const expected = `Basic ${Buffer.from(`${this.options.username}:${this.options.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401).end();
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ token: this.token }));
      return;
    }
    if (!this.authorized(req)) {
      const challenge =
        this.options.auth === 'basic'
          ? 'Basic realm="fake"'
          : `Bearer realm="${this.url}/token",service="fake",scope="repository:x:pull"`;
      res
        .writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      res.writeHead(200).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(tags\/list|manifests\/([^/]+)|blobs\/([^/]+))$/.exec(url.pathname);
    const repo = m ? this.repos.get(m[1] as string) : undefined;
    if (!m || !repo) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
      return;
    }
    if (m[2] === 'tags/list') {
      const all = [...repo.tags.keys()].sort();
      const n = Number(url.searchParams.get('n') ?? all.length) || all.length;
      const last = url.searchParams.get('last');
      const start = last ? all.findIndex((t) => t > last) : 0;
      const page = start < 0 ? [] : all.slice(start, start + Math.min(n, 2));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      // Pages of two tags at most, so pagination is always exercised.
      const nextIndex = start + page.length;
      if (start >= 0 && nextIndex < all.length) {
        headers.link = `</v2/${m[1]}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1] as string)}>; rel="next"`;
      }
      res.writeHead(200, headers).end(JSON.stringify({ name: m[1], tags: page }));
      return;
    }
    if (m[3]) {
      const ref = decodeURIComponent(m[3]);
      const digest = ref.startsWith('sha256:') ? ref : repo.tags.get(ref);
      const manifest = digest ? repo.manifests.get(digest) : undefined;
      if (!digest || !manifest) {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
      res.writeHead(200, {
        'content-type': manifest.mediaType,
        'content-length': String(manifest.bytes.length),
        'docker-content-digest': digest,
      });
      res.end(req.method === 'HEAD' ? undefined : manifest.bytes);
      return;
    }
    const blob = repo.blobs.get(decodeURIComponent(m[4] as string));
    if (!blob) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return;
    }
    const send = () => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(blob.length),
      });
      res.end(req.method === 'HEAD' ? undefined : blob);
    };
    const gate = this.gates.get(decodeURIComponent(m[4] as string));
    if (gate) void gate.then(send);
    else if (this.blobDelayMs > 0) setTimeout(send, this.blobDelayMs);
    else send();
  }
}

/**
 * Tiny HTTP helpers for the registry's in-process tests: `api()` over fetch (JSON or bytes),
 * `raw()` over node:http for requests fetch refuses to make (no Content-Length, bad
 * Content-Length, aborted bodies), and manifest builders.
 */
import { connect } from 'node:net';
import { adminAuth, sha256 } from './harness.js';

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  json<T = unknown>(): T;
  errorCode(): string | undefined;
}

export interface ApiOptions {
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  /** Default: admin credentials; `false` = anonymous; a string = that Authorization header. */
  auth?: boolean | string;
}

export function makeApi(base: () => string) {
  return async function api(
    method: string,
    path: string,
    options: ApiOptions = {},
  ): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    delete headers['content-length']; // fetch computes it (and refuses to be told)
    const auth = options.auth ?? true;
    if (auth === true) headers['authorization'] = adminAuth;
    else if (typeof auth === 'string') headers['authorization'] = auth;
    const res = await fetch(`${base()}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: options.body }),
      redirect: 'manual',
    });
    const body = Buffer.from(await res.arrayBuffer());
    return {
      status: res.status,
      headers: res.headers,
      body,
      json<T>() {
        return JSON.parse(body.toString('utf8')) as T;
      },
      errorCode() {
        try {
          return (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code: string }> })
            .errors?.[0]?.code;
        } catch {
          return undefined;
        }
      },
    };
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A request with exactly the path and headers given, written to a socket by hand: fetch and
 * node:http normalise `..` and add Content-Length or Transfer-Encoding by themselves.
 */
export function raw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const socket = connect({ host: target.hostname, port: Number(target.port) });
    const lines = [`${method} ${path} HTTP/1.1`, `Host: ${target.host}`, 'Connection: close'];
    for (const [key, value] of Object.entries(headers)) lines.push(`${key}: ${value}`);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split).split('\r\n');
      const status = Number(head[0]?.split(' ')[1]);
      const parsed: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const colon = line.indexOf(':');
        parsed[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      let rest = text.slice(split + 4);
      if (parsed['transfer-encoding'] === 'chunked') {
        let out = '';
        for (;;) {
          const nl = rest.indexOf('\r\n');
          const size = Number.parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        rest = out;
      }
      resolve({ status, headers: parsed, body: rest });
    });
    const bodyBuffer = body === undefined ? undefined : Buffer.from(body);
    if (bodyBuffer !== undefined && headers['transfer-encoding'] === 'chunked') {
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      socket.write(`${bodyBuffer.length.toString(16)}\r\n`);
      socket.write(bodyBuffer);
      socket.end('\r\n0\r\n\r\n');
    } else {
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (bodyBuffer !== undefined) socket.write(bodyBuffer);
      socket.end();
    }
  });
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export interface Content {
  bytes: Buffer;
  digest: string;
  size: number;
}

export function content(bytes: Buffer | string): Content {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  return { bytes: b, digest: sha256(b), size: b.length };
}

export function imageManifest(
  config: Content,
  layers: Content[],
  extra: Record<string, unknown> = {},
  configMediaType = OCI_CONFIG,
): Content {
  return content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: configMediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
      ...extra,
    }),
  );
}

export function indexManifest(children: Content[], extra: Record<string, unknown> = {}): Content {
  return content(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((c, i) => ({
        mediaType: OCI_MANIFEST,
        digest: c.digest,
        size: c.size,
        platform: { os: 'linux', architecture: i === 0 ? 'amd64' : 'arm64' },
      })),
      ...extra,
    }),
  );
}

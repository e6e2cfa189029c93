import { isStorageFullError, writeError } from '@flotilla/kit';
import { OciError, ociErrorBody } from '@flotilla/protocol';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AccessPolicy, Action } from '../auth/access.js';
import { unauthorized, type Authenticator } from '../auth/authenticator.js';
import type { ManifestCache } from '../domain/cached-manifests.js';
import type { Registry } from '../domain/registry.js';

/** What every /v2 handler gets: the registry, auth, and the request's parsed pieces. */
export interface V2Deps {
  registry: Registry;
  cache: ManifestCache;
  authenticator: Authenticator;
  policy: AccessPolicy;
  deleteEnabled: boolean;
  logger: Logger;
}

export interface V2Context {
  readonly deps: V2Deps;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** The raw query string (without `?`); parse with `query()`. */
  readonly search: string;
  /** Validated repository name ('' for `/v2/` and `/v2/_catalog`). */
  readonly name: string;
  /** The last path parameter (reference, digest or upload uuid), URL-decoded. */
  readonly param: string;
  query(): URLSearchParams;
}

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

/** Resolves the caller and checks `action` on the context's repository (or `repository`). */
export async function authorize(
  ctx: V2Context,
  action: Action,
  repository = ctx.name,
): Promise<string | undefined> {
  const header = ctx.req.headers.authorization;
  const user = await ctx.deps.authenticator.authenticate(header);
  if (!ctx.deps.policy.allows(user, repository, action)) {
    if (user === undefined) throw unauthorized();
    throw new OciError('DENIED', undefined, { detail: { repository, action } });
  }
  return user;
}

/** The caller without an access decision (catalog filtering, `/v2/`). */
export function caller(ctx: V2Context): Promise<string | undefined> {
  return ctx.deps.authenticator.authenticate(ctx.req.headers.authorization);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  head = false,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': headers['Content-Type'] ?? 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(head ? undefined : text);
}

export function sendEmpty(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number> = {},
): void {
  res.writeHead(status, { 'Content-Length': 0, ...headers });
  res.end();
}

/** The one error mapper for /v2: OCI error JSON (no body for HEAD), 500 for the unexpected. */
export function sendError(
  ctx: { req: IncomingMessage; res: ServerResponse; method: string },
  err: unknown,
  logger: Logger,
): void {
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (isStorageFullError(err)) {
    // 507 with OCI error JSON saying storage is full (kit's one rendering of it)
    logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'write refused: storage is full',
    );
    const answer = (): void => void writeError(res, err, { format: 'oci' });
    const { req } = ctx;
    if (req.complete || req.destroyed) {
      answer();
      return;
    }
    // Read (and drop) the rest of the body first: a client that sends everything before it
    // reads, over a connection the server then closes, would lose the answer to a reset.
    req.once('end', answer);
    req.once('close', () => {
      if (!res.headersSent) res.destroy();
    });
    req.resume();
    return;
  }
  if (err instanceof OciError) {
    if (err.status >= 500) logger.error({ err }, 'failed to handle request');
    else
      logger.debug({ code: err.code, status: err.status, detail: err.detail }, 'request refused');
    sendJson(res, err.status, ociErrorBody(err), err.headers ?? {}, ctx.method === 'HEAD');
    return;
  }
  logger.error({ err }, 'failed to handle request');
  sendJson(
    res,
    500,
    { errors: [{ code: 'UNKNOWN', message: 'internal server error' }] },
    {},
    ctx.method === 'HEAD',
  );
}

/** `/v2/<name>/...` URLs the registry hands out (relative, as the spec allows). */
export const Locations = {
  blob: (name: string, digest: string): string => `/v2/${name}/blobs/${digest}`,
  manifest: (name: string, reference: string): string => `/v2/${name}/manifests/${reference}`,
  upload: (name: string, uuid: string): string => `/v2/${name}/blobs/uploads/${uuid}`,
  tagsList: (name: string): string => `/v2/${name}/tags/list`,
  catalog: '/v2/_catalog',
};

/** `Range` header value of an upload at `offset` (Distribution's `0-0` for an empty upload). */
export function uploadRange(offset: number): string {
  return `0-${offset > 0 ? offset - 1 : 0}`;
}

/** Parses a non-negative integer query value (`n`); undefined when absent. */
export function pageSize(value: string | null): number | undefined {
  if (value === null || value === '') return undefined;
  if (!/^\d{1,9}$/.test(value))
    throw new OciError('UNSUPPORTED', 'n must be a non-negative integer', {
      status: 400,
      detail: { n: value.slice(0, 40) },
    });
  return Number(value);
}

/** Sorted-list pagination shared by tags/list and _catalog. */
export function paginate(
  all: string[],
  n: number | undefined,
  last: string | null,
): { items: string[]; next?: string } {
  let items = last ? all.filter((x) => x > last) : all;
  if (n === undefined) return { items };
  const more = items.length > n;
  items = items.slice(0, n);
  const lastItem = items[items.length - 1];
  return more && lastItem !== undefined ? { items, next: lastItem } : { items };
}

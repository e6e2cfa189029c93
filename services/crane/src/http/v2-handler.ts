import type { IncomingMessage, ServerResponse } from 'node:http';
import { assertRepositoryName, OciError, parseV2Path, type V2Route } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { CredentialCheck } from '../access/credentials.js';
import type { Catalog } from '../catalog/catalog.js';
import { serveBlob, servePulpBlob } from './blobs.js';
import { serveCatalog } from './catalog-list.js';
import { rateLimitKey, type ClientIpResolver } from './client-ip.js';
import type { V2Context } from './context.js';
import { serveManifest, servePulpManifest } from './manifests.js';
import type { RateLimiter } from './rate-limit.js';
import { serveReferrers } from './referrers.js';
import { sendInternalError, sendJson, sendOciError } from './respond.js';
import { servePulpTags, serveTags } from './tags.js';

export interface CacheControl {
  /** Immutable content addressed by digest. */
  byDigest: string;
  /** Anything that changes with the next publication (tags, lists). */
  byTag: string;
  /** Protected repositories: never in a shared cache. */
  private: string;
}

export interface V2HandlerDeps {
  catalog(): Catalog;
  logger: Logger;
  observe(route: string, method: string, status: number, seconds: number): void;
  rateLimited(): void;
  clientIp: ClientIpResolver;
  rateLimiter: RateLimiter | null;
  credentials: CredentialCheck;
  /** Lower-case header name the TLS terminator sets for a verified client certificate. */
  certificateHeader?: string;
  /** Without a trailing slash. */
  blobBaseUrl: string;
  cache: CacheControl;
  maxUrlLength: number;
}

/** Crane answers the read routes of the grammar; the upload routes are unknown here. */
type Route = Exclude<V2Route, { kind: 'upload' | 'uploads' }>;

const ROUTE_LABEL: Record<Route['kind'], string> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  manifest: '/v2/:name/manifests/:reference',
  blob: '/v2/:name/blobs/:digest',
  referrers: '/v2/:name/referrers/:digest',
  tags: '/v2/:name/tags/list',
  unknown: '/v2/*',
};

function routeOf(path: string): Route {
  const route = parseV2Path(path);
  return route.kind === 'upload' || route.kind === 'uploads' ? { kind: 'unknown' } : route;
}

const METHOD_NOT_ALLOWED = new OciError('UNSUPPORTED', 'crane is read-only: only GET and HEAD', {
  headers: { Allow: 'GET, HEAD' },
});
const URL_TOO_LONG = new OciError('NAME_INVALID', 'request URL too long', { status: 414 });
const NO_ROUTE = new OciError('NAME_UNKNOWN', 'no such endpoint');

/**
 * The lean read path: every `/v2/` request is answered here, on plain `node:http`, from the
 * catalog in memory. Returns false for anything else (health, metrics), which the express app
 * answers.
 */
export function createV2Handler(
  deps: V2HandlerDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const log = deps.logger.child({ component: 'v2' });

  function finish(
    route: Route['kind'],
    method: string,
    res: ServerResponse,
    started: number,
  ): void {
    const label = method === 'GET' || method === 'HEAD' ? method : 'OTHER';
    deps.observe(ROUTE_LABEL[route], label, res.statusCode, (performance.now() - started) / 1000);
  }

  function authorizeThen(
    ctx: V2Context,
    peerTrusted: boolean,
    needed: boolean,
    then: (authorized: boolean) => void,
  ): void {
    if (!needed) return then(false);
    const headers = ctx.req.headers;
    const certificate =
      deps.certificateHeader === undefined ? undefined : headers[deps.certificateHeader];
    const verdict = deps.credentials.verify(
      {
        ...(headers.authorization !== undefined ? { authorization: headers.authorization } : {}),
        ...(typeof certificate === 'string' ? { certificate } : {}),
      },
      peerTrusted,
    );
    if (typeof verdict === 'boolean') return then(verdict);
    verdict.then(then, (err: unknown) => {
      log.error({ err }, 'failed to verify credentials');
      then(false);
    });
  }

  function serve(ctx: V2Context, route: Route, catalog: Catalog, authorized: boolean): void {
    const { res, head } = ctx;
    switch (route.kind) {
      case 'base':
        if (deps.credentials.challengesBasic && !authorized) {
          sendOciError(res, head, new OciError('UNAUTHORIZED'), {
            'WWW-Authenticate': 'Basic realm="flotilla-crane"',
          });
          return;
        }
        sendJson(res, head, {}, { 'Cache-Control': 'no-store' });
        return;
      case 'catalog':
        serveCatalog(
          ctx,
          authorized ? catalog.names : catalog.publicNames,
          authorized ? deps.cache.private : deps.cache.byTag,
        );
        return;
      case 'unknown':
        throw NO_ROUTE;
    }
    const ours = catalog.repositories.get(route.name);
    const pulp = ours ? undefined : catalog.pulp.get(route.name);
    const isProtected = ours?.protected ?? pulp?.protected ?? false;
    // protected and not authorised: indistinguishable from a repository that does not exist
    if ((ours === undefined && pulp === undefined) || (isProtected && !authorized)) {
      throw new OciError('NAME_UNKNOWN', undefined, { detail: { name: route.name } });
    }
    const listCache = isProtected ? deps.cache.private : deps.cache.byTag;
    const digestCache = isProtected ? deps.cache.private : deps.cache.byDigest;
    switch (route.kind) {
      case 'manifest':
        if (ours) serveManifest(ctx, ours, route.reference);
        else servePulpManifest(ctx, pulp!, route.reference);
        return;
      case 'blob':
        if (ours)
          serveBlob(ctx, ours, route.reference, {
            blobBaseUrl: deps.blobBaseUrl,
            cacheControl: digestCache,
          });
        else servePulpBlob(ctx, pulp!, route.reference);
        return;
      case 'tags':
        if (ours) serveTags(ctx, ours, listCache);
        else servePulpTags(ctx, pulp!);
        return;
      case 'referrers':
        serveReferrers(ctx, ours ?? null, route.reference, listCache);
        return;
    }
  }

  function fail(ctx: V2Context, err: unknown): void {
    if (err instanceof OciError) {
      sendOciError(ctx.res, ctx.head, err);
      return;
    }
    log.error({ err, url: ctx.req.url }, 'failed to answer request');
    sendInternalError(ctx.res, ctx.head);
  }

  return function handleV2(req, res) {
    const url = req.url ?? '/';
    if (!url.startsWith('/v2') || (url.length > 3 && url[3] !== '/' && url[3] !== '?'))
      return false;
    const started = performance.now();
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    const q = url.indexOf('?');
    const ctx: V2Context = { req, res, head, query: q === -1 ? '' : url.slice(q + 1) };
    let routeKind: Route['kind'] = 'unknown';
    try {
      if (url.length > deps.maxUrlLength) throw URL_TOO_LONG;
      if (method !== 'GET' && !head) throw METHOD_NOT_ALLOWED;
      const peer = req.socket.remoteAddress ?? '';
      const peerTrusted = deps.clientIp.peerTrusted(peer);
      if (deps.rateLimiter) {
        const client = deps.clientIp.resolve(peer, req.headers['x-forwarded-for']);
        const wait = deps.rateLimiter.take(rateLimitKey(client));
        if (wait > 0) {
          deps.rateLimited();
          throw new OciError('TOOMANYREQUESTS', undefined, {
            headers: { 'Retry-After': String(wait) },
          });
        }
      }
      const route = routeOf(q === -1 ? url : url.slice(0, q));
      routeKind = route.kind;
      if ('name' in route) assertRepositoryName(route.name);
      const catalog = deps.catalog();
      const needsAuth =
        route.kind === 'base'
          ? deps.credentials.challengesBasic
          : route.kind === 'catalog'
            ? req.headers.authorization !== undefined || deps.certificateHeader !== undefined
            : 'name' in route &&
              (catalog.repositories.get(route.name)?.protected ??
                catalog.pulp.get(route.name)?.protected ??
                false);
      authorizeThen(ctx, peerTrusted, needsAuth, (authorized) => {
        try {
          serve(ctx, route, catalog, authorized);
        } catch (err) {
          fail(ctx, err);
        }
        finish(routeKind, method, res, started);
      });
    } catch (err) {
      fail(ctx, err);
      finish(routeKind, method, res, started);
    }
    return true;
  };
}

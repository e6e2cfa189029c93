import { assertRepositoryName, OciError } from '@flotilla/protocol';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceMetrics } from '@flotilla/kit';
import { versionCheck } from './base.js';
import { deleteBlob, getBlob } from './blobs.js';
import { listCatalog } from './catalog.js';
import { API_VERSION, API_VERSION_HEADER, sendError, type V2Context, type V2Deps } from './context.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { listReferrers } from './referrers.js';
import { listTags } from './tags.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

/**
 * The /v2 dispatcher: a plain `node:http` listener (no express on the hot path). Routes by
 * resource; the repository name is validated once here, auth happens in each handler
 * (`authorize`) because the action depends on the method. Everything else (health, metrics)
 * falls through to the express app.
 */

type Handler = (ctx: V2Context) => Promise<void>;

interface Route {
  /** Label for metrics: a pattern, never a raw URL. */
  pattern: string;
  /** Matches the path after `/v2/`; group 1 = name, group 2 = last parameter. */
  regex: RegExp;
  methods: Partial<Record<string, Handler>>;
}

const ROUTES: Route[] = [
  { pattern: '/v2/:name/manifests/:reference', regex: /^(.+)\/manifests\/([^/]+)$/, methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest } },
  { pattern: '/v2/:name/blobs/uploads/', regex: /^(.+)\/blobs\/uploads\/?()$/, methods: { POST: startUpload } },
  { pattern: '/v2/:name/blobs/uploads/:uuid', regex: /^(.+)\/blobs\/uploads\/([^/]+)$/, methods: { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload } },
  { pattern: '/v2/:name/blobs/:digest', regex: /^(.+)\/blobs\/([^/]+)$/, methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
  { pattern: '/v2/:name/tags/list', regex: /^(.+)\/tags\/list()$/, methods: { GET: listTags, HEAD: listTags } },
  { pattern: '/v2/:name/referrers/:digest', regex: /^(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers, HEAD: listReferrers } },
];

const BASE: Route = { pattern: '/v2/', regex: /^$/, methods: { GET: versionCheck, HEAD: versionCheck } };
const CATALOG: Route = { pattern: '/v2/_catalog', regex: /^_catalog$/, methods: { GET: listCatalog, HEAD: listCatalog } };

function decodeParam(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export interface V2Handler {
  /** Handles the request and returns true when the path is under /v2, else returns false. */
  (req: IncomingMessage, res: ServerResponse): boolean;
}

export function createV2Handler(deps: V2Deps, metrics: ServiceMetrics): V2Handler {
  const logger = deps.logger;

  function observe(route: string, method: string, res: ServerResponse, started: bigint): void {
    res.once('finish', () => {
      metrics.observe(route, method, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
  }

  async function run(handler: Handler, ctx: V2Context): Promise<void> {
    try {
      await handler(ctx);
    } catch (err) {
      sendError(ctx, err, logger);
    }
  }

  return (req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith('/v2')) return false;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/v2' && !path.startsWith('/v2/')) return false;
    const started = process.hrtime.bigint();
    res.setHeader(API_VERSION_HEADER, API_VERSION);
    const rest = path.length <= 4 ? '' : path.slice(4);
    const method = req.method === 'HEAD' ? 'HEAD' : (req.method ?? 'GET');
    const search = q === -1 ? '' : url.slice(q + 1);
    let parsedQuery: URLSearchParams | undefined;
    const errorCtx = { req, res, method };

    let route: Route | undefined;
    let match: RegExpExecArray | null = null;
    if (rest === '') route = BASE;
    else if (rest === '_catalog') route = CATALOG;
    else {
      for (const candidate of ROUTES) {
        match = candidate.regex.exec(rest);
        if (match) {
          route = candidate;
          break;
        }
      }
    }
    if (!route) {
      observe('unmatched', method, res, started);
      req.resume();
      sendError(errorCtx, new OciError('NAME_UNKNOWN', 'unknown endpoint', { status: 404, detail: { path: path.slice(0, 200) } }), logger);
      return true;
    }
    observe(route.pattern, method, res, started);
    let name = '';
    let param = '';
    if (match) {
      name = match[1] ?? '';
      param = decodeParam(match[2] ?? '');
      try {
        assertRepositoryName(name);
      } catch (err) {
        req.resume();
        sendError(errorCtx, err, logger);
        return true;
      }
    }
    const handler = route.methods[method];
    if (!handler) {
      req.resume();
      sendError(
        errorCtx,
        new OciError('UNSUPPORTED', `method ${method.slice(0, 10)} not allowed`, {
          headers: { Allow: Object.keys(route.methods).join(', ') },
        }),
        logger,
      );
      return true;
    }
    const ctx: V2Context = {
      deps,
      req,
      res,
      method,
      search,
      name,
      param,
      query() {
        parsedQuery ??= new URLSearchParams(search);
        return parsedQuery;
      },
    };
    void run(handler, ctx);
    return true;
  };
}

import {
  assertRepositoryName,
  OciError,
  parseV2Path,
  type V2Route,
  type V2RouteKind,
} from '@flotilla/protocol';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceMetrics } from '@flotilla/kit';
import { versionCheck } from './base.js';
import { deleteBlob, getBlob } from './blobs.js';
import { listCatalog } from './catalog.js';
import {
  API_VERSION,
  API_VERSION_HEADER,
  sendError,
  type V2Context,
  type V2Deps,
} from './context.js';
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
  methods: Partial<Record<string, Handler>>;
}

/** By the kind of path protocol's `parseV2Path` (the one /v2 grammar) finds. */
const ROUTES: Record<Exclude<V2RouteKind, 'unknown'>, Route> = {
  base: { pattern: '/v2/', methods: { GET: versionCheck, HEAD: versionCheck } },
  catalog: { pattern: '/v2/_catalog', methods: { GET: listCatalog, HEAD: listCatalog } },
  manifest: {
    pattern: '/v2/:name/manifests/:reference',
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  uploads: { pattern: '/v2/:name/blobs/uploads/', methods: { POST: startUpload } },
  upload: {
    pattern: '/v2/:name/blobs/uploads/:uuid',
    methods: { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload },
  },
  blob: {
    pattern: '/v2/:name/blobs/:digest',
    methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  },
  tags: { pattern: '/v2/:name/tags/list', methods: { GET: listTags, HEAD: listTags } },
  referrers: {
    pattern: '/v2/:name/referrers/:digest',
    methods: { GET: listReferrers, HEAD: listReferrers },
  },
};

export interface V2Handler {
  /** Handles the request and returns true when the path is under /v2, else returns false. */
  (req: IncomingMessage, res: ServerResponse): boolean;
}

export function createV2Handler(deps: V2Deps, metrics: ServiceMetrics): V2Handler {
  const logger = deps.logger;

  function observe(route: string, method: string, res: ServerResponse, started: bigint): void {
    res.once('finish', () => {
      metrics.observe(
        route,
        method,
        res.statusCode,
        Number(process.hrtime.bigint() - started) / 1e9,
      );
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
    const method = req.method === 'HEAD' ? 'HEAD' : (req.method ?? 'GET');
    const search = q === -1 ? '' : url.slice(q + 1);
    let parsedQuery: URLSearchParams | undefined;
    const errorCtx = { req, res, method };

    let parsed: V2Route;
    try {
      parsed = parseV2Path(path);
    } catch (err) {
      observe('unmatched', method, res, started);
      req.resume();
      sendError(errorCtx, err, logger);
      return true;
    }
    if (parsed.kind === 'unknown') {
      observe('unmatched', method, res, started);
      req.resume();
      sendError(
        errorCtx,
        new OciError('NAME_UNKNOWN', 'unknown endpoint', {
          status: 404,
          detail: { path: path.slice(0, 200) },
        }),
        logger,
      );
      return true;
    }
    const route = ROUTES[parsed.kind];
    observe(route.pattern, method, res, started);
    let name = '';
    let param = '';
    if ('name' in parsed) {
      name = parsed.name;
      param = 'reference' in parsed ? parsed.reference : '';
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

/**
 * The express app factory every service builds its HTTP API on: request id and a child
 * logger per request, access log and duration histogram, `/healthz`, `/readyz`,
 * `/metrics`, the service's routes, then a 404 and the one error mapper.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from 'express';
import type { Logger } from 'pino';
import {
  errorFormatForPath,
  HttpProblem,
  problems,
  writeError,
  type ErrorFormat,
} from './errors.js';
import type { ServiceMetrics } from './metrics.js';
import { Readiness, type ReadinessChecks } from './readiness.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id (incoming `X-Request-Id` when sane, else generated); echoed back. */
    id: string;
    /** A child of the service logger bound to `reqId`. */
    log: Logger;
    /** The exact request bytes, set by `jsonBody(limit, { rawBody: true })` (HMAC checks). */
    rawBody?: Buffer;
  }
}

export const REQUEST_ID_HEADER = 'X-Request-Id';
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** The incoming request id when it is sane (short, printable, no spaces), else a new UUID. */
export function resolveRequestId(incoming: string | string[] | undefined): string {
  const value = Array.isArray(incoming) ? incoming[0] : incoming;
  return value !== undefined && SANE_REQUEST_ID.test(value) ? value : randomUUID();
}

export interface ServiceAppOptions {
  /** The service name (logs, metrics). */
  name: string;
  logger: Logger;
  metrics: ServiceMetrics;
  /** Checks run by `GET /readyz`. Pass a `Readiness` to add checks later. */
  readiness?: ReadinessChecks;
  /** Per-check timeout for `/readyz` (default 2000 ms). */
  readinessTimeoutMs?: number;
  /** Error body format; default: OCI JSON under `/v2`, problem JSON elsewhere. */
  errorFormat?: ErrorFormat | ((req: Request) => ErrorFormat);
  /** Default limit for `jsonBody()` when a route does not give one (default `1mb`). */
  jsonLimit?: string | number;
}

/**
 * The express app, plus its `/healthz`, `/readyz`, `/metrics` handler on plain `node:http`:
 * services with a lean front call `operational` before the app (see createOperationalEndpoints).
 */
export type ServiceApp = Express & { readonly operational: LeanHandler };

/** A plain `node:http` handler that answers (and returns true) or leaves the request alone. */
export type LeanHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface OperationalEndpointsOptions {
  name: string;
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: Readiness;
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const OPERATIONAL_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * `GET`/`HEAD` `/healthz`, `/readyz` and `/metrics` on plain `node:http`. Probes and scrapes
 * arrive every few seconds for a process's whole life; answered through express, which swaps
 * the prototypes of every request and response it sees, they widen the type feedback of
 * node's own HTTP and stream code and every other request gets slower (≈ 2 µs per redirect
 * after 120 probes, docs/bench/mirrors.md). The service app answers these paths with it,
 * and exposes it as `app.operational` for services with a lean front to call first.
 */
export function createOperationalEndpoints(options: OperationalEndpointsOptions): LeanHandler {
  const { name, logger, metrics, readiness } = options;
  const health = JSON.stringify({ status: 'ok', service: name });
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (!OPERATIONAL_PATHS.has(path) || (req.method !== 'GET' && req.method !== 'HEAD'))
      return false;
    const started = performance.now();
    const id = resolveRequestId(req.headers['x-request-id']);
    const method = req.method;
    res.once('close', () => {
      const ms = performance.now() - started;
      metrics.observe(path, method, res.statusCode, ms / 1000);
      const fields: Record<string, unknown> = {
        reqId: id,
        method,
        url,
        status: res.statusCode,
        ms: Math.round(ms * 10) / 10,
      };
      if (!res.writableFinished) fields.aborted = true;
      // debug: probes and scrapes would drown the access log
      logger.debug(fields, 'request completed');
    });
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, {
        'Content-Type': type,
        'Content-Length': String(Buffer.byteLength(body)),
        [REQUEST_ID_HEADER]: id,
      });
      res.end(method === 'HEAD' ? undefined : body);
    };
    const fail = (err: unknown): void => {
      logger.warn({ err, path }, 'request failed');
      if (res.headersSent) res.destroy();
      else writeError(res, err, { format: 'problem', requestId: id, instance: path });
    };
    if (path === '/healthz') {
      send(200, JSON_CONTENT_TYPE, health);
    } else if (path === '/readyz') {
      readiness
        .run()
        .then(
          (report) =>
            send(report.status === 'ok' ? 200 : 503, JSON_CONTENT_TYPE, JSON.stringify(report)),
          fail,
        );
    } else {
      metrics.registry
        .metrics()
        .then((text) => send(200, metrics.registry.contentType, text), fail);
    }
    return true;
  };
}

const REQUEST_LOG = Symbol('flotilla.requestLog');
const JSON_LIMIT_SETTING = 'flotilla json limit';
const DEFAULT_JSON_LIMIT = '1mb';

function pathOf(req: Request): string {
  const url = req.originalUrl;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function createServiceApp(
  options: ServiceAppOptions,
  mount: (app: Express) => void,
): ServiceApp {
  const { logger, metrics } = options;
  const app = express();
  app.set('x-powered-by', false);
  app.set('etag', false);
  app.set('trust proxy', false);
  app.set(JSON_LIMIT_SETTING, options.jsonLimit ?? DEFAULT_JSON_LIMIT);

  const readiness =
    options.readiness instanceof Readiness
      ? options.readiness
      : new Readiness(
          options.readiness,
          options.readinessTimeoutMs === undefined ? {} : { timeoutMs: options.readinessTimeoutMs },
        );
  app.locals.readiness = readiness;

  const chooseFormat = options.errorFormat;
  const formatFor = (req: Request): ErrorFormat =>
    chooseFormat === undefined
      ? errorFormatForPath(pathOf(req))
      : typeof chooseFormat === 'function'
        ? chooseFormat(req)
        : chooseFormat;

  // `req.log` is created on first use: most requests never log beyond the access line,
  // which goes through the root logger with `reqId` as a field.
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    get(this: Request & { [REQUEST_LOG]?: Logger }): Logger {
      return (this[REQUEST_LOG] ??= logger.child({ reqId: this.id }));
    },
    set(this: Request & { [REQUEST_LOG]?: Logger }, value: Logger) {
      this[REQUEST_LOG] = value;
    },
  });

  const operational = createOperationalEndpoints({
    name: options.name,
    logger,
    metrics,
    readiness,
  });
  app.use((req, res, next) => {
    if (!operational(req, res)) next();
  });

  app.use((req, res, next) => {
    const started = performance.now();
    const id = resolveRequestId(req.headers['x-request-id']);
    req.id = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    res.once('close', () => {
      const ms = performance.now() - started;
      const routePath: unknown = req.route?.path;
      const route = routePath === undefined ? 'unmatched' : String(routePath);
      const status = res.statusCode;
      metrics.observe(route, req.method, status, ms / 1000);
      const fields: Record<string, unknown> = {
        reqId: id,
        method: req.method,
        url: req.originalUrl,
        status,
        ms: Math.round(ms * 10) / 10,
      };
      if (!res.writableFinished) fields.aborted = true;
      logger.info(fields, 'request completed');
    });
    next();
  });

  mount(app);

  app.use((req, _res, next) => {
    next(new RouteNotFound(req.method, pathOf(req)));
  });

  const mapError: ErrorRequestHandler = (err: unknown, req, res, _next) => {
    const log = req.log ?? logger;
    if (res.headersSent) {
      // The status line is gone; cutting the connection is the only honest signal left.
      log.error({ err }, 'failed after response started');
      res.destroy();
      return;
    }
    const rendered = writeError(res, err, {
      format: formatFor(req),
      requestId: req.id,
      instance: pathOf(req),
    });
    if (rendered === undefined) return;
    if (rendered.unexpected) log.error({ err }, 'failed to handle request');
    else if (rendered.status >= 500) log.warn({ err }, 'request failed');
    else
      log.debug(
        { status: rendered.status, error: err instanceof Error ? err.message : String(err) },
        'request rejected',
      );
  };
  app.use(mapError);
  return Object.assign(app, { operational });
}

/** The 404 for a path no route matched: OCI `NAME_UNKNOWN` under `/v2`, problem JSON elsewhere. */
class RouteNotFound extends HttpProblem {
  constructor(method: string, path: string) {
    super({ status: 404, detail: `no route for ${method} ${path}` });
    this.name = 'RouteNotFound';
  }
}

const jsonParsers = new Map<string, RequestHandler>();

function jsonParser(limit: string | number, rawBody: boolean): RequestHandler {
  const key = `${String(limit)}|${rawBody}`;
  let parser = jsonParsers.get(key);
  if (parser === undefined) {
    parser = express.json({
      limit,
      strict: true,
      type: ['application/json', 'application/*+json'],
      ...(rawBody
        ? {
            verify: (req: IncomingMessage, _res: unknown, buf: Buffer) => {
              (req as Request).rawBody = Buffer.from(buf);
            },
          }
        : {}),
    });
    jsonParsers.set(key, parser);
  }
  return parser;
}

function hasBody(req: Request): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

export interface JsonBodyOptions {
  /** Keep the exact bytes on `req.rawBody` (for HMAC signatures). */
  rawBody?: boolean;
}

/**
 * JSON body parsing for the routes that want it: strict (objects and arrays only),
 * bounded (`limit`, default the app's `jsonLimit` or 1 MB; 413 beyond), 400 on malformed
 * JSON, 415 when a body is sent with another content type. Without a body `req.body` stays
 * undefined and the route's zod schema reports it.
 */
export function jsonBody(limit?: string | number, options: JsonBodyOptions = {}): RequestHandler {
  const rawBody = options.rawBody ?? false;
  return (req, res, next) => {
    if (hasBody(req) && !req.is(['application/json', 'application/*+json'])) {
      next(problems.unsupportedMediaType('expected a JSON body (Content-Type: application/json)'));
      return;
    }
    const effective =
      limit ??
      (req.app.get(JSON_LIMIT_SETTING) as string | number | undefined) ??
      DEFAULT_JSON_LIMIT;
    jsonParser(effective, rawBody)(req, res, next);
  };
}

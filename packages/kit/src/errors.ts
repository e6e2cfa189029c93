/**
 * Errors a handler throws and the one mapper that turns any thrown value into a response.
 *
 * Two wire formats: OCI error JSON (`{"errors":[{code,message,detail?}]}`) on the
 * registry API and RFC 9457 problem JSON (`application/problem+json`) everywhere else. The
 * format is chosen per request (by path, by default) and every error kind renders in
 * both, so a content-API handler that calls a protocol parser throwing `OciError` still
 * answers problem JSON, and a `/v2/` handler throwing `HttpProblem` still answers OCI JSON.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import {
  isOciErrorCode,
  OCI_ERROR_CATALOG,
  OciError,
  ociErrorBody,
  type OciErrorCode,
} from '@flotilla/protocol';
import { z } from 'zod';
import { isStorageFullError } from './storage-space.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const OCI_ERROR_CONTENT_TYPE = 'application/json; charset=utf-8';
export const DISTRIBUTION_API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const DISTRIBUTION_API_VERSION = 'registry/2.0';

export type ErrorFormat = 'oci' | 'problem';

export interface HttpProblemInit {
  status: number;
  /** Short, stable summary; defaults to the HTTP reason phrase. */
  title?: string;
  /** Human-readable explanation of this occurrence. */
  detail?: string;
  /** A URI naming the problem type; defaults to `about:blank`. */
  type?: string;
  /** Extra members of the problem object (e.g. `{ policy: 'no-downgrade' }`). */
  extensions?: Record<string, unknown>;
  /** Response headers (e.g. `WWW-Authenticate`, `Retry-After`, `Allow`). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** An RFC 9457 problem: throw it from a handler, the mapper renders it. */
export class HttpProblem extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  readonly type?: string;
  readonly extensions?: Record<string, unknown>;
  readonly headers?: Record<string, string>;

  constructor(init: HttpProblemInit) {
    const title = init.title ?? STATUS_CODES[init.status] ?? 'Error';
    super(init.detail ?? title, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'HttpProblem';
    this.status = init.status;
    this.title = title;
    if (init.detail !== undefined) this.detail = init.detail;
    if (init.type !== undefined) this.type = init.type;
    if (init.extensions !== undefined) this.extensions = init.extensions;
    if (init.headers !== undefined) this.headers = init.headers;
  }
}

export function isHttpProblem(value: unknown): value is HttpProblem {
  return value instanceof HttpProblem;
}

type Extras = Pick<HttpProblemInit, 'extensions' | 'headers' | 'type'>;

/** Shorthands for the common problems. */
export const problems = {
  badRequest: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 400, detail, ...extras }),
  unauthorized: (detail = 'authentication required', extras: Extras = {}) =>
    new HttpProblem({
      status: 401,
      detail,
      ...extras,
      headers: { 'WWW-Authenticate': 'Bearer realm="flotilla"', ...extras.headers },
    }),
  forbidden: (detail = 'not allowed', extras: Extras = {}) =>
    new HttpProblem({ status: 403, detail, ...extras }),
  notFound: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 404, detail, ...extras }),
  methodNotAllowed: (allow: readonly string[], extras: Extras = {}) =>
    new HttpProblem({
      status: 405,
      detail: `allowed methods: ${allow.join(', ')}`,
      ...extras,
      headers: { Allow: allow.join(', '), ...extras.headers },
    }),
  conflict: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 409, detail, ...extras }),
  payloadTooLarge: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 413, detail, ...extras }),
  unsupportedMediaType: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 415, detail, ...extras }),
  unprocessable: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 422, detail, ...extras }),
  tooManyRequests: (
    detail = 'too many requests',
    retryAfterSeconds?: number,
    extras: Extras = {},
  ) =>
    new HttpProblem({
      status: 429,
      detail,
      ...extras,
      headers:
        retryAfterSeconds === undefined
          ? extras.headers
          : { 'Retry-After': String(retryAfterSeconds), ...extras.headers },
    }),
  serviceUnavailable: (detail: string, extras: Extras = {}) =>
    new HttpProblem({ status: 503, detail, ...extras }),
} as const;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  [extension: string]: unknown;
}

export interface OciLikeErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>;
}

export interface RenderContext {
  format: ErrorFormat;
  /** Added to every body as `requestId` (problem) or in the `detail` of a 500 (OCI). */
  requestId?: string;
  /** The problem's `instance` member (request path without the query). */
  instance?: string;
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** True for 5xx caused by something unexpected: log it at error with the stack. */
  unexpected: boolean;
}

/** The OCI code used when a non-OCI error is rendered as OCI JSON. */
function ociCodeForStatus(status: number): string {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'DENIED';
    case 404:
      return 'NAME_UNKNOWN';
    case 405:
    case 415:
      return 'UNSUPPORTED';
    case 413:
      return 'SIZE_INVALID';
    case 429:
      return 'TOOMANYREQUESTS';
    default:
      // Docker Distribution's catch-all (errcode.ErrorCodeUnknown); not one of the 14.
      return 'UNKNOWN';
  }
}

interface Normalised {
  status: number;
  title: string;
  detail: string;
  type?: string;
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
  oci: { code: string; message: string; detail?: unknown };
  unexpected: boolean;
}

/** A `ZodError` from any zod copy (duck-typed: `issues` with `path` and `message`). */
function zodIssues(err: unknown): Array<{ path: string; message: string }> | undefined {
  if (err instanceof z.ZodError || (err instanceof Error && err.name === 'ZodError')) {
    const issues = (err as { issues?: unknown }).issues;
    if (!Array.isArray(issues)) return undefined;
    return issues.map((i: { path?: unknown[]; message?: unknown }) => ({
      path: formatPath(i.path ?? []),
      message: String(i.message ?? 'invalid'),
    }));
  }
  return undefined;
}

function formatPath(path: readonly unknown[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(root)' : out;
}

/** A duck-typed OciError (protects against two copies of @flotilla/protocol). */
function asOciError(err: unknown): OciError | undefined {
  if (err instanceof OciError) return err;
  if (
    err instanceof Error &&
    err.name === 'OciError' &&
    isOciErrorCode((err as { code?: unknown }).code) &&
    typeof (err as { status?: unknown }).status === 'number'
  ) {
    return err as OciError;
  }
  return undefined;
}

/** body-parser / http-errors client errors: `{status, expose: true, type?}`. */
function asClientHttpError(
  err: unknown,
): { status: number; type?: string; message: string; limit?: unknown } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as {
    status?: unknown;
    statusCode?: unknown;
    expose?: unknown;
    type?: unknown;
    message?: unknown;
    limit?: unknown;
  };
  const status =
    typeof e.status === 'number'
      ? e.status
      : typeof e.statusCode === 'number'
        ? e.statusCode
        : undefined;
  if (status === undefined || status < 400 || status > 499 || e.expose === false) return undefined;
  const out: { status: number; type?: string; message: string; limit?: unknown } = {
    status,
    message: typeof e.message === 'string' ? e.message : (STATUS_CODES[status] ?? 'client error'),
  };
  if (typeof e.type === 'string') out.type = e.type;
  if (e.limit !== undefined) out.limit = e.limit;
  return out;
}

function normalise(err: unknown): Normalised {
  const oci = asOciError(err);
  if (oci) {
    const entry = OCI_ERROR_CATALOG[oci.code as OciErrorCode];
    const body = ociErrorBody(oci).errors[0] ?? { code: oci.code, message: oci.message };
    const extensions: Record<string, unknown> = { code: oci.code };
    if (oci.detail !== undefined) extensions.ociDetail = oci.detail;
    const n: Normalised = {
      status: oci.status,
      title: entry.message,
      detail: oci.message,
      extensions,
      oci: body,
      unexpected: false,
    };
    if (oci.headers) n.headers = oci.headers;
    return n;
  }
  if (err instanceof HttpProblem) {
    const detail = err.detail ?? err.title;
    const n: Normalised = {
      status: err.status,
      title: err.title,
      detail,
      oci: { code: ociCodeForStatus(err.status), message: detail },
      unexpected: false,
    };
    if (err.extensions) {
      n.extensions = err.extensions;
      n.oci.detail = err.extensions;
    }
    if (err.type !== undefined) n.type = err.type;
    if (err.headers) n.headers = err.headers;
    return n;
  }
  const issues = zodIssues(err);
  if (issues) {
    const first = issues[0];
    const detail = first
      ? `${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`
      : 'invalid request';
    return {
      status: 400,
      title: 'Bad Request',
      detail,
      extensions: { issues },
      oci: { code: 'UNKNOWN', message: detail, detail: { issues } },
      unexpected: false,
    };
  }
  const client = asClientHttpError(err);
  if (client) {
    let detail = client.message;
    if (client.type === 'entity.too.large') {
      detail =
        typeof client.limit === 'number'
          ? `request body exceeds ${client.limit} bytes`
          : 'request body too large';
    } else if (client.type === 'entity.parse.failed') {
      detail = 'malformed JSON body';
    }
    return {
      status: client.status,
      title: STATUS_CODES[client.status] ?? 'Client Error',
      detail,
      oci: { code: ociCodeForStatus(client.status), message: detail },
      unexpected: false,
    };
  }
  if (isStorageFullError(err)) {
    // a write met a full disk (or the reserve): that one operation fails, nothing is broken
    const message =
      (err as Error).name === 'StorageFullError' ? (err as Error).message : 'storage is full';
    return {
      status: 507,
      title: 'Insufficient Storage',
      detail: message,
      oci: { code: 'UNKNOWN', message },
      unexpected: false,
    };
  }
  return {
    status: 500,
    title: 'Internal Server Error',
    detail: 'an unexpected error occurred; quote the request id when reporting it',
    oci: { code: 'UNKNOWN', message: 'unknown error' },
    unexpected: true,
  };
}

/** The one error mapper: any thrown value → status, headers, body. Never a stack. */
export function renderError(err: unknown, context: RenderContext): ErrorResponse {
  const n = normalise(err);
  const headers: Record<string, string> = { ...n.headers };
  let body: string;
  if (context.format === 'oci') {
    const entry: { code: string; message: string; detail?: unknown } = { ...n.oci };
    if (n.unexpected && context.requestId !== undefined)
      entry.detail = { requestId: context.requestId };
    body = JSON.stringify({ errors: [entry] } satisfies OciLikeErrorBody);
    headers['Content-Type'] = OCI_ERROR_CONTENT_TYPE;
    headers[DISTRIBUTION_API_VERSION_HEADER] = DISTRIBUTION_API_VERSION;
  } else {
    const problem: ProblemBody = {
      // Reserved members win over extensions of the same name.
      ...n.extensions,
      type: n.type ?? 'about:blank',
      title: n.title,
      status: n.status,
      detail: n.detail,
    };
    if (context.instance !== undefined) problem.instance = context.instance;
    if (context.requestId !== undefined) problem.requestId = context.requestId;
    body = JSON.stringify(problem);
    headers['Content-Type'] = PROBLEM_CONTENT_TYPE;
  }
  return { status: n.status, headers, body, unexpected: n.unexpected };
}

/**
 * Writes a rendered error on a plain `node:http` response (lean paths that bypass
 * express use this so there is still one mapper). Returns undefined when headers were
 * already sent (the caller should then destroy the socket).
 */
export function writeError(
  res: ServerResponse,
  err: unknown,
  context: RenderContext,
): ErrorResponse | undefined {
  const rendered = renderError(err, context);
  if (res.headersSent) return undefined;
  res.statusCode = rendered.status;
  for (const [name, value] of Object.entries(rendered.headers)) res.setHeader(name, value);
  res.setHeader('Content-Length', Buffer.byteLength(rendered.body));
  res.end(rendered.body);
  return rendered;
}

/** The default format choice: OCI JSON under `/v2` (the registry API), problem JSON elsewhere. */
export function errorFormatForPath(path: string): ErrorFormat {
  return path === '/v2' || path.startsWith('/v2/') || path.startsWith('/v2?') ? 'oci' : 'problem';
}

/**
 * The OCI error catalog: the 14 error codes of the OCI distribution spec
 * (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes),
 * each with its default HTTP status and the spec's message. One table, one class; the
 * services' error mappers serialise `OciError` with `ociErrorBody`.
 */

export const OCI_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const;

export type OciErrorCode = (typeof OCI_ERROR_CODES)[number];

export interface OciErrorCatalogEntry {
  readonly status: number;
  readonly message: string;
}

/**
 * Statuses follow Docker Distribution where the spec allows a choice:
 * MANIFEST_BLOB_UNKNOWN is 400 (spec: 400 or 404) and UNSUPPORTED is 405 (Distribution's
 * answer for disabled deletes). A thrower can override the status per instance, e.g.
 * `new OciError('UNSUPPORTED', msg, { status: 415 })`.
 */
export const OCI_ERROR_CATALOG: Readonly<Record<OciErrorCode, OciErrorCatalogEntry>> =
  Object.freeze({
    BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
    BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
    BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
    DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
    MANIFEST_BLOB_UNKNOWN: {
      status: 400,
      message: 'manifest references a manifest or blob unknown to registry',
    },
    MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
    MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
    NAME_INVALID: { status: 400, message: 'invalid repository name' },
    NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
    SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
    UNAUTHORIZED: { status: 401, message: 'authentication required' },
    DENIED: { status: 403, message: 'requested access to the resource is denied' },
    UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
    TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  });

export function isOciErrorCode(value: unknown): value is OciErrorCode {
  return typeof value === 'string' && Object.hasOwn(OCI_ERROR_CATALOG, value);
}

export interface OciErrorOptions {
  /** Free-form, JSON-serialisable detail sent to the client in `errors[].detail`. */
  detail?: unknown;
  /** Overrides the catalog status for this instance (e.g. 413 for an oversized manifest). */
  status?: number;
  /** Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail?: unknown;
  readonly headers?: Record<string, string>;

  constructor(code: OciErrorCode, message?: string, options: OciErrorOptions = {}) {
    const entry = OCI_ERROR_CATALOG[code];
    super(
      message ?? entry.message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'OciError';
    this.code = code;
    this.status = options.status ?? entry.status;
    if (options.detail !== undefined) this.detail = options.detail;
    if (options.headers !== undefined) this.headers = options.headers;
  }
}

export function isOciError(value: unknown): value is OciError {
  return value instanceof OciError;
}

export interface OciErrorBodyEntry {
  code: OciErrorCode;
  message: string;
  detail?: unknown;
}

export interface OciErrorBody {
  errors: OciErrorBodyEntry[];
}

/** The JSON body of an OCI error response: `{"errors":[{code,message,detail?}]}`. */
export function ociErrorBody(err: OciError | readonly OciError[]): OciErrorBody {
  const list: readonly OciError[] = Array.isArray(err) ? err : [err as OciError];
  return {
    errors: list.map((e) => {
      const entry: OciErrorBodyEntry = { code: e.code, message: e.message };
      if (e.detail !== undefined) entry.detail = e.detail;
      return entry;
    }),
  };
}

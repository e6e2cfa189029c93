/**
 * Outgoing HTTP with bounded retries. `retry(fn, options)` is the one retry loop: exponential
 * back-off with full jitter, a retry budget, abort-aware waits. `fetchWithRetry` puts it
 * around undici's fetch: network errors and 429/502/503/504 are retried, honouring
 * `Retry-After`; a non-idempotent request (POST, PATCH) or one whose body is a stream is sent
 * once unless the caller says retrying it is safe. Clients on undici's `request` (content's
 * upstream client, the mirrors crawler) call `retry` with their own idea of transient.
 */
import { fetch, type RequestInit, type Response } from 'undici';
import type { Logger } from 'pino';

export type { RequestInit, Response } from 'undici';

export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** First back-off (default 200 ms); doubles each retry, with jitter. */
  backoffMs?: number;
  /** Upper bound for one wait, `Retry-After` included (default 10 s). */
  maxBackoffMs?: number;
  /** Statuses worth retrying (default 429, 502, 503, 504). */
  retryOn?: readonly number[];
  /** Retry POST/PATCH too (only when the server side is idempotent by key). */
  retryNonIdempotent?: boolean;
  logger?: Logger;
  /** Source of jitter in [0, 1) (tests make it deterministic). */
  random?: () => number;
}

export const DEFAULT_RETRY_STATUSES: readonly number[] = [429, 502, 503, 504];
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

export function isIdempotentMethod(method: string | undefined): boolean {
  return IDEMPOTENT_METHODS.has((method ?? 'GET').toUpperCase());
}

/** True for a transport failure worth another try (not an abort, not a bad argument). */
export function isRetryableNetworkError(err: unknown): boolean {
  if (!(err instanceof Error) || err.name === 'AbortError' || err.name === 'TimeoutError')
    return false;
  const cause = (err as { cause?: unknown }).cause;
  const codes = [(err as { code?: unknown }).code, (cause as { code?: unknown } | undefined)?.code];
  if (codes.some((c) => typeof c === 'string' && RETRYABLE_NETWORK_CODES.has(c))) return true;
  return (
    err instanceof TypeError && err.message === 'fetch failed' && !(cause instanceof TypeError)
  );
}

function replayableBody(body: RequestInit['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    body instanceof URLSearchParams
  );
}

/** `Retry-After` (seconds or an HTTP date) in ms, or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const s = value.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function sleep(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryLoopOptions {
  /** Retries after the first attempt. */
  retries: number;
  /** First back-off; doubles each retry, with full jitter. */
  backoffMs: number;
  /** Upper bound for one wait (default 10 s). */
  maxBackoffMs?: number;
  /** Whether this failure is worth another try (default: a retryable network error). */
  shouldRetry?: (err: unknown) => boolean;
  /** Stops retrying (and waiting) once aborted. */
  signal?: AbortSignal | null;
  random?: () => number;
  logger?: Logger;
}

/** Runs `fn` until it resolves, a failure is not worth retrying, or the budget is spent. */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryLoopOptions,
): Promise<T> {
  const shouldRetry = options.shouldRetry ?? isRetryableNetworkError;
  const random = options.random ?? Math.random;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= options.retries || options.signal?.aborted || !shouldRetry(err)) throw err;
      const wait = Math.round(Math.min(maxBackoffMs, options.backoffMs * 2 ** attempt) * random());
      options.logger?.debug({ attempt: attempt + 1, waitMs: wait, err }, 'retrying');
      await sleep(wait, options.signal);
    }
  }
}

export async function fetchWithRetry(
  url: string | URL,
  init: RequestInit = {},
  options: RetryOptions = {},
): Promise<Response> {
  const retryOn = options.retryOn ?? DEFAULT_RETRY_STATUSES;
  const backoffMs = options.backoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const random = options.random ?? Math.random;
  const mayRetry =
    (options.retryNonIdempotent === true || isIdempotentMethod(init.method)) &&
    replayableBody(init.body);
  const retries = mayRetry ? Math.max(0, Math.floor(options.retries ?? 3)) : 0;

  for (let attempt = 0; ; attempt++) {
    const ceiling = Math.min(maxBackoffMs, backoffMs * 2 ** attempt);
    const backoff = Math.round(ceiling * random());
    let wait: number;
    let reason: Record<string, unknown>;
    try {
      const response = await fetch(url, init);
      if (attempt >= retries || !retryOn.includes(response.status)) return response;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      wait = Math.min(maxBackoffMs, retryAfter ?? backoff);
      reason = { status: response.status };
      // Free the connection before waiting.
      await response.body?.cancel().catch(() => undefined);
    } catch (err) {
      if (attempt >= retries || !isRetryableNetworkError(err)) throw err;
      wait = backoff;
      reason = {
        error: (err as Error).message,
        code: ((err as Error).cause as { code?: unknown } | undefined)?.code,
      };
    }
    options.logger?.debug(
      { url: String(url), attempt: attempt + 1, waitMs: wait, ...reason },
      'retrying request',
    );
    await sleep(wait, init.signal);
  }
}

/** The outgoing-HTTP helpers as one namespace-like object. */
export const httpClient = {
  fetchWithRetry,
  retry,
  isRetryableNetworkError,
  isIdempotentMethod,
  parseRetryAfter,
} as const;

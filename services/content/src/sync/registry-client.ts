import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { isRetryableNetworkError, retry } from '@flotilla/kit';
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '@flotilla/protocol';

export interface UpstreamCredentials {
  username?: string;
  password?: string;
}

export interface ManifestHead {
  digest?: string;
  mediaType: string;
  size?: number;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  /** `Docker-Content-Digest` when the registry sent it. */
  digest?: string;
}

export interface RetryPolicy {
  retries: number;
  backoffMs: number;
}

/** Every manifest type, OCI and Docker, so the registry never down-converts. */
export const MANIFEST_ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ');

const PAGE_SIZE = 1000;
const MAX_PAGES = 10_000;
const MAX_REDIRECTS = 5;

/** What a failed upstream request was: named in the task's error so the failure can be acted on. */
export interface UpstreamFailure {
  url: string;
  repository: string;
  /** What was being fetched: `tags`, `catalog`, `manifest <ref>`, `blob <digest>`, `token`. */
  fetching: string;
  status?: number;
  /** The OCI error code of the answer (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, …) when it sent one. */
  errorCode?: string;
}

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly code = 'upstream-failed';
  constructor(
    message: string,
    readonly status?: number,
    readonly transient = false,
    readonly details?: UpstreamFailure,
  ) {
    super(message);
  }
}

/** The first OCI error code of an error body (`{"errors":[{"code":"NAME_UNKNOWN",…}]}`). */
function ociErrorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown }[] };
    const code = parsed.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

function isAbort(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR')
  );
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (one challenge). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let m = re.exec(match[2] ?? ''); m; m = re.exec(match[2] ?? '')) {
    params[(m[1] as string).toLowerCase()] =
      m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return { scheme: (match[1] as string).toLowerCase(), params };
}

/** `<url>; rel="next"` from a Link header, resolved against `base`. */
export function nextLink(header: string | string[] | undefined, base: string): string | undefined {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value) return undefined;
  for (const part of value.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (m) return new URL(m[1] as string, base).toString();
  }
  return undefined;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function isTransientStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504 || status === 500;
}

function isTransientError(err: unknown): boolean {
  if (err instanceof UpstreamError) return err.transient;
  return isRetryableNetworkError(err);
}

/**
 * A Docker Registry HTTP API V2 client: answers Basic and Bearer challenges (token realm with
 * the same credentials), follows `Link` pagination and blob redirects (dropping credentials
 * across hosts), retries transient failures with exponential back-off.
 */
export class RegistryClient {
  private readonly base: string;
  private readonly basic?: string;
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private readonly tokens = new Map<string, string>();

  constructor(
    baseUrl: string,
    credentials: UpstreamCredentials = {},
    private readonly options: { retry?: RetryPolicy; dispatcher?: Dispatcher } = {},
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    if (credentials.username !== undefined && credentials.password !== undefined) {
      this.basic = Buffer.from(`${credentials.username}:${credentials.password}`).toString(
        'base64',
      );
    }
  }

  get retry(): RetryPolicy {
    return this.options.retry ?? { retries: 3, backoffMs: 200 };
  }

  /** Runs `fn` again after a transient failure, up to the retry budget. */
  withRetry<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retry(() => fn(), { ...this.retry, shouldRetry: isTransientError, signal });
  }

  /**
   * Every tag of `repository`, following `Link` pagination. A repository the upstream does not
   * know (404 NAME_UNKNOWN) is an error, never an empty list: a typo must not look like "no tags".
   */
  async listTags(repository: string, signal?: AbortSignal): Promise<string[]> {
    return this.listPages(
      `${this.base}/v2/${repository}/tags/list?n=${PAGE_SIZE}`,
      repository,
      'tags',
      'tags',
      signal,
    );
  }

  /** Every repository of the upstream's `/v2/_catalog`, following `Link` pagination. */
  async listRepositories(signal?: AbortSignal): Promise<string[]> {
    return this.listPages(
      `${this.base}/v2/_catalog?n=${PAGE_SIZE}`,
      '',
      'catalog',
      'repositories',
      signal,
      'registry:catalog:*',
    );
  }

  private async listPages(
    first: string,
    repository: string,
    fetching: string,
    field: 'tags' | 'repositories',
    signal?: AbortSignal,
    scope?: string,
  ): Promise<string[]> {
    const items: string[] = [];
    let url: string | undefined = first;
    for (let page = 0; url && page < MAX_PAGES; page++) {
      const current: string = url;
      const failure = { url: current, repository, fetching };
      const res = await this.described(failure, () =>
        this.withRetry(async () => {
          const r = await this.send(
            current,
            'GET',
            repository,
            { accept: 'application/json' },
            signal,
            scope,
          );
          await this.expectOk(r, failure);
          const text = await r.body.text();
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          const list = (body as Record<string, unknown> | undefined)?.[field];
          const valid =
            body !== null &&
            typeof body === 'object' &&
            (list === null || (Array.isArray(list) && list.every((t) => typeof t === 'string')));
          if (!valid) {
            throw new UpstreamError(
              `failed to fetch ${fetching} ${repository ? `of ${repository} ` : ''}at ${current}: upstream answered ${r.statusCode} with a malformed body: ${text.slice(0, 120)}`,
              r.statusCode,
              false,
              { ...failure, status: r.statusCode },
            );
          }
          return {
            items: (list as string[] | null | undefined) ?? [],
            link: nextLink(r.headers.link, current),
          };
        }, signal),
      );
      items.push(...res.items);
      url = res.link;
    }
    return [...new Set(items)];
  }

  /** Gives a network failure (refused, reset, timed out) the same context an HTTP failure has. */
  private async described<T>(
    failure: UpstreamFailure,
    fn: () => Promise<T>,
    retriedInside = true,
  ): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof UpstreamError || isAbort(err)) throw err;
      const reason =
        (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err));
      const of = failure.repository ? ` of ${failure.repository}` : '';
      // Once retried inside, a failure is final; otherwise the caller's retry may try again.
      throw new UpstreamError(
        `failed to fetch ${failure.fetching}${of} at ${failure.url}: ${reason}`,
        undefined,
        !retriedInside && isTransientError(err),
        failure,
      );
    }
  }

  /** HEAD a manifest: its digest without downloading it. Undefined when unknown upstream. */
  async headManifest(
    repository: string,
    reference: string,
    signal?: AbortSignal,
  ): Promise<ManifestHead | undefined> {
    const url = `${this.base}/v2/${repository}/manifests/${reference}`;
    const failure = { url, repository, fetching: `manifest ${reference} (HEAD)` };
    return this.described(failure, () =>
      this.withRetry(async () => {
        const r = await this.send(url, 'HEAD', repository, { accept: MANIFEST_ACCEPT }, signal);
        await r.body.dump();
        if (r.statusCode === 404) return undefined;
        await this.expectOk(r, failure);
        const length = headerValue(r.headers['content-length']);
        return {
          digest: headerValue(r.headers['docker-content-digest']),
          mediaType: (headerValue(r.headers['content-type']) ?? '').split(';')[0]?.trim() ?? '',
          size: length !== undefined ? Number(length) : undefined,
        };
      }, signal),
    );
  }

  async getManifest(
    repository: string,
    reference: string,
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
    const url = `${this.base}/v2/${repository}/manifests/${reference}`;
    const failure = { url, repository, fetching: `manifest ${reference}` };
    return this.described(failure, () =>
      this.withRetry(async () => {
        const r = await this.send(url, 'GET', repository, { accept: MANIFEST_ACCEPT }, signal);
        await this.expectOk(r, failure);
        const chunks: Buffer[] = [];
        let total = 0;
        for await (const chunk of r.body as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > MAX_MANIFEST_BYTES) {
            r.body.destroy();
            throw new UpstreamError(
              `manifest ${reference} of ${repository} at ${url} is larger than ${MAX_MANIFEST_BYTES} bytes`,
              r.statusCode,
              false,
              {
                ...failure,
                status: r.statusCode,
              },
            );
          }
          chunks.push(chunk);
        }
        return {
          bytes: Buffer.concat(chunks),
          mediaType: (headerValue(r.headers['content-type']) ?? '').split(';')[0]?.trim() ?? '',
          digest: headerValue(r.headers['docker-content-digest']),
        };
      }, signal),
    );
  }

  /** Opens a blob for streaming (redirects followed); the caller must consume or destroy it. */
  async openBlob(
    repository: string,
    digest: string,
    signal?: AbortSignal,
  ): Promise<{ body: Readable; size?: number }> {
    let url = `${this.base}/v2/${repository}/blobs/${digest}`;
    const failure = { url, repository, fetching: `blob ${digest}` };
    return this.described(
      failure,
      async () => {
        let withAuth = true;
        for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
          const r: Dispatcher.ResponseData = withAuth
            ? await this.send(url, 'GET', repository, {}, signal)
            : await request(url, { method: 'GET', signal, dispatcher: this.options.dispatcher });
          if (r.statusCode >= 300 && r.statusCode < 400 && r.headers.location) {
            await r.body.dump();
            const next: URL = new URL(headerValue(r.headers.location) as string, url);
            withAuth = withAuth && next.origin === new URL(url).origin;
            url = next.toString();
            continue;
          }
          await this.expectOk(r, { ...failure, url });
          const length = headerValue(r.headers['content-length']);
          return { body: r.body, size: length !== undefined ? Number(length) : undefined };
        }
        throw new UpstreamError(
          `failed to fetch blob ${digest} of ${repository}: too many redirects`,
          undefined,
          false,
          failure,
        );
      },
      false,
    );
  }

  /** Throws an UpstreamError naming the URL, repository, status and what was fetched. */
  private async expectOk(r: Dispatcher.ResponseData, failure: UpstreamFailure): Promise<void> {
    if (r.statusCode >= 200 && r.statusCode < 300) return;
    let detail = '';
    try {
      detail = (await r.body.text()).slice(0, 300);
    } catch {
      // the body is only used to explain the failure
    }
    const errorCode = ociErrorCode(detail);
    const of = failure.repository ? ` of ${failure.repository}` : '';
    throw new UpstreamError(
      `failed to fetch ${failure.fetching}${of} at ${failure.url}: upstream answered ${r.statusCode}` +
        `${errorCode ? ` ${errorCode}` : detail ? `: ${detail}` : ''}`,
      r.statusCode,
      isTransientStatus(r.statusCode),
      { ...failure, status: r.statusCode, ...(errorCode ? { errorCode } : {}) },
    );
  }

  /** One request with the current credentials; on a challenge, authenticates and retries once. */
  private async send(
    url: string,
    method: 'GET' | 'HEAD',
    repository: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    scopeOverride?: string,
  ): Promise<Dispatcher.ResponseData> {
    const scope = scopeOverride ?? `repository:${repository}:pull`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const auth = this.authorization(scope);
      const r = await request(url, {
        method,
        headers: auth ? { ...headers, authorization: auth } : headers,
        signal,
        dispatcher: this.options.dispatcher,
        // undici closes the connection after every HEAD unless told otherwise (a guard against
        // servers that send a body with it); registries do not, and a re-sync is all HEADs.
        reset: false,
      });
      if (r.statusCode !== 401 || attempt === 1) return r;
      const challenge = parseChallenge(headerValue(r.headers['www-authenticate']));
      await r.body.dump();
      if (challenge?.scheme === 'bearer' && challenge.params.realm) {
        this.scheme = 'bearer';
        const tokenScope = challenge.params.scope ?? scope;
        this.tokens.set(scope, await this.fetchToken(challenge.params, tokenScope, signal));
      } else if (challenge?.scheme === 'basic' && this.basic) {
        this.scheme = 'basic';
      } else {
        throw new UpstreamError(
          `failed to fetch ${url}: upstream answered 401 (${challenge?.scheme ?? 'no'} challenge) and no usable credentials were given`,
          401,
          false,
          {
            url,
            repository,
            fetching: 'authentication',
            status: 401,
          },
        );
      }
    }
    throw new UpstreamError('unreachable');
  }

  private authorization(scope: string): string | undefined {
    if (this.scheme === 'basic' && this.basic) return `Basic ${this.basic}`;
    if (this.scheme === 'bearer') {
      const token = this.tokens.get(scope);
      if (token) return `Bearer ${token}`;
    }
    return undefined;
  }

  private async fetchToken(
    params: Record<string, string>,
    scope: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const realm = new URL(params.realm as string);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', scope);
    const r = await request(realm, {
      method: 'GET',
      headers: this.basic ? { authorization: `Basic ${this.basic}` } : {},
      signal,
      dispatcher: this.options.dispatcher,
    });
    await this.expectOk(r, {
      url: realm.toString(),
      repository: '',
      fetching: `a bearer token for ${scope}`,
    });
    const body = (await r.body.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError('token endpoint answered without a token');
    return token;
  }
}

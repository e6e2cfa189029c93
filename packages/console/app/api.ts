/**
 * The API client. The token lives in sessionStorage (this tab only, gone when it closes) and
 * travels as a bearer header: the browser never sends it on its own, so no request can be
 * forged from another site (no cookies, no CSRF), and it is never part of a URL.
 */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  issues?: Array<{ path: string; message: string }>;
  [key: string]: unknown;
}

export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
  }
}

const TOKEN_KEY = 'flotilla.console.token';

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Called when the API refuses the token (401): the shell sends the user to the login form. */
let unauthorized: (problem: Problem) => void = () => undefined;
export function onUnauthorized(handler: (problem: Problem) => void): void {
  unauthorized = handler;
}

function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Problem).title === 'string' &&
    typeof (value as Problem).status === 'number'
  );
}

/** Content's API is on this origin; the mirrors API is reached through the console's proxy. */
const CONTENT_BASE = new URL('../api/v1', location.href).pathname;
const MIRRORS_BASE = new URL('mirrors-api/api/v1', location.href).pathname;

async function call<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = session.token();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(base + path, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      credentials: 'omit',
      cache: 'no-store',
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ProblemError({
      title: 'Network error',
      status: 0,
      detail: `could not reach ${base}${path}: ${(err as Error).message}`,
    });
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const problem: Problem = isProblem(json)
      ? json
      : {
          title: response.statusText || 'Request failed',
          status: response.status,
          detail: text.slice(0, 500) || undefined,
        };
    if (response.status === 401) unauthorized(problem);
    throw new ProblemError(problem);
  }
  return json as T;
}

export const content = {
  get: <T>(path: string, signal?: AbortSignal) =>
    call<T>(CONTENT_BASE, 'GET', path, undefined, signal),
  post: <T>(path: string, body: unknown) => call<T>(CONTENT_BASE, 'POST', path, body),
  delete: <T>(path: string) => call<T>(CONTENT_BASE, 'DELETE', path),
};

export const mirrors = {
  get: <T>(path: string) => call<T>(MIRRORS_BASE, 'GET', path),
  post: <T>(path: string, body?: unknown) => call<T>(MIRRORS_BASE, 'POST', path, body),
  patch: <T>(path: string, body: unknown) => call<T>(MIRRORS_BASE, 'PATCH', path, body),
  delete: <T>(path: string) => call<T>(MIRRORS_BASE, 'DELETE', path),
};

/** The API's answers, as far as the console reads them. */
export interface RepositorySummary {
  name: string;
  channels: Record<string, number>;
  published?: { channel: string; version: number; publication: number };
}
export interface RepositoryPage {
  repositories: RepositorySummary[];
  total?: number;
  offset?: number;
  limit?: number;
}
export interface ManifestSummary {
  mediaType: string;
  kind: 'image' | 'index';
  size: number;
  createdAt: string;
  created?: string;
  platforms: string[];
}
export interface ChannelView {
  name: string;
  version: number;
  tags: Record<string, string>;
  /** Tagged digest → ids of the known keys whose signature of it the channel carries. */
  signedBy?: Record<string, string[]>;
  createdAt?: string;
  cause?: { kind: string; ref?: string };
}
export interface RepositoryDetail {
  name: string;
  createdAt: string;
  channels: ChannelView[];
  published?: { channel: string; version: number; publication: number };
  manifests?: Record<string, ManifestSummary>;
  versions?: Array<{
    number: number;
    createdAt: string;
    cause: { kind: string; ref?: string };
    tags: number;
  }>;
  diff?: {
    from: number;
    to: number;
    added: Array<{ tag: string; digest: string }>;
    removed: Array<{ tag: string; digest: string }>;
    changed: Array<{ tag: string; from: string; to: string }>;
  };
}
export interface Promotion {
  id: string;
  kind: string;
  repository: string;
  from?: string;
  to: string;
  tags: string[];
  targetTags: string[];
  digests: string[];
  actor: string;
  reason?: string;
  time: string;
  before: { version: number };
  after: { version: number };
}
/** A publication as the list answers it: counts only (the lists can be as large as a release). */
export interface Publication {
  number: number;
  channel: string;
  state: string;
  time: string;
  repositoryCount?: number;
  newBlobCount?: number;
  taskId?: string;
}
/** `GET /publications/<n>`: the repositories it wrote and a page of the blobs it added. */
export interface PublicationDetail extends Publication {
  repositories: string[];
  newBlobs: string[];
  next?: string;
}
export interface Task {
  id: string;
  kind: string;
  state: 'waiting' | 'running' | 'completed' | 'failed' | 'canceled';
  repository?: string;
  channel?: string;
  params: Record<string, unknown>;
  progress: {
    done?: number;
    total?: number;
    bytesDone?: number;
    bytesTotal?: number;
    message?: string;
  };
  result?: Record<string, unknown>;
  error?: { message: string; code?: string };
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempts: number;
  cancelRequested?: boolean;
}
export interface Mirror {
  id: string;
  name: string;
  baseUrl: string;
  country: string;
  continent: string;
  netblocks: string[];
  asn: number | null;
  bandwidth: number;
  private: boolean;
  enabled: boolean;
  autoDisabled: boolean;
  families: string[] | null;
  learnedFamilies: string[];
  publication: number | null;
  claimedPublication: number | null;
  upToDate: boolean;
  lastCrawledAt: string | null;
  lastCrawlDurationMs: number | null;
  lastCrawlStatus: string | null;
  lastCrawlError: string | null;
  consecutiveFailures: number;
}
export interface Statistics {
  since: string;
  redirects: number;
  notFound: number;
  byMirror: Record<string, number>;
  byCountry: Record<string, number>;
  byTier: Record<string, number>;
}

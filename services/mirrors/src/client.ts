import { request, type Dispatcher } from 'undici';
import type { MirrorView } from './mirrors/model.js';
import type { CrawlRecord } from './mirrors/repository.js';
import type { RedirectStatisticsSummary as StatisticsSummary } from '@flotilla/protocol';

/**
 * A small typed client of the mirrors admin API, for the CLI (`flotilla mirrors add|list|crawl`)
 * and tests. Errors carry the problem JSON's detail.
 */
export interface MirrorInput {
  name: string;
  baseUrl: string;
  country: string;
  netblocks?: string[];
  asn?: number | null;
  bandwidth?: number;
  private?: boolean;
  countriesAllowed?: string[];
  enabled?: boolean;
  families?: Array<'ipv4' | 'ipv6'> | null;
}

export interface CrawlResult {
  crawl: CrawlRecord;
  mirror: MirrorView | null;
}

export class MirrorsApiError extends Error {
  override readonly name = 'MirrorsApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface MirrorsClientOptions {
  /** Base URL of the mirrors service, e.g. `http://127.0.0.1:5002`. */
  url: string;
  token: string;
  dispatcher?: Dispatcher;
}

export class MirrorsClient {
  private readonly base: string;

  constructor(private readonly options: MirrorsClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  list(): Promise<MirrorView[]> {
    return this.call('GET', '/api/v1/mirrors');
  }

  get(id: string): Promise<MirrorView> {
    return this.call('GET', `/api/v1/mirrors/${encodeURIComponent(id)}`);
  }

  add(input: MirrorInput): Promise<MirrorView> {
    return this.call('POST', '/api/v1/mirrors', input);
  }

  update(id: string, patch: Partial<MirrorInput>): Promise<MirrorView> {
    return this.call('PATCH', `/api/v1/mirrors/${encodeURIComponent(id)}`, patch);
  }

  async remove(id: string): Promise<void> {
    await this.call('DELETE', `/api/v1/mirrors/${encodeURIComponent(id)}`);
  }

  crawl(id: string): Promise<CrawlResult> {
    return this.call('POST', `/api/v1/mirrors/${encodeURIComponent(id)}/crawl`);
  }

  crawls(id: string, limit = 20): Promise<CrawlRecord[]> {
    return this.call('GET', `/api/v1/mirrors/${encodeURIComponent(id)}/crawls?limit=${limit}`);
  }

  statistics(): Promise<StatisticsSummary> {
    return this.call('GET', '/api/v1/statistics');
  }

  private async call<T>(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.token}`,
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await request(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher: this.options.dispatcher,
    });
    const text = await response.body.text();
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (response.statusCode >= 400) {
      const detail =
        typeof parsed === 'object' && parsed !== null && 'detail' in parsed
          ? String((parsed as { detail: unknown }).detail)
          : text;
      throw new MirrorsApiError(
        response.statusCode,
        `mirrors API ${method} ${path}: ${response.statusCode} ${detail}`,
        parsed,
      );
    }
    return parsed as T;
  }
}

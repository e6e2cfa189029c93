import { OciError } from '@flotilla/protocol';

export interface PageQuery {
  n?: number;
  last?: string;
}

/** Reads `n` and `last`; `n` must be a non-negative integer, and is capped at `max` when given. */
export function parsePageQuery(query: string, max?: number): PageQuery {
  if (query === '') return {};
  const params = new URLSearchParams(query);
  const out: PageQuery = {};
  const n = params.get('n');
  if (n !== null) {
    if (!/^[0-9]{1,9}$/.test(n)) {
      throw new OciError('UNSUPPORTED', 'n must be a non-negative integer', {
        status: 400,
        detail: { n },
      });
    }
    out.n = max === undefined ? Number(n) : Math.min(Number(n), max);
  }
  const last = params.get('last');
  if (last !== null) out.last = last;
  return out;
}

/** `Link: </v2/…?last=<x>&n=<n>>; rel="next"`, as Distribution writes it. */
export function nextLink(path: string, last: string, n: number): string {
  return `<${path}?last=${encodeURIComponent(last)}&n=${n}>; rel="next"`;
}

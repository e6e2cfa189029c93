import { pageAfter } from '../catalog/catalog.js';
import type { V2Context } from './context.js';
import { nextLink, parsePageQuery } from './pagination.js';
import { sendJson } from './respond.js';

/** Distribution's defaults: 100 repositories a page unless `n` says otherwise, at most 1000. */
export const CATALOG_DEFAULT_PAGE = 100;
export const CATALOG_MAX_PAGE = 1000;

/** `GET /v2/_catalog[?n=&last=]` over the names this client may see. */
export function serveCatalog(ctx: V2Context, names: readonly string[], cacheControl: string): void {
  const query = parsePageQuery(ctx.query, CATALOG_MAX_PAGE);
  const n = query.n ?? CATALOG_DEFAULT_PAGE;
  const page = pageAfter(names, query.last, n);
  const headers: Record<string, string> = { 'Cache-Control': cacheControl };
  if (page.more && page.items.length > 0)
    headers.Link = nextLink('/v2/_catalog', page.items[page.items.length - 1]!, n);
  sendJson(ctx.res, ctx.head, { repositories: page.items }, headers);
}

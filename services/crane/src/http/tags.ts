import { pageAfter } from '../catalog/catalog.js';
import { pulpTagsLocation, type PulpRepository } from '../catalog/pulp.js';
import type { RepositoryView } from '../catalog/repository.js';
import type { V2Context } from './context.js';
import { nextLink, parsePageQuery } from './pagination.js';
import { sendJson, sendRedirect } from './respond.js';

/** `GET /v2/<name>/tags/list[?n=&last=]`: sorted tags, a `Link` to the next page when more remain. */
export function serveTags(ctx: V2Context, repo: RepositoryView, cacheControl: string): void {
  const query = parsePageQuery(ctx.query);
  const page = pageAfter(repo.tagNames, query.last, query.n);
  const headers: Record<string, string> = { 'Cache-Control': cacheControl };
  if (page.more && query.n !== undefined && page.items.length > 0) {
    headers.Link = nextLink(
      `/v2/${repo.name}/tags/list`,
      page.items[page.items.length - 1]!,
      query.n,
    );
  }
  sendJson(ctx.res, ctx.head, { name: repo.name, tags: page.items }, headers);
}

export function servePulpTags(ctx: V2Context, repo: PulpRepository): void {
  sendRedirect(ctx.res, 302, pulpTagsLocation(repo));
}

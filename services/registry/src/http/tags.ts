import { authorize, Locations, pageSize, paginate, sendJson, type V2Context } from './context.js';

/** `/v2/<name>/tags/list?n=&last=`: sorted, paginated with `Link: <…>; rel="next"`. */
export async function listTags(ctx: V2Context): Promise<void> {
  await authorize(ctx, 'pull');
  const query = ctx.query();
  const n = pageSize(query.get('n'));
  const all = await ctx.deps.registry.repository(ctx.name).manifests.tags();
  const page = paginate(all, n, query.get('last'));
  const headers: Record<string, string> = {};
  if (page.next !== undefined && n !== undefined) {
    headers['Link'] =
      `<${Locations.tagsList(ctx.name)}?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
  }
  sendJson(ctx.res, 200, { name: ctx.name, tags: page.items }, headers, ctx.method === 'HEAD');
}

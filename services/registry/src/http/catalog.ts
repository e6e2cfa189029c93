import { caller, Locations, pageSize, paginate, sendJson, type V2Context } from './context.js';
import { unauthorized } from '../auth/authenticator.js';

/** `/v2/_catalog?n=&last=`: the repositories the caller may pull, sorted and paginated. */
export async function listCatalog(ctx: V2Context): Promise<void> {
  const user = await caller(ctx);
  const query = ctx.query();
  const n = pageSize(query.get('n'));
  const names = (await ctx.deps.registry.catalog()).filter((name) =>
    ctx.deps.policy.allows(user, name, 'pull'),
  );
  if (user === undefined && names.length === 0 && !ctx.deps.policy.anonymousPull) {
    throw unauthorized();
  }
  const page = paginate(names, n, query.get('last'));
  const headers: Record<string, string> = {};
  if (page.next !== undefined && n !== undefined) {
    headers['Link'] =
      `<${Locations.catalog}?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
  }
  sendJson(ctx.res, 200, { repositories: page.items }, headers, ctx.method === 'HEAD');
}

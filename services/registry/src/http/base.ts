import { unauthorized } from '../auth/authenticator.js';
import { caller, sendJson, type V2Context } from './context.js';

/**
 * `GET /v2/`: the version check. A request without credentials gets the Basic challenge
 * even when anonymous pull is on, as Distribution does: clients learn there that they can
 * authenticate and send credentials with their pushes. Explicitly empty credentials
 * (`Basic Og==`, what containers/image sends without a login) are anonymous.
 */
export async function versionCheck(ctx: V2Context): Promise<void> {
  if (ctx.req.headers.authorization === undefined) throw unauthorized();
  const user = await caller(ctx);
  if (user === undefined && !ctx.deps.policy.anonymousPull) throw unauthorized();
  sendJson(ctx.res, 200, {}, {}, ctx.method === 'HEAD');
}

import {
  createServiceApp,
  problems,
  type Readiness,
  type ServiceApp,
  type ServiceMetrics,
} from '@flotilla/kit';
import type { PublishedKeys } from '@flotilla/protocol';
import type { Logger } from 'pino';

export interface CraneAppDeps {
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: Readiness;
  /** The published signing keys (`keys/index.json`), null before a tree with keys is loaded. */
  keys?: () => PublishedKeys | null;
}

const KEY_FILE = /^([a-f0-9]{16}|current)\.pub$/;

/**
 * The express side of crane: `/healthz`, `/readyz`, `/metrics`, the public keys images are
 * signed with (`/keys`, `/keys/<id>.pub`, `/keys/current.pub`) and the error mapper. Every
 * `/v2/` request is answered before it, by the lean handler (`http/v2-handler.ts`).
 */
export function createApp(deps: CraneAppDeps): ServiceApp {
  return createServiceApp(
    { name: 'crane', logger: deps.logger, metrics: deps.metrics, readiness: deps.readiness },
    (app) => {
      const published = (): PublishedKeys => {
        const keys = deps.keys?.() ?? null;
        if (!keys) throw problems.notFound('no signing keys are published yet');
        return keys;
      };
      app.get('/keys', (_req, res) => {
        const keys = published();
        res.set('Cache-Control', 'public, max-age=60').json({
          current: keys.current,
          keys: keys.keys.map((k) => ({
            id: k.id,
            status: k.status,
            url: `/keys/${k.id}.pub`,
            publicKey: k.publicKey,
          })),
        });
      });
      app.get('/keys/:file', (req, res) => {
        const m = KEY_FILE.exec(req.params.file);
        if (!m) throw problems.notFound('keys are named <16 hex>.pub or current.pub');
        const keys = published();
        const id = m[1] === 'current' ? keys.current : m[1];
        const key = keys.keys.find((k) => k.id === id);
        if (!key) throw problems.notFound(`no published key ${id}`);
        // A key id names its content for good; `current.pub` moves with a rotation.
        res
          .set('Cache-Control', m[1] === 'current' ? 'public, max-age=60' : 'public, max-age=86400')
          .type('application/x-pem-file')
          .send(key.publicKey);
      });
    },
  );
}

import { createServiceApp, type Readiness, type ServiceApp, type ServiceMetrics } from '@flotilla/kit';
import type { Logger } from 'pino';

export interface CraneAppDeps {
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: Readiness;
}

/**
 * The express side of crane: `/healthz`, `/readyz`, `/metrics` and the error mapper. Every
 * `/v2/` request is answered before it, by the lean handler (`http/v2-handler.ts`).
 */
export function createApp(deps: CraneAppDeps): ServiceApp {
  return createServiceApp(
    { name: 'crane', logger: deps.logger, metrics: deps.metrics, readiness: deps.readiness },
    () => undefined,
  );
}

import { createServiceApp, type LeanHandler, type Readiness, type ServiceMetrics } from '@flotilla/kit';
import type { Express } from 'express';
import type { Logger } from 'pino';

export interface CraneAppDeps {
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: Readiness;
  /** The lean `/healthz`, `/readyz`, `/metrics` handler the service also puts ahead of the app. */
  operational?: LeanHandler;
}

/**
 * The express side of crane: `/healthz`, `/readyz`, `/metrics` and the error mapper. Every
 * `/v2/` request is answered before it, by the lean handler (`http/v2-handler.ts`).
 */
export function createApp(deps: CraneAppDeps): Express {
  return createServiceApp(
    { name: 'crane', logger: deps.logger, metrics: deps.metrics, readiness: deps.readiness, operational: deps.operational },
    () => undefined,
  );
}

import { createMetrics, type ServiceInstance } from '@flotilla/kit';
import {
  createMirrorsService,
  type MirrorsService,
  type MirrorsServiceDeps,
} from '@flotilla/mirrors';
import {
  createRedirectorService,
  type GeoLookup,
  type RedirectorConfig,
  type RedirectorService,
} from '@flotilla/redirector';

export interface MirrorsWithRedirector extends ServiceInstance {
  readonly mirrors: MirrorsService;
  readonly redirector: RedirectorService;
}

/**
 * All-in-one's mirrors port: the mirrors service and the redirector module in one process,
 * so `/pub/containers/…` and `/mirrorlist` answer on the same port as `/mirrors`, `/master/`
 * and the admin API. The redirector takes each snapshot straight from the mirrors service
 * (the file is still written, for redirector processes started beside it), shares its
 * /metrics and gives `/api/v1/statistics` its counts.
 */
export async function createMirrorsWithRedirector(
  deps: Omit<MirrorsServiceDeps, 'metrics' | 'statistics'> & {
    redirectorConfig: RedirectorConfig;
    geo?: GeoLookup;
  },
): Promise<MirrorsWithRedirector> {
  const { redirectorConfig, geo, ...mirrorsDeps } = deps;
  const metrics = createMetrics('mirrors');
  const redirector = await createRedirectorService({
    config: redirectorConfig,
    logger: deps.logger,
    metrics,
    source: 'push',
    ...(geo ? { geo } : {}),
    ...(deps.random ? { random: deps.random } : {}),
  });
  const mirrors = await createMirrorsService({
    ...mirrorsDeps,
    metrics,
    statistics: () => Promise.resolve(redirector.statistics.summary()),
  });
  const unsubscribe = mirrors.onSnapshot((snapshot) => redirector.apply(snapshot));
  return {
    name: 'mirrors',
    mirrors,
    redirector,
    handler(req, res) {
      if (!redirector.handle(req, res)) mirrors.handler(req, res);
    },
    async start() {
      await redirector.start();
      await mirrors.start();
    },
    async stop() {
      unsubscribe();
      await mirrors.stop();
      await redirector.stop();
    },
    ready: () => mirrors.ready(),
  };
}

import type { Bus } from '@flotilla/bus';
import type { ListenOptions, Logger, ServiceInstance } from '@flotilla/kit';
import type { Store } from '@flotilla/store';

export interface SharedDeps {
  logger: Logger;
  store: Store;
  bus: Bus;
}

/** A service whose configuration is valid: how it listens, and how to build it. */
export interface ConfiguredService {
  /** As the service's own `main` listens (crane's timeouts and header limit included). */
  listen: Omit<ListenOptions, 'logger'>;
  create(deps: SharedDeps): Promise<ServiceInstance>;
}

/** What the CLI needs of each service: its configuration, its factory and its suite-mode main. */
export interface ServiceModule {
  /** Validates the service's environment; throws the kit's ConfigError naming the variable. */
  configure(env: NodeJS.ProcessEnv): ConfiguredService;
  main(env?: NodeJS.ProcessEnv): Promise<unknown>;
}

export const SERVICE_NAMES = ['registry', 'crane', 'mirrors', 'redirector', 'content'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** What `flotilla start` runs; the redirector runs inside mirrors there (mirrors-with-redirector.ts). */
export const ALL_IN_ONE_SERVICES = [
  'registry',
  'crane',
  'mirrors',
  'content',
] as const satisfies readonly ServiceName[];

/**
 * Each service's package is loaded only when a command needs it: the CLI's other commands
 * (and `serve` of another service) start without evaluating four services' dependency trees.
 */
const LOADERS: Record<ServiceName, () => Promise<ServiceModule>> = {
  async registry() {
    const { createRegistryService, loadRegistryConfig, main } = await import('@flotilla/registry');
    return {
      configure(env) {
        const config = loadRegistryConfig(env);
        return {
          listen: { host: config.host, port: config.port },
          create: ({ logger, bus }) => createRegistryService({ config, logger, bus }),
        };
      },
      main,
    };
  },
  async crane() {
    const { createCraneService, loadCraneConfig, main } = await import('@flotilla/crane');
    return {
      configure(env) {
        const config = loadCraneConfig(env);
        const { host, port, headersTimeoutMs, requestTimeoutMs, maxHeaderSize } = config;
        return {
          listen: { host, port, headersTimeoutMs, requestTimeoutMs, maxHeaderSize },
          create: ({ logger, bus }) => createCraneService({ config, logger, bus }),
        };
      },
      main,
    };
  },
  async mirrors() {
    const [{ loadMirrorsConfig, main }, { loadRedirectorConfig }, { createMirrorsWithRedirector }] =
      await Promise.all([
        import('@flotilla/mirrors'),
        import('@flotilla/redirector'),
        import('./mirrors-with-redirector.js'),
      ]);
    return {
      configure(env) {
        const config = loadMirrorsConfig(env);
        const redirectorConfig = loadRedirectorConfig(env);
        return {
          listen: { host: config.host, port: config.port },
          create: (deps) => createMirrorsWithRedirector({ config, redirectorConfig, ...deps }),
        };
      },
      main,
    };
  },
  async redirector() {
    const { createRedirectorService, loadRedirectorConfig, main } =
      await import('@flotilla/redirector');
    return {
      configure(env) {
        const config = loadRedirectorConfig(env);
        return {
          listen: { host: config.host, port: config.port },
          create: ({ logger }) => createRedirectorService({ config, logger }),
        };
      },
      main,
    };
  },
  async content() {
    const { createContentService, loadContentConfig, main } = await import('@flotilla/content');
    return {
      configure(env) {
        const config = loadContentConfig(env);
        return {
          listen: { host: config.host, port: config.port },
          create: (deps) => createContentService({ config, ...deps }),
        };
      },
      main,
    };
  },
};

export function loadService(name: ServiceName): Promise<ServiceModule> {
  return LOADERS[name]();
}

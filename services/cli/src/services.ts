import type { Bus } from '@flotilla/bus';
import type { ListenOptions, Logger, ServiceInstance } from '@flotilla/kit';
import type { Store } from '@flotilla/store';
import { createContentService, loadContentConfig, main as contentMain } from '@flotilla/content';
import { createCraneService, loadCraneConfig, main as craneMain } from '@flotilla/crane';
import { createMirrorsService, loadMirrorsConfig, main as mirrorsMain } from '@flotilla/mirrors';
import { createRegistryService, loadRegistryConfig, main as registryMain } from '@flotilla/registry';

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

export const SERVICE_NAMES = ['registry', 'crane', 'mirrors', 'content'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export const SERVICES: Record<ServiceName, ServiceModule> = {
  registry: {
    configure(env) {
      const config = loadRegistryConfig(env);
      return {
        listen: { host: config.host, port: config.port },
        create: ({ logger, bus }) => createRegistryService({ config, logger, bus }),
      };
    },
    main: registryMain,
  },
  crane: {
    configure(env) {
      const config = loadCraneConfig(env);
      const { host, port, headersTimeoutMs, requestTimeoutMs, maxHeaderSize } = config;
      return {
        listen: { host, port, headersTimeoutMs, requestTimeoutMs, maxHeaderSize },
        create: ({ logger, bus }) => createCraneService({ config, logger, bus }),
      };
    },
    main: craneMain,
  },
  mirrors: {
    configure(env) {
      const config = loadMirrorsConfig(env);
      return {
        listen: { host: config.host, port: config.port },
        create: (deps) => createMirrorsService({ config, ...deps }),
      };
    },
    main: mirrorsMain,
  },
  content: {
    configure(env) {
      const config = loadContentConfig(env);
      return {
        listen: { host: config.host, port: config.port },
        create: (deps) => createContentService({ config, ...deps }),
      };
    },
    main: contentMain,
  },
};

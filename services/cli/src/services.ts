import type { Bus } from '@flotilla/bus';
import type { ListenOptions, Logger, ServiceInstance } from '@flotilla/kit';
import type { Store } from '@flotilla/store';
import { createContentService, loadContentConfig, main as contentMain } from '@flotilla/content';
import { createCraneService, loadCraneConfig, main as craneMain } from '@flotilla/crane';
import { createMirrorsService, loadMirrorsConfig, main as mirrorsMain } from '@flotilla/mirrors';
import { createRegistryService, loadRegistryConfig, main as registryMain } from '@flotilla/registry';

/** What the CLI needs of each service: its config loader, its factory and its suite-mode main. */
export interface ServiceModule {
  name: ServiceName;
  defaultPort: number;
  /** Builds the service for all-in-one: shared embedded store and local bus. */
  create(env: NodeJS.ProcessEnv, deps: { logger: Logger; store: Store; bus: Bus }): Promise<{
    instance: ServiceInstance;
    /** How to listen, as the service's own `main` would (crane's timeouts and header limit). */
    listen: Omit<ListenOptions, 'logger'>;
  }>;
  main(env?: NodeJS.ProcessEnv): Promise<unknown>;
}

export const SERVICE_NAMES = ['registry', 'crane', 'mirrors', 'content'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export const SERVICES: Record<ServiceName, ServiceModule> = {
  registry: {
    name: 'registry',
    defaultPort: 5000,
    async create(env, deps) {
      const config = loadRegistryConfig(env);
      const instance = await createRegistryService({ config, logger: deps.logger, bus: deps.bus });
      return { instance, listen: { host: config.host, port: config.port } };
    },
    main: registryMain,
  },
  crane: {
    name: 'crane',
    defaultPort: 5001,
    async create(env, deps) {
      const config = loadCraneConfig(env);
      const instance = await createCraneService({ config, logger: deps.logger, bus: deps.bus });
      return {
        instance,
        listen: {
          host: config.host,
          port: config.port,
          headersTimeoutMs: config.headersTimeoutMs,
          requestTimeoutMs: config.requestTimeoutMs,
          maxHeaderSize: config.maxHeaderSize,
        },
      };
    },
    main: craneMain,
  },
  mirrors: {
    name: 'mirrors',
    defaultPort: 5002,
    async create(env, deps) {
      const config = loadMirrorsConfig(env);
      const instance = await createMirrorsService({ config, logger: deps.logger, store: deps.store, bus: deps.bus });
      return { instance, listen: { host: config.host, port: config.port } };
    },
    main: mirrorsMain,
  },
  content: {
    name: 'content',
    defaultPort: 5003,
    async create(env, deps) {
      const config = loadContentConfig(env);
      const instance = await createContentService({ config, logger: deps.logger, store: deps.store, bus: deps.bus });
      return { instance, listen: { host: config.host, port: config.port } };
    },
    main: contentMain,
  },
};

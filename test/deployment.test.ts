/**
 * The deployment files must agree with the code: every environment variable that compose,
 * the Kubernetes manifests and the systemd units hand a service is one that service's config
 * schema reads, and every port, probe and health check points where the service listens.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { contentConfigSchema } from '@flotilla/content';
import { craneConfigSchema } from '@flotilla/crane';
import { mirrorsConfigSchema } from '@flotilla/mirrors';
import { redirectorConfigSchema } from '@flotilla/redirector';
import { registryConfigSchema } from '@flotilla/registry';
import { CLI_ENVIRONMENT, TESTING_CRANE_PORT } from '@flotilla/cli';
import { repoRoot } from './support/flotilla.js';

const SERVICES = {
  registry: 5000,
  crane: 5001,
  mirrors: 5002,
  content: 5003,
  redirector: 5004,
} as const;
type Service = keyof typeof SERVICES;
/** Read by the service chassis (the kit's logger), not by a service schema. */
const CHASSIS = ['LOG_LEVEL', 'NODE_ENV'];
const schemaKeys: Record<Service, Set<string>> = {
  registry: new Set([...Object.keys(registryConfigSchema.shape), ...CHASSIS]),
  crane: new Set([...Object.keys(craneConfigSchema.shape), ...CHASSIS]),
  mirrors: new Set([...Object.keys(mirrorsConfigSchema.shape), ...CHASSIS]),
  content: new Set([...Object.keys(contentConfigSchema.shape), ...CHASSIS]),
  redirector: new Set([...Object.keys(redirectorConfigSchema.shape), ...CHASSIS]),
};
const isService = (s: string): s is Service => s in SERVICES;

interface Container {
  args: string[];
  envFrom?: Array<{ configMapRef: { name: string } }>;
  env?: Array<{ name: string; value?: string }>;
  ports: Array<{ containerPort: number }>;
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  resources: { requests?: Record<string, string> };
}
interface Deployment {
  metadata: { name: string };
  spec: { template: { spec: { containers: Container[] } } };
}
interface NetworkPolicy {
  spec: {
    podSelector: { matchExpressions?: Array<{ values: string[] }> };
    ingress: Array<{ from?: unknown; ports?: Array<{ port: number }> }>;
  };
}
const text = (p: string) => readFile(join(repoRoot, p), 'utf8');

function unknownKeys(service: Service, keys: string[]): string[] {
  return keys.filter((k) => !schemaKeys[service].has(k));
}

/**
 * What docs/operations.md ("Running several replicas") asks of the shared services: MongoDB as
 * a replica set written with w=majority and a database named in the URL; every service on one
 * RabbitMQ vhost (whose default queue type is quorum).
 */
function expectReplicaReadyUrls(env: Array<[string, string]>): void {
  const mongo = env
    .filter(([k]) => k === 'MONGODB_URL')
    .map(([, v]) => new URL(v.replace(/^mongodb:\/\/[^/]*/, 'mongodb://hosts')));
  expect(mongo.length).toBeGreaterThan(0);
  for (const url of mongo) {
    expect(url.searchParams.get('replicaSet'), String(url)).toBeTruthy();
    expect(url.searchParams.get('w'), String(url)).toBe('majority');
    expect(url.pathname, String(url)).toBe('/flotilla');
  }
  const vhosts = new Set(env.filter(([k]) => k === 'AMQP_URL').map(([, v]) => new URL(v).pathname));
  expect([...vhosts]).toEqual(['/flotilla']);
}

describe('docker-compose.yml', async () => {
  const compose = parseYaml(await text('docker-compose.yml'), { merge: true }) as {
    services: Record<
      string,
      {
        command?: string[];
        environment?: Record<string, string>;
        ports?: string[];
        healthcheck?: { test: string[] };
      }
    >;
  };
  const flotilla = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'serve');

  it('runs each of the five services once', () => {
    expect(flotilla.map(([, s]) => s.command?.[1]).sort()).toEqual(Object.keys(SERVICES).sort());
  });

  for (const [name, svc] of flotilla) {
    const service = svc.command![1]!;
    it(`${name}: sets only variables its config schema reads, and listens where it is published`, () => {
      expect(isService(service)).toBe(true);
      if (!isService(service)) return;
      const env = svc.environment ?? {};
      expect(unknownKeys(service, Object.keys(env))).toEqual([]);
      const port = Number(env[`FLOTILLA_${service.toUpperCase()}_PORT`]);
      expect(port).toBe(SERVICES[service]);
      expect(env[`FLOTILLA_${service.toUpperCase()}_HOST`]).toBe('0.0.0.0');
      expect(svc.ports).toContain(`${port}:${port}`);
      expect(svc.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${port}/readyz`);
    });
  }

  it.each(['crane', 'redirector'])(
    'gives %s, on the open internet, no database URL and no secret',
    (service) => {
      const svc = flotilla.find(([, s]) => s.command?.[1] === service)![1];
      const keys = Object.keys(svc.environment ?? {});
      expect(keys.filter((k) => /MONGODB|PASSWORD|TOKEN|SECRET/.test(k))).toEqual([]);
    },
  );

  it('runs MongoDB as a replica set written with w=majority, and every service on the quorum vhost', () => {
    expectReplicaReadyUrls(flotilla.flatMap(([, s]) => Object.entries(s.environment ?? {})));
    const mongo = compose.services.mongo as { command?: string[] };
    expect(mongo.command).toContain('--replSet');
    const rabbit = compose.services.rabbitmq!.healthcheck!.test.join(' ');
    expect(rabbit).toMatch(/add_vhost flotilla --default-queue-type quorum/);
  });

  it('mirrors and the redirector share the selection snapshot', () => {
    const of = (service: string) =>
      flotilla.find(([, s]) => s.command?.[1] === service)![1].environment ?? {};
    expect(of('redirector').FLOTILLA_SELECTION_SNAPSHOT).toBeDefined();
    expect(of('redirector').FLOTILLA_SELECTION_SNAPSHOT).toBe(
      of('mirrors').FLOTILLA_SELECTION_SNAPSHOT,
    );
    expect(of('crane').FLOTILLA_CRANE_BLOB_BASE_URL).toMatch(/:5004\/pub\/containers$/);
  });

  it('the setup container uses only what the CLI reads', () => {
    const setup = compose.services.setup!;
    const known = new Set<string>(CLI_ENVIRONMENT);
    expect(Object.keys(setup.environment ?? {}).filter((k) => !known.has(k))).toEqual([]);
  });
});

describe('deploy/kubernetes', async () => {
  const dir = join(repoRoot, 'deploy', 'kubernetes');
  const kustomization = parseYaml(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  const docs: Array<{ kind: string; metadata: { name: string }; [k: string]: unknown }> = [];
  for (const file of kustomization.resources) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      expect(doc.errors, `${file} parses`).toEqual([]);
      docs.push(doc.toJSON());
    }
  }
  const files = (await readdir(dir)).filter(
    (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
  );
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const configMaps = new Map(
    byKind('ConfigMap').map((c) => [
      c.metadata.name,
      Object.keys((c as { data?: object }).data ?? {}),
    ]),
  );

  it('lists every manifest in kustomization.yaml', () => {
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  for (const [service, port] of Object.entries(SERVICES) as Array<[Service, number]>) {
    it(`${service}: env from its ConfigMap and Secret refs is in its schema; ports and probes match`, () => {
      const dep = (byKind('Deployment') as unknown as Deployment[]).find(
        (d) => d.metadata.name === `flotilla-${service}`,
      );
      expect(dep, `Deployment flotilla-${service}`).toBeDefined();
      const c = dep!.spec.template.spec.containers[0]!;
      expect(c.args).toEqual(['serve', service]);
      const fromMaps = (c.envFrom ?? []).flatMap((e) => {
        expect(configMaps.has(e.configMapRef.name), `ConfigMap ${e.configMapRef.name} exists`).toBe(
          true,
        );
        return configMaps.get(e.configMapRef.name) ?? [];
      });
      const explicit = c.env ?? [];
      expect(unknownKeys(service, [...fromMaps, ...explicit.map((e) => e.name)])).toEqual([]);
      expect(
        Number(explicit.find((e) => e.name === `FLOTILLA_${service.toUpperCase()}_PORT`)?.value),
      ).toBe(port);
      expect(c.ports[0]!.containerPort).toBe(port);
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.resources.requests).toBeDefined();
      const svc = byKind('Service').find(
        (d) => d.metadata.name === `flotilla-${service}`,
      ) as unknown as { spec: { ports: Array<{ port: number }> } };
      expect(svc.spec.ports[0]!.port).toBe(port);
      expect(
        byKind('PodDisruptionBudget').some((d) => d.metadata.name === `flotilla-${service}`),
      ).toBe(true);
    });
  }

  it('exposes only crane, the redirector and mirrors outside, and autoscales crane and the redirector', () => {
    const policies = byKind('NetworkPolicy') as unknown as NetworkPolicy[];
    const open = policies.filter((p) => p.spec.ingress.some((r) => !r.from));
    expect(open).toHaveLength(1);
    expect(open[0]!.spec.podSelector.matchExpressions?.[0]?.values.sort()).toEqual([
      'crane',
      'mirrors',
      'redirector',
    ]);
    expect(open[0]!.spec.ingress.flatMap((r) => r.ports?.map((p) => p.port) ?? []).sort()).toEqual([
      SERVICES.crane,
      SERVICES.mirrors,
      SERVICES.redirector,
    ]);
    const hpas = byKind('HorizontalPodAutoscaler') as unknown as Array<{
      spec: { scaleTargetRef: { name: string } };
    }>;
    expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual([
      'flotilla-crane',
      'flotilla-redirector',
    ]);
  });

  it('points every service at a MongoDB replica set with w=majority and the quorum vhost', () => {
    const env = byKind('ConfigMap').flatMap((c) =>
      Object.entries((c as { data?: Record<string, string> }).data ?? {}),
    );
    expectReplicaReadyUrls(env);
  });

  it.each(['crane', 'redirector'])("gives %s's pods no database URL and no secret", (service) => {
    const dep = (byKind('Deployment') as unknown as Deployment[]).find(
      (d) => d.metadata.name === `flotilla-${service}`,
    )!;
    const c = dep.spec.template.spec.containers[0]!;
    const keys = [
      ...(c.env ?? []).map((e) => e.name),
      ...(c.envFrom ?? []).flatMap((e) => configMaps.get(e.configMapRef.name) ?? []),
    ];
    expect(keys.filter((k) => /MONGODB|PASSWORD|TOKEN|SECRET/.test(k))).toEqual([]);
  });
});

describe('deploy/systemd', async () => {
  for (const service of Object.keys(SERVICES) as Service[]) {
    it(`${service}: the unit runs the service and its env file sets only variables it reads`, async () => {
      const unit = await text(`deploy/systemd/flotilla-${service}.service`);
      expect(unit).toContain(
        `ExecStart=/usr/bin/node /opt/flotilla/services/cli/dist/main.js serve ${service}`,
      );
      expect(unit).toContain(`EnvironmentFile=/etc/flotilla/${service}.env`);
      expect(unit).toContain(
        `Environment=FLOTILLA_${service.toUpperCase()}_PORT=${SERVICES[service]}`,
      );
      const keys = (await text(`deploy/systemd/${service}.env.example`))
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => l.slice(0, l.indexOf('=')));
      expect(keys.length).toBeGreaterThan(0);
      expect(unknownKeys(service, keys)).toEqual([]);
    });
  }
});

describe('default ports', () => {
  it('the code’s defaults are the documented ones, and all-in-one’s testers’ crane clashes with none', () => {
    const defaults = {
      registry: registryConfigSchema.shape.FLOTILLA_REGISTRY_PORT.parse(undefined),
      crane: craneConfigSchema.shape.FLOTILLA_CRANE_PORT.parse(undefined),
      mirrors: mirrorsConfigSchema.shape.FLOTILLA_MIRRORS_PORT.parse(undefined),
      content: contentConfigSchema.shape.FLOTILLA_CONTENT_PORT.parse(undefined),
      redirector: redirectorConfigSchema.shape.FLOTILLA_REDIRECTOR_PORT.parse(undefined),
    };
    expect(defaults).toEqual(SERVICES);
    const testers = Number(TESTING_CRANE_PORT);
    expect(testers).toBe(5005);
    expect(Object.values(SERVICES)).not.toContain(testers);
  });
});

/**
 * Flotilla itself as a black box for end-to-end tests: the `flotilla` command run from source
 * (`node --conditions=source --import tsx services/cli/src/main.ts …`, so no build is needed),
 * every service on its own free loopback port.
 *
 * ```ts
 * const ports = await freeServicePorts();
 * const env = flotillaEnv({ dataDir, ports });            // FLOTILLA_* for all-in-one or suite mode
 * const all = await startFlotilla(['start'], env, ports); // waits for registry, mirrors, content /readyz
 * const out = await flotillaCli(env, ['repos', '--json']);
 * await all.kill('SIGKILL');                              // or all.stop() (SIGTERM, waits)
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from './clients.js';
import { freePort } from './ports.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const CLI_SOURCE = 'services/cli/src/main.ts';
const NODE_ARGS = ['--conditions=source', '--import', 'tsx', CLI_SOURCE];

export interface ServicePorts {
  registry: number;
  crane: number;
  mirrors: number;
  content: number;
  /** Suite mode only: all-in-one answers redirects on the mirrors port. */
  redirector: number;
}

export async function freeServicePorts(): Promise<ServicePorts> {
  return {
    registry: await freePort(),
    crane: await freePort(),
    mirrors: await freePort(),
    content: await freePort(),
    redirector: await freePort(),
  };
}

export function flotillaEnv(o: {
  dataDir: string;
  ports: ServicePorts;
  extra?: NodeJS.ProcessEnv;
}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Never inherit a developer's suite settings or secrets by accident.
  for (const k of Object.keys(env))
    if (k.startsWith('FLOTILLA_') || k === 'MONGODB_URL' || k === 'AMQP_URL') delete env[k];
  const mirrors = `http://127.0.0.1:${o.ports.mirrors}`;
  return {
    ...env,
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
    FLOTILLA_DATA_DIR: o.dataDir,
    FLOTILLA_REGISTRY_PORT: String(o.ports.registry),
    FLOTILLA_CRANE_PORT: String(o.ports.crane),
    FLOTILLA_MIRRORS_PORT: String(o.ports.mirrors),
    FLOTILLA_CONTENT_PORT: String(o.ports.content),
    FLOTILLA_REDIRECTOR_PORT: String(o.ports.redirector),
    FLOTILLA_REGISTRY_URL: `http://127.0.0.1:${o.ports.registry}`,
    FLOTILLA_CONTENT_URL: `http://127.0.0.1:${o.ports.content}`,
    FLOTILLA_MIRRORS_URL: mirrors,
    FLOTILLA_CRANE_BLOB_BASE_URL: `${mirrors}/pub/containers`,
    FLOTILLA_MIRRORS_MASTER_URL: `${mirrors}/master`,
    // all-in-one's testing crane: any free port unless a test names one
    FLOTILLA_CRANE_TESTING_PORT: '0',
    ...o.extra,
  };
}

export interface FlotillaProcess {
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after 15 s); resolves to the exit code. */
  stop(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Waits until every URL answers 200. */
export async function waitReady(
  urls: string[],
  proc?: FlotillaProcess,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      if (proc && proc.child.exitCode !== null)
        throw new Error(`flotilla exited early (${proc.child.exitCode}):\n${proc.output()}`);
      const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline)
        throw new Error(`${url} not ready after ${timeoutMs} ms:\n${proc?.output() ?? ''}`);
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

/**
 * Starts `flotilla <args>` and waits for the readiness of the services it runs (crane only
 * turns ready once a publication exists, so its /healthz is awaited instead).
 */
export async function startFlotilla(
  args: string[],
  env: NodeJS.ProcessEnv,
  ports: ServicePorts,
): Promise<FlotillaProcess> {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-40_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const proc: FlotillaProcess = {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      await exited;
    },
  };
  const which =
    args[0] === 'serve'
      ? [args[1] as keyof ServicePorts]
      : (['registry', 'crane', 'mirrors', 'content'] as const);
  await waitReady(
    which.map((s) => `http://127.0.0.1:${ports[s]}/${s === 'crane' ? 'healthz' : 'readyz'}`),
    proc,
  );
  return proc;
}

/** Runs the CLI; rejects with its one-line error when it exits non-zero (unless `allowFailure`). */
export async function flotillaCli(
  env: NodeJS.ProcessEnv,
  args: string[],
  o: { allowFailure?: boolean } = {},
): Promise<RunResult> {
  const result = await run(process.execPath, [...NODE_ARGS, ...args], {
    env,
    cwd: repoRoot,
    timeoutMs: 120_000,
  });
  if (result.code !== 0 && !o.allowFailure) {
    throw new Error(`flotilla ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  }
  return result;
}

/** Polls `check` until it returns a value other than undefined. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

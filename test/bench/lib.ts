/**
 * The benchmark harness's shared tools. A bench module (`test/bench/<name>.ts`) default-exports
 * `async (ctx: BenchContext) => BenchRow[]`; `run.ts` runs the modules named on the command line
 * (all by default), prints one table and writes `.bench/results.json`.
 *
 * Every figure is measured side by side with the peer (Docker Distribution, or a bare node:http
 * handler) in the same run and reported as a ratio. Only loopback addresses; every load loop is
 * bounded by wrk's duration.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ceilings } from './ceilings.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface BenchRow {
  /** The issue or area, e.g. `registry`. */
  group: string;
  metric: string;
  ours: number;
  /** The peer's figure in the same run, when there is a peer. */
  theirs?: number;
  unit: string;
  /** ours ÷ theirs, or the ratio the target is stated in. */
  ratio?: number;
  /** The target as the issue states it, e.g. `≥ 5×`. */
  target?: string;
  pass?: boolean;
  note?: string;
}

export interface BenchContext {
  /** A fresh temporary directory for this module. */
  workDir: string;
  /** `BENCH_QUICK=1`: shorter runs and only the smallest sizes of each curve. */
  quick: boolean;
  /** This machine's ceilings, measured once at the start of the run (`ceilings.ts`). */
  ceilings: Ceilings;
  log(message: string): void;
  /** Records a curve; `run.ts` plots it to `<id>.svg` and keeps its points in the results. */
  curve(curve: Curve): void;
}

/** One measured point of a curve: `y` at size `x`, in the named series. */
export interface CurvePoint {
  series: string;
  x: number;
  y: number;
}

/** How a figure grows with the work, measured at three or more sizes and plotted. */
export interface Curve {
  /** File name of the plot, e.g. `crane-load`: docs/bench/plots/crane-load.svg. */
  id: string;
  title: string;
  x: { label: string; log?: boolean };
  y: { label: string; log?: boolean };
  points: CurvePoint[];
}

/**
 * The exponent k of y ∝ x^k, fitted by least squares on log–log axes: about 1 for a linear
 * cost, about 0 for a flat one, 2 for a quadratic one.
 */
export function growthExponent(points: { x: number; y: number }[]): number {
  const pts = points.filter((p) => p.x > 0 && p.y > 0);
  if (pts.length < 2) return Number.NaN;
  const xs = pts.map((p) => Math.log(p.x));
  const ys = pts.map((p) => Math.log(p.y));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

/**
 * A row stating how one series grows: `linear` passes when the fitted exponent is at most 1.15
 * (a little above 1 is noise and caches filling; 2 would be quadratic), `flat` when it is at most
 * 0.15 (a tenfold size costs at most 1.4× as much).
 */
export function growthRow(
  group: string,
  metric: string,
  points: { x: number; y: number }[],
  expect: 'linear' | 'flat',
  note?: string,
): BenchRow {
  const k = growthExponent(points);
  const limit = expect === 'linear' ? 1.15 : 0.15;
  return {
    group,
    metric,
    ours: k,
    unit: 'exponent',
    target: `${expect}: k ≤ ${limit}`,
    pass: k <= limit,
    note: note ?? `y ∝ size^k fitted over ${points.length} sizes`,
  };
}

export type BenchModule = (ctx: BenchContext) => Promise<BenchRow[]>;

import { freePort } from '../support/ports.js';

export { freePort };

export interface WrkOptions {
  url: string;
  connections: number;
  seconds: number;
  threads?: number;
  headers?: Record<string, string>;
}

export interface WrkResult {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were neither 2xx nor 3xx. */
  non2xx3xx: number;
  socketErrors: number;
}

function parseDurationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

/**
 * Runs wrk (Debian's package) against a loopback URL with GET and parses its report. (wrk cannot
 * measure HEAD: its parser waits for a body that a HEAD response never sends; use autocannon.)
 */
export async function wrk(opts: WrkOptions): Promise<WrkResult> {
  const url = new URL(opts.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`benchmarks only target loopback, not ${url.hostname}`);
  }
  const threads = opts.threads ?? 2;
  const args = [
    `-t${Math.min(threads, opts.connections)}`,
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
  ];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(opts.url);
  const { stdout, code, stderr } = await runCommand('wrk', args, {
    timeoutMs: (opts.seconds + 30) * 1000,
  });
  if (code !== 0) throw new Error(`wrk failed (${code}): ${stderr}`);
  const num = (re: RegExp) => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : 0;
  };
  const lat = (pct: string) => {
    const m = new RegExp(`^\\s*${pct}%\\s+(\\S+)`, 'm').exec(stdout);
    return m ? parseDurationMs(m[1]!) : Number.NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p50Ms: lat('50'),
    p99Ms: lat('99'),
    non2xx3xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export async function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

/** Wall-clock seconds of `fn`. */
export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Samples a process's RSS until stopped; `stop()` returns the peak in MiB. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    rssMiB(pid).then(
      (v) => (peak = Math.max(peak, v)),
      () => undefined,
    );
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

export interface RunningProcess {
  pid: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a long-running process and waits until `readyUrl` answers (any HTTP status).
 */
export async function startProcess(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; readyUrl: string; timeoutMs?: number },
): Promise<RunningProcess> {
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited with ${child.exitCode}:\n${out}`);
    try {
      await fetch(opts.readyUrl, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${cmd} did not become ready at ${opts.readyUrl}:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    pid: child.pid!,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Node arguments that start a Flotilla service as deployments do (`flotilla serve <service>`,
 * the compiled CLI; `npm run bench` builds first).
 */
export function serveArgs(
  service: 'registry' | 'content' | 'crane' | 'mirrors' | 'redirector',
): string[] {
  return [join(repoRoot, 'services', 'cli', 'dist', 'main.js'), 'serve', service];
}

/** Starts Docker Distribution (Debian's docker-registry) on a free loopback port. */
export async function startDockerDistribution(
  rootDir: string,
): Promise<RunningProcess & { url: string }> {
  const port = await freePort();
  await mkdir(rootDir, { recursive: true });
  const config = join(rootDir, 'distribution.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(rootDir, 'distribution-data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const proc = await startProcess('/usr/bin/docker-registry', ['serve', config], {
    readyUrl: `http://127.0.0.1:${port}/v2/`,
  });
  return { ...proc, url: `http://127.0.0.1:${port}` };
}

export function ratioRow(
  group: string,
  metric: string,
  ours: number,
  theirs: number,
  unit: string,
  target: { min?: number; max?: number; text: string },
  note?: string,
): BenchRow {
  const ratio = theirs === 0 ? Number.POSITIVE_INFINITY : ours / theirs;
  const pass =
    (target.min === undefined || ratio >= target.min) &&
    (target.max === undefined || ratio <= target.max);
  return { group, metric, ours, theirs, unit, ratio, target: target.text, pass, note };
}

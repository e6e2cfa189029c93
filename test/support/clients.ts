/**
 * Real-client wrappers for black-box tests (skopeo, podman, buildah) and a small process runner.
 *
 * ```ts
 * const need = requireBinaries(['skopeo', 'podman']);   // CI=true and missing → throws
 * it.skipIf(!need.ok)('pulls', async () => { ... });      // else skip; need.reason says why
 * const { code, stdout, stderr } = await run('skopeo', ['inspect', '--tls-verify=false', ref]);
 * await skopeo(['copy', '--dest-tls-verify=false', src, dst]);          // throws on exit ≠ 0
 * const root = await mkdtemp(join(tmpdir(), 'podman-'));
 * await podman(root, ['pull', '--tls-verify=false', 'localhost:5000/x:1']);  // private storage
 * await buildah(root, ['from', 'scratch']);
 * ```
 *
 * `podman`/`buildah` always get `--root <tmpRoot>/root --runroot <tmpRoot>/run
 * --storage-driver vfs`, so tests never touch the machine's container storage; remove the
 * directory afterwards (they run as root here: `rm -rf` it, files may be read-only). All three
 * wrappers reject with the command line, exit code and stderr when the exit code is not 0; use
 * `run()` directly to inspect a failure (e.g. wrong credentials).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when killed by the timeout or a signal. */
  code: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Default 120 s; the process is killed (SIGKILL) after it. */
  timeoutMs?: number;
  /** Written to stdin, then stdin is closed. */
  input?: string | Buffer;
  cwd?: string;
}

export function hasBinary(name: string): boolean {
  const dirs = (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter);
  for (const dir of [...dirs, '/usr/sbin', '/sbin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

/** `{ok: true}` when all binaries exist; otherwise throws under CI=true, else returns a reason to print and skip. */
export function requireBinaries(names: string[]): { ok: boolean; reason: string } {
  const missing = names.filter((n) => !hasBinary(n));
  if (missing.length === 0) return { ok: true, reason: '' };
  const reason = `missing binaries: ${missing.join(', ')}`;
  if (process.env['CI'] === 'true') throw new Error(`${reason} (required when CI=true)`);
  console.warn(`skipping: ${reason}`);
  return { ok: false, reason };
}

export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? -1 });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

async function checked(cmd: string, args: string[], options?: RunOptions): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited with ${result.code}:\n${result.stderr.slice(-4000)}`,
    );
  }
  return result;
}

export function skopeo(args: string[], options?: RunOptions): Promise<RunResult> {
  return checked('skopeo', args, options);
}

function storageArgs(tmpRoot: string): string[] {
  return [
    '--root',
    join(tmpRoot, 'root'),
    '--runroot',
    join(tmpRoot, 'run'),
    '--storage-driver',
    'vfs',
  ];
}

/** podman with private storage under `tmpRoot` (cgroupfs, file events: no systemd needed). */
export function podman(tmpRoot: string, args: string[], options?: RunOptions): Promise<RunResult> {
  return checked(
    'podman',
    [...storageArgs(tmpRoot), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args],
    options,
  );
}

/** buildah with private storage under `tmpRoot`. */
export function buildah(tmpRoot: string, args: string[], options?: RunOptions): Promise<RunResult> {
  return checked('buildah', [...storageArgs(tmpRoot), ...args], options);
}

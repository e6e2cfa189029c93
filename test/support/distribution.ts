/**
 * Docker Distribution (Debian's `/usr/bin/docker-registry`, 2.8) on a free loopback port, as
 * the real peer in tests: the reference registry our registry must interoperate with, and a
 * stand-in for it (content accepts its notification webhooks).
 *
 * ```ts
 * const peer = await startDistribution();                                  // anonymous, delete enabled
 * const auth = await startDistribution({ htpasswd: { user: 'u', password: 'p' } });
 * const hooked = await startDistribution({ notifyUrl: `${content}/api/v1/hooks/registry`,
 *                                          notifyHeaders: { Authorization: 'Bearer …' } });
 * // peer.url → 'http://127.0.0.1:40123', peer.host → '127.0.0.1:40123' (for skopeo refs)
 * await peer.stop();   // kills it and removes its directory
 * ```
 *
 * Check `hasBinary('docker-registry')` / `requireBinaries` from `./clients.js` first.
 */
import bcrypt from 'bcryptjs';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const DISTRIBUTION_BINARY = '/usr/bin/docker-registry';

export interface DistributionOptions {
  htpasswd?: { user: string; password: string };
  /** Notification endpoint (Distribution's webhook envelope). */
  notifyUrl?: string;
  notifyHeaders?: Record<string, string>;
}

export interface RunningDistribution {
  url: string;
  /** `127.0.0.1:<port>` */
  host: string;
  port: number;
  /** Its temporary directory (config, data, htpasswd). */
  dir: string;
  /** Output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export async function startDistribution(
  options: DistributionOptions = {},
): Promise<RunningDistribution> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-distribution-'));
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${Math.random().toString(36).slice(2)}`,
  ];
  if (options.htpasswd) {
    const file = join(dir, 'htpasswd');
    await writeFile(
      file,
      `${options.htpasswd.user}:${bcrypt.hashSync(options.htpasswd.password, 10)}\n`,
    );
    lines.push('auth:', '  htpasswd:', '    realm: distribution', `    path: ${file}`);
  }
  if (options.notifyUrl) {
    lines.push(
      'notifications:',
      '  endpoints:',
      '    - name: flotilla',
      `      url: ${options.notifyUrl}`,
    );
    const headers = Object.entries(options.notifyHeaders ?? {});
    if (headers.length > 0) {
      lines.push('      headers:');
      for (const [key, value] of headers) lines.push(`        ${key}: [${JSON.stringify(value)}]`);
    }
    lines.push('      timeout: 2s', '      threshold: 3', '      backoff: 1s');
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);

  const child = spawn(DISTRIBUTION_BINARY, ['serve', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const collect = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited with ${child.exitCode}:\n${out}`);
    }
    try {
      await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      if (attempt >= 150) {
        await stop();
        throw new Error(`docker-registry did not start on ${url}:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, host: `127.0.0.1:${port}`, port, dir, output: () => out, stop };
}

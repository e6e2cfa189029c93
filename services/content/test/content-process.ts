/**
 * Content as a child process (`services/content/src/main.ts` from source), for tests that kill
 * it with SIGKILL at a fault point and start it again over the same data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface ContentProcess {
  child: ChildProcess;
  url: string;
}

/** Starts content with `env` (and the API token `token`); resolves with its URL once it listens. */
export async function startContentProcess(
  env: Record<string, string>,
  token: string,
): Promise<ContentProcess> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'services/content/src/main.ts'],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        LOG_LEVEL: 'info',
        FLOTILLA_CONTENT_PORT: '0',
        FLOTILLA_API_TOKEN: token,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`content did not start: ${err}${out}`)),
      30_000,
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"url":"(http:[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`content exited ${code}: ${err}`));
    });
  });
  return { child, url };
}

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger, runUntilSignal } from '../src/index.js';

const fixture = fileURLToPath(new URL('./fixtures/shutdown-child.ts', import.meta.url));

interface Child {
  send(signal: NodeJS.Signals): void;
  waitFor(line: string): Promise<void>;
  exited: Promise<{ code: number | null; stdout: string[] }>;
}

function start(mode: string): Child {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fixture, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'silent' },
  });
  const stdout: string[] = [];
  const waiters: Array<{ line: string; resolve: () => void }> = [];
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      stdout.push(line);
      for (const w of waiters.filter((x) => x.line === line)) w.resolve();
    }
  });
  const exited = new Promise<{ code: number | null; stdout: string[] }>((resolve) => {
    child.on('exit', (code) => {
      if (code !== 0 && stderr !== '') console.log(`shutdown-child stderr:\n${stderr}`);
      resolve({ code, stdout });
    });
  });
  return {
    send: (signal) => child.kill(signal),
    waitFor: (line) =>
      stdout.includes(line)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ line, resolve })),
            exited.then(() => {
              throw new Error(`child exited before printing ${JSON.stringify(line)}: ${stderr}`);
            }),
          ]),
    exited,
  };
}

describe('runUntilSignal (child process)', () => {
  it('runs the closers in order on SIGTERM and exits 0', async () => {
    const child = start('ok');
    await child.waitFor('ready');
    child.send('SIGTERM');
    const { code, stdout } = await child.exited;
    expect(code).toBe(0);
    expect(stdout).toEqual(['ready', 'closer 1', 'closer 2']);
  });

  it('exits 1 when a closer hangs past the deadline', async () => {
    const child = start('hang');
    await child.waitFor('ready');
    child.send('SIGINT');
    const { code, stdout } = await child.exited;
    expect(code).toBe(1);
    expect(stdout).toEqual(['ready', 'closer 1', 'closer 2 hanging']);
  });

  it('exits 130 at once on a second Ctrl-C', async () => {
    const child = start('hang-long');
    await child.waitFor('ready');
    child.send('SIGINT');
    await child.waitFor('closer 2 hanging');
    child.send('SIGINT');
    const { code } = await child.exited;
    expect(code).toBe(130);
  });
});

describe('runUntilSignal (in process)', () => {
  it('reports a failing closer with exit code 1 and still runs the rest', async () => {
    const ran: string[] = [];
    const exits: number[] = [];
    const handle = runUntilSignal({
      logger: createLogger({ level: 'silent' }),
      signals: [],
      exit: (code) => exits.push(code),
      closers: [
        () => {
          ran.push('a');
          throw new Error('store refused to close');
        },
        async () => {
          ran.push('b');
        },
      ],
    });
    await expect(handle.shutdown('test')).resolves.toBe(1);
    expect(ran).toEqual(['a', 'b']);
    expect(exits).toEqual([1]);
    // A second call reuses the first run.
    await expect(handle.shutdown('again')).resolves.toBe(1);
    expect(exits).toEqual([1]);
    handle.dispose();
  });
});

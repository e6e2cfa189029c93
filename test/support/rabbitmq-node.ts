/**
 * A private RabbitMQ node for a test that must stop its broker: the machine's node on 5672 is
 * shared, so a test that stops it would break everyone else's. This one has its own name, ports,
 * Erlang cookie (its own HOME), data, logs and config, and no plugins.
 *
 * ```ts
 * const node = await startPrivateRabbitNode();   // undefined when rabbitmq-server is missing
 * node.url;                                      // amqp://guest:guest@127.0.0.1:<port>
 * await node.stopApp(); await node.startApp();   // the broker down and up; the VM stays
 * await node.stop();                             // halts the node and removes its files
 * ```
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const exec = promisify(execFile);
// The scripts themselves: the /usr/sbin wrappers switch to the rabbitmq user and its HOME,
// which would share the machine node's cookie and file locations.
const BIN = '/usr/lib/rabbitmq/bin';

export interface PrivateRabbitNode {
  name: string;
  url: string;
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  stop(): Promise<void>;
}

export function privateRabbitAvailable(): boolean {
  return existsSync(join(BIN, 'rabbitmq-server')) && existsSync(join(BIN, 'rabbitmqctl'));
}

export async function startPrivateRabbitNode(): Promise<PrivateRabbitNode> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-rabbit-'));
  const port = await freePort();
  const distPort = await freePort();
  const name = `flotilla-fault-${process.pid}-${port}@localhost`;
  await writeFile(join(dir, 'enabled_plugins'), '[].\n');
  await writeFile(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${port}\n`);
  await writeFile(join(dir, 'rabbitmq-env.conf'), '');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    RABBITMQ_NODENAME: name,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  const ctl = async (...args: string[]): Promise<void> => {
    await exec(join(BIN, 'rabbitmqctl'), ['-q', '-n', name, ...args], { env, timeout: 90_000 });
  };
  await exec(join(BIN, 'rabbitmq-server'), ['-detached'], { env, timeout: 30_000 });
  let stopped = false;
  const node: PrivateRabbitNode = {
    name,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    stopApp: () => ctl('stop_app'),
    async startApp() {
      await ctl('start_app');
      await ctl('await_startup', '--timeout', '60');
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await ctl('stop').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  // -detached returns before the node has registered itself; until then await_startup fails at once
  for (let attempt = 1; ; attempt++) {
    try {
      await ctl('await_startup', '--timeout', '60');
      return node;
    } catch (err) {
      if (attempt >= 20) {
        await node.stop();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Issue 7: `podman pull` of a 50 MiB image through crane → redirector → a loopback mirror,
 * against `podman pull` of the same image straight from Docker Distribution, in one run.
 * Each pull uses fresh container storage; the pulls alternate, and the median of each is used.
 */
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ContentClient } from '@flotilla/content';
import { MirrorsClient } from '@flotilla/mirrors';
import { podman, skopeo } from '../support/clients.js';
import { flotillaEnv, freeServicePorts, waitFor, waitReady } from '../support/flotilla.js';
import { makeImage, writeOciLayout } from '../support/images.js';
import { startStaticServer } from '../support/static-server.js';
import {
  ratioRow,
  repoRoot,
  startDockerDistribution,
  startProcess,
  timeIt,
  type BenchContext,
  type BenchRow,
} from './lib.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export default async function pull(ctx: BenchContext): Promise<BenchRow[]> {
  const rounds = ctx.quick ? 1 : 3;
  const distribution = await startDockerDistribution(join(ctx.workDir, 'distribution'));
  const ports = await freeServicePorts();
  const env = flotillaEnv({
    dataDir: join(ctx.workDir, 'var'),
    ports,
    extra: { LOG_LEVEL: 'warn' },
  });
  const flotilla = await startProcess(
    process.execPath,
    [join(repoRoot, 'services', 'cli', 'dist', 'main.js'), 'start'],
    {
      env,
      readyUrl: `http://127.0.0.1:${ports.content}/readyz`,
    },
  );
  const mirrorDir = join(ctx.workDir, 'mirror');
  const mirror = await startStaticServer(mirrorDir);
  try {
    await waitReady([
      `http://127.0.0.1:${ports.registry}/readyz`,
      `http://127.0.0.1:${ports.mirrors}/readyz`,
    ]);
    const secret = async (name: string) =>
      (await readFile(join(ctx.workDir, 'var', 'secrets', name), 'utf8')).trim();
    const image = makeImage({ layers: 5, layerBytes: 10 * 1024 * 1024 });
    const layout = join(ctx.workDir, 'layout');
    await writeOciLayout(layout, image, 'bench');
    ctx.log('pushing a 50 MiB image (5 × 10 MiB layers) to both registries');
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout}:bench`,
      `docker://${distribution.url.slice(7)}/bench/pull:1`,
    ]);
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `admin:${await secret('admin-password')}`,
      `oci:${layout}:bench`,
      `docker://127.0.0.1:${ports.registry}/bench/pull:1`,
    ]);

    const content = new ContentClient({
      url: `http://127.0.0.1:${ports.content}`,
      token: await secret('api-token'),
    });
    await waitFor(
      'sync into candidate',
      async () => {
        const r = await content.repository('bench/pull').catch(() => undefined);
        return r?.channels.find((c) => c.name === 'candidate')?.tags['1'] ? true : undefined;
      },
      120_000,
    );
    await content.promote({
      repository: 'bench/pull',
      tags: ['1'],
      from: 'candidate',
      to: 'testing',
    });
    await content.promote({ repository: 'bench/pull', tags: ['1'], from: 'testing', to: 'stable' });
    const task = await content.publish({ channel: 'stable' });
    await waitFor(
      'publish',
      async () => ((await content.task(task.id)).state === 'completed' ? true : undefined),
      120_000,
    );
    const publishDir = join(ctx.workDir, 'var', 'publish');
    await mkdir(mirrorDir, { recursive: true });
    await cp(publishDir, mirrorDir, {
      recursive: true,
      filter: (src) => !src.endsWith('/PUBLICATION'),
    });
    await cp(join(publishDir, 'PUBLICATION'), join(mirrorDir, 'PUBLICATION'));
    const mirrors = new MirrorsClient({
      url: `http://127.0.0.1:${ports.mirrors}`,
      token: await secret('api-token'),
    });
    const m = await mirrors.add({
      name: 'loopback',
      baseUrl: mirror.url,
      country: 'US',
      bandwidth: 1000,
    });
    await mirrors.crawl(m.id);
    await waitFor('crane ready', async () =>
      (await fetch(`http://127.0.0.1:${ports.crane}/readyz`)).ok ? true : undefined,
    );

    const pullOnce = async (ref: string) => {
      // Short: podman refuses a runroot longer than 50 characters.
      const root = await mkdtemp('/tmp/fpb-');
      const seconds = await timeIt(() =>
        podman(root, ['pull', '-q', '--tls-verify=false', ref], { timeoutMs: 300_000 }),
      );
      await rm(root, { recursive: true, force: true });
      return seconds;
    };
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      theirs.push(await pullOnce(`${distribution.url.slice(7)}/bench/pull:1`));
      ours.push(await pullOnce(`127.0.0.1:${ports.crane}/bench/pull:1`));
      ctx.log(
        `round ${i + 1}: distribution ${theirs.at(-1)!.toFixed(2)} s, crane→redirector→mirror ${ours.at(-1)!.toFixed(2)} s`,
      );
    }
    const mirrorGets = mirror.requests.filter((r) => r.startsWith('GET /blobs/')).length;
    if (mirrorGets === 0)
      throw new Error(
        'the loopback mirror served no blob: the pull did not go through the redirector',
      );
    return [
      ratioRow(
        'e2e',
        'podman pull 50 MiB: crane → redirector → mirror vs Distribution',
        median(ours),
        median(theirs),
        's (median)',
        {
          max: 1.3,
          text: '≤ 1.3×',
        },
        `${rounds} rounds, mirror served ${mirrorGets} blob GETs`,
      ),
    ];
  } finally {
    await mirror.stop();
    await flotilla.stop();
    await distribution.stop();
  }
}

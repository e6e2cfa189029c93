/**
 * Content:
 * 1. sync of 100 images × 3 layers of 1 MiB from Docker Distribution, against `skopeo sync` of
 *    the same repository into a directory, one after the other in this run;
 * 2. re-sync with nothing changed, as a fraction of the first sync;
 * 3. publishing one new image into a channel of 1,000 published images (100 repositories × 10
 *    images), against publishing one image into an empty tree (medians of 5).
 * 1–2 drive the compiled service over HTTP; 3 calls the publisher in-process (no task polling
 * in the figure) with a fake upstream to fill the channel quickly.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { createLocalBus } from '@flotilla/bus';
import { createLogger } from '@flotilla/kit';
import { createEmbeddedStore } from '@flotilla/store';
import { loadContentConfig } from '../../services/content/src/config.js';
import { createContentService, type ContentService } from '../../services/content/src/service.js';
import { noProgress } from '../../services/content/src/tasks/progress.js';
import { FakeRegistry } from '../../services/content/test/fake-registry.js';
import { pushImage } from '../support/images.js';
import {
  freePort,
  ratioRow,
  runCommand,
  serveArgs,
  startDockerDistribution,
  startProcess,
  timeIt,
  type BenchContext,
  type BenchRow,
} from './lib.js';

const MiB = 1024 * 1024;
const TOKEN = randomBytes(16).toString('hex');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
async function call(base: string, method: string, p: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
async function syncAndWait(base: string, repository: string): Promise<any> {
  const { task } = await call(base, 'POST', '/api/v1/syncs', { repository });
  // Long poll, as a CI job would wait: the answer comes as the task ends. (Polling every 20 ms
  // added up to 20 ms to a re-sync of about 0.1 s.)
  for (let i = 0; i < 120; i++) {
    const t = await call(base, 'GET', `/api/v1/tasks/${task.id}?wait=10`);
    if (t.state === 'completed') return t;
    if (t.state !== 'waiting' && t.state !== 'running')
      throw new Error(`sync ${t.state}: ${JSON.stringify(t.error)}`);
  }
  throw new Error('sync did not finish');
}

async function syncFigures(ctx: BenchContext): Promise<BenchRow[]> {
  const images = ctx.quick ? 20 : 100;
  const dist = await startDockerDistribution(await mkdtemp(path.join(ctx.workDir, 'dist-')));
  let content: Awaited<ReturnType<typeof startProcess>> | undefined;
  try {
    ctx.log(`pushing ${images} images × 3 layers of 1 MiB into Docker Distribution`);
    for (let i = 0; i < images; i++) {
      await pushImage(dist.url, 'bench/app', `t${String(i).padStart(3, '0')}`, {
        layers: 3,
        layerBytes: MiB,
      });
    }
    const host = new URL(dist.url).host;

    const skopeoDir = path.join(ctx.workDir, 'skopeo-sync');
    await mkdir(skopeoDir, { recursive: true });
    const skopeo = await timeIt(async () => {
      const r = await runCommand('skopeo', [
        'sync',
        '--src',
        'docker',
        '--dest',
        'dir',
        '--src-tls-verify=false',
        `${host}/bench/app`,
        skopeoDir,
      ]);
      if (r.code !== 0) throw new Error(`skopeo sync failed: ${r.stderr}`);
    });
    ctx.log(`skopeo sync: ${skopeo.toFixed(2)} s`);

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    content = await startProcess(process.execPath, serveArgs('content'), {
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        FLOTILLA_DATA_DIR: path.join(ctx.workDir, 'content'),
        FLOTILLA_CONTENT_PORT: String(port),
        FLOTILLA_API_TOKEN: TOKEN,
        FLOTILLA_REGISTRY_URL: dist.url,
        FLOTILLA_REGISTRY_PASSWORD: 'unused',
      },
      readyUrl: `${base}/healthz`,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
    let first: any;
    const ours = await timeIt(async () => {
      first = await syncAndWait(base, 'bench/app');
    });
    ctx.log(
      `content sync: ${ours.toFixed(2)} s (${first.result.blobsFetched} blobs, ${(first.result.bytesFetched / MiB).toFixed(0)} MiB)`,
    );
    const resync = await timeIt(() => syncAndWait(base, 'bench/app'));
    ctx.log(`content re-sync: ${resync.toFixed(3)} s`);
    return [
      ratioRow('content', `sync ${images} images × 3 × 1 MiB vs skopeo sync`, ours, skopeo, 's', {
        max: 1,
        text: '≤ 1× skopeo',
      }),
      ratioRow('content', 're-sync, nothing changed (vs first sync)', resync, ours, 's', {
        max: 0.05,
        text: '< 5%',
      }),
    ];
  } finally {
    await content?.stop();
    await dist.stop();
  }
}

interface Instance {
  service: ContentService;
  stop(): Promise<void>;
}

async function instance(dir: string, upstream: FakeRegistry): Promise<Instance> {
  const logger = createLogger({ name: 'bench', level: 'warn' });
  const config = loadContentConfig({
    FLOTILLA_DATA_DIR: dir,
    FLOTILLA_API_TOKEN: TOKEN,
    FLOTILLA_WEBHOOK_SECRET: TOKEN,
    FLOTILLA_REGISTRY_URL: upstream.url,
    FLOTILLA_REGISTRY_PASSWORD: 'unused',
    FLOTILLA_CONTENT_WORKERS: '0',
  });
  const store = createEmbeddedStore({ dir: path.join(dir, 'db'), logger });
  const bus = createLocalBus({ logger });
  const service = await createContentService({ config, logger, store, bus });
  return {
    service,
    async stop() {
      await service.stop();
      await bus.close();
      await store.close();
    },
  };
}

/** Syncs `repository` and promotes `tags` candidate → testing → stable. */
async function bringToStable(
  service: ContentService,
  repository: string,
  tags: string[],
): Promise<void> {
  const { synchronizer, promotions, config } = service.parts;
  await synchronizer.sync(
    { repository, upstream: { url: config.registry.url } },
    noProgress,
    new AbortController().signal,
  );
  for (const [from, to] of [
    ['candidate', 'testing'],
    ['testing', 'stable'],
  ] as const) {
    await promotions.promote({ repository, tags, from, to, actor: 'bench' });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function publishFigures(ctx: BenchContext): Promise<BenchRow[]> {
  const repos = ctx.quick ? 20 : 100;
  const perRepo = 10;
  const rounds = 5;
  const layer = { layers: 2, layerSize: 16 * 1024 };
  const upstream = await new FakeRegistry().start();
  const signal = new AbortController().signal;
  try {
    const empty: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const inst = await instance(await mkdtemp(path.join(ctx.workDir, 'empty-')), upstream);
      upstream.addImage(`solo/app${i}`, '1', layer);
      await bringToStable(inst.service, `solo/app${i}`, ['1']);
      empty.push(
        await timeIt(() =>
          inst.service.parts.publisher.publish({ channel: 'stable' }, noProgress, signal),
        ),
      );
      await inst.stop();
    }
    ctx.log(`publish 1 image into an empty tree: median ${(median(empty) * 1000).toFixed(1)} ms`);

    const big = await instance(await mkdtemp(path.join(ctx.workDir, 'big-')), upstream);
    ctx.log(`filling a channel with ${repos * perRepo} images`);
    for (let r = 0; r < repos; r++) {
      const name = `big/app${String(r).padStart(3, '0')}`;
      const tags = Array.from({ length: perRepo }, (_, t) => `t${t}`);
      for (const t of tags) upstream.addImage(name, t, layer);
      await bringToStable(big.service, name, tags);
    }
    const initial = await timeIt(() =>
      big.service.parts.publisher.publish({ channel: 'stable' }, noProgress, signal),
    );
    ctx.log(`initial publication of ${repos * perRepo} images: ${initial.toFixed(2)} s`);
    const incremental: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const name = `big/app${String(i * 7).padStart(3, '0')}`;
      upstream.addImage(name, `new${i}`, layer);
      await bringToStable(big.service, name, [`new${i}`]);
      incremental.push(
        await timeIt(() =>
          big.service.parts.publisher.publish({ channel: 'stable' }, noProgress, signal),
        ),
      );
    }
    await big.stop();
    ctx.log(
      `publish 1 new image into ${repos * perRepo}: median ${(median(incremental) * 1000).toFixed(1)} ms`,
    );
    return [
      ratioRow(
        'content',
        `publish 1 image into ${repos * perRepo} published vs into an empty tree`,
        median(incremental) * 1000,
        median(empty) * 1000,
        'ms',
        { max: 1.5, text: '≤ 1.5×' },
        `medians of ${rounds}; ${repos} repositories × ${perRepo} images`,
      ),
    ];
  } finally {
    await upstream.stop();
  }
}

export default async function contentBench(ctx: BenchContext): Promise<BenchRow[]> {
  return [...(await syncFigures(ctx)), ...(await publishFigures(ctx))];
}

/**
 * Crane: manifest GET by tag and blob GET (the 307) against Docker Distribution's
 * manifest GET, at 32 and 256 connections, one after the other on loopback; then the time
 * to load 10,000 tags across 1,000 repositories and the resident memory.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startStaticServer } from '../support/static-server.js';
import { writePublishedTree } from '../support/tree.js';
import {
  freePort,
  ratioRow,
  rssMiB,
  runCommand,
  sampleRss,
  serveArgs,
  startDockerDistribution,
  startProcess,
  wrk,
  type BenchContext,
  type BenchRow,
} from './lib.js';

const REPO = 'fedora/httpd';
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const REPOSITORIES = 1000;
const TAGS_PER_REPOSITORY = 10;

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Metadata for `REPOSITORIES × TAGS_PER_REPOSITORY` distinct image manifests, written
 * straight into repositories/<name>.json (crane reads metadata only, so no blob files).
 */
async function writeLargeMetadata(root: string, publication: number): Promise<string[]> {
  const names: string[] = [];
  for (let r = 0; r < REPOSITORIES; r++) {
    const name = `bench/r${String(r).padStart(4, '0')}`;
    names.push(name);
    const tags: Record<string, string> = {};
    const manifests: Record<string, { mediaType: string; size: number; data: string }> = {};
    const blobs: Record<string, number> = {};
    for (let t = 0; t < TAGS_PER_REPOSITORY; t++) {
      const config = sha256(randomBytes(32));
      const layer = sha256(randomBytes(32));
      blobs[config] = 1200;
      blobs[layer] = 30_000_000;
      const bytes = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: config,
            size: 1200,
          },
          layers: [
            {
              mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
              digest: layer,
              size: 30_000_000,
            },
          ],
        }),
      );
      const digest = sha256(bytes);
      manifests[digest] = {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: bytes.length,
        data: bytes.toString('base64'),
      };
      tags[`v${t}`] = digest;
    }
    const file = join(root, 'repositories', `${name}.json`);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(
      file,
      JSON.stringify({ schemaVersion: 1, repository: name, publication, tags, manifests, blobs }),
    );
  }
  return names;
}

function loadSecondsFrom(output: string): number {
  let seconds = Number.NaN;
  for (const line of output.split('\n')) {
    if (!line.includes('"catalog loaded"')) continue;
    try {
      const entry = JSON.parse(line) as { seconds?: number; tags?: number };
      if (typeof entry.seconds === 'number') seconds = entry.seconds;
    } catch {
      // not a JSON log line
    }
  }
  return seconds;
}

export default async function craneBench(ctx: BenchContext): Promise<BenchRow[]> {
  const seconds = ctx.quick ? 3 : 10;
  const rows: BenchRow[] = [];
  const root = join(ctx.workDir, 'tree');
  ctx.log('writing the published tree (1 real image + 10,000 tags of metadata)');
  const tree = await writePublishedTree(root, {
    publication: 1,
    repositories: [{ name: REPO, tags: { '39': {} } }],
  });
  const names = await writeLargeMetadata(root, 1);
  await writeFile(
    join(root, 'publications', '1.json'),
    JSON.stringify({
      schemaVersion: 1,
      publication: 1,
      channel: 'stable',
      time: new Date().toISOString(),
      repositories: [REPO, ...names],
      newBlobs: tree.newBlobs,
    }),
  );
  const mirror = await startStaticServer(root);
  const cranePort = await freePort();
  const craneUrl = `http://127.0.0.1:${cranePort}`;
  const crane = await startProcess(process.execPath, serveArgs('crane'), {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      FLOTILLA_CRANE_PORT: String(cranePort),
      FLOTILLA_PUBLISH_DIR: root,
      FLOTILLA_CRANE_BLOB_BASE_URL: mirror.url,
      FLOTILLA_CRANE_RATE_LIMIT: '0',
      FLOTILLA_CRANE_POLL_INTERVAL: '0',
    },
    readyUrl: `${craneUrl}/readyz`,
  });
  const distribution = await startDockerDistribution(ctx.workDir);
  // the floor on this machine: a bare node:http handler answering a manifest-sized body
  const barePort = await freePort();
  const bare = await startProcess(
    process.execPath,
    [
      '-e',
      `const b=Buffer.alloc(${tree.repositories[REPO]!.manifests[tree.repositories[REPO]!.tags['39']!]!.bytes.length},97);` +
        `const h={'Content-Type':'application/json','Content-Length':String(b.length)};` +
        `require('node:http').createServer((q,r)=>{r.writeHead(200,h);r.end(b)}).listen(${barePort},'127.0.0.1')`,
    ],
    { readyUrl: `http://127.0.0.1:${barePort}/` },
  );
  try {
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${craneUrl}/readyz`)).status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const loadSeconds = loadSecondsFrom(crane.output());
    const idleRss = await rssMiB(crane.pid);
    ctx.log(`loaded 10,010 tags in ${loadSeconds.toFixed(3)} s, RSS ${idleRss.toFixed(0)} MiB`);
    rows.push({
      group: 'crane',
      metric: 'load 10,000 tags / 1,000 repositories',
      ours: loadSeconds,
      unit: 's',
      target: '< 2 s',
      pass: loadSeconds < 2,
    });

    const copy = await runCommand('skopeo', [
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://127.0.0.1:${cranePort}/${REPO}:39`,
      `docker://${distribution.url.replace('http://', '')}/${REPO}:39`,
    ]);
    if (copy.code !== 0) throw new Error(`skopeo copy into Distribution failed: ${copy.stderr}`);
    const layer = tree.repositories[REPO]!.images['39']![0]!.layers[0]!;

    const peak = sampleRss(crane.pid);
    // wrk shares the 2 cores with the server: one wrk thread (BENCH_WRK_THREADS to change) leaves
    // the server a core of its own, so p99 measures the server rather than the scheduler.
    const threads = Number(process.env.BENCH_WRK_THREADS ?? 1);
    ctx.log(`wrk -t${threads} --latency, ${seconds} s per run`);
    for (const connections of [32, 256]) {
      const headers = { Accept: ACCEPT };
      const ours = await wrk({
        url: `${craneUrl}/v2/${REPO}/manifests/39`,
        connections,
        seconds,
        headers,
        threads,
      });
      const blob = await wrk({
        url: `${craneUrl}/v2/${REPO}/blobs/${layer}`,
        connections,
        seconds,
        threads,
      });
      const theirs = await wrk({
        url: `${distribution.url}/v2/${REPO}/manifests/39`,
        connections,
        seconds,
        headers,
        threads,
      });
      const floor = await wrk({
        url: `http://127.0.0.1:${barePort}/`,
        connections,
        seconds,
        threads,
      });
      ctx.log(
        `c=${connections}: crane manifest ${ours.rps.toFixed(0)} req/s (p99 ${ours.p99Ms} ms), blob 307 ${blob.rps.toFixed(0)} req/s (p99 ${blob.p99Ms} ms), Distribution manifest ${theirs.rps.toFixed(0)} req/s (p99 ${theirs.p99Ms} ms), bare node:http ${floor.rps.toFixed(0)} req/s (p99 ${floor.p99Ms} ms)`,
      );
      for (const [what, r] of [
        ['crane manifest', ours],
        ['crane blob', blob],
        ['distribution manifest', theirs],
      ] as const) {
        if (r.non2xx3xx > 0 || r.socketErrors > 0)
          ctx.log(`  ${what}: ${r.non2xx3xx} non-2xx/3xx, ${r.socketErrors} socket errors`);
      }
      rows.push(
        ratioRow('crane', `manifest GET by tag, c=${connections}`, ours.rps, theirs.rps, 'req/s', {
          min: 10,
          text: '≥ 10× Distribution',
        }),
        {
          group: 'crane',
          metric: `manifest GET p99, c=${connections}`,
          ours: ours.p99Ms,
          theirs: floor.p99Ms,
          unit: 'ms',
          target: '< 20 ms',
          pass: ours.p99Ms < 20,
          note: `peer = bare node:http handler, ${floor.rps.toFixed(0)} req/s; Distribution p99 ${theirs.p99Ms} ms`,
        },
        ratioRow(
          'crane',
          `blob GET (307), c=${connections}`,
          blob.rps,
          theirs.rps,
          'req/s',
          {
            min: 10,
            text: '≥ manifest rate (≥ 10× Distribution)',
          },
          `${(blob.rps / ours.rps).toFixed(2)}× crane's manifest rate`,
        ),
      );
    }
    const peakRss = peak.stop();
    rows.push({
      group: 'crane',
      metric: 'resident memory (peak under load)',
      ours: peakRss,
      unit: 'MiB',
      target: '< 300 MiB',
      pass: peakRss < 300,
      note: `idle after load ${idleRss.toFixed(0)} MiB`,
    });
  } finally {
    await crane.stop();
    await distribution.stop();
    await bare.stop();
    await mirror.stop();
  }
  return rows;
}

/**
 * Fault injection: all-in-one Flotilla runs as a child process and is killed with
 * SIGKILL at random points of every write path — upload, manifest put, sync, promotion,
 * publish, crawl, mirror change, registry gc — round after round; after each kill it is
 * restarted and the invariants of test/support/invariants.ts are checked.
 *
 * A round kills in one of two ways, chosen by the seed:
 * - a named fault point: the process is started with `FLOTILLA_FAULT_POINT=<name>:<n>` and kills
 *   itself at the n-th pass (the names are read from the sources, so points added on any write
 *   path join the suite by themselves); if the operation never reaches it, a SIGKILL follows;
 * - a timer: SIGKILL after a random delay while the operation runs.
 *
 * `FAULT_SEED=<n>` replays a run (the seed is printed at the start and in every failure);
 * `FAULT_PATHS=<path>,…` limits the rounds to some write paths; `FAULT_STRICT=1` also checks the invariants KNOWN_BUGS names as broken today;
 * `FAULT_ROUNDS` sets the number of rounds and `FAULT_BUDGET_SECONDS` the time after which no new
 * round starts (so the file stays within a few minutes on a small machine).
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentClient } from '@flotilla/content';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  flotillaEnv,
  freeServicePorts,
  repoRoot,
  startFlotilla,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { pushImage } from './support/images.js';
import {
  channelVersionsContiguous,
  promotionsAudited,
  publishedTreeWhole,
  registryFsckClean,
  registryTags,
  registryTagsResolve,
  tagsReachCandidate,
  tasksSettle,
  type PushedTag,
} from './support/invariants.js';
import { seeded } from './support/seeded.js';
import { blobPath, writePublicationMarker, writePublishedTree } from './support/tree.js';

const SEED = process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : randomInt(1, 2 ** 31);
const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 32);
const BUDGET_MS = Number(process.env.FAULT_BUDGET_SECONDS ?? 150) * 1000;
console.log(`fault injection: seed ${SEED} (FAULT_SEED=${SEED} replays), up to ${ROUNDS} rounds`);

const WRITE_PATHS = [
  'upload',
  'manifest',
  'sync',
  'promotion',
  'publish',
  'crawl',
  'mirror',
  'gc',
] as const;
type WritePath = (typeof WRITE_PATHS)[number];
/** `FAULT_PATHS=upload,publish` limits the rounds to those write paths. */
const CHOSEN_PATHS = process.env.FAULT_PATHS
  ? WRITE_PATHS.filter((p) => process.env.FAULT_PATHS!.split(',').includes(p))
  : WRITE_PATHS;

/** Which write path exercises a fault point, by the prefix of its name. */
function pathOfPoint(name: string): WritePath | undefined {
  const prefixes: Array<[string, WritePath]> = [
    ['registry.upload.', 'upload'],
    ['registry.manifest.', 'manifest'],
    ['registry.gc.', 'gc'],
    ['sync.', 'sync'],
    ['content.sync.', 'sync'],
    ['promotion.', 'promotion'],
    ['publish.', 'publish'],
    ['mirrors.crawl.', 'crawl'],
    ['mirrors.change.', 'mirror'],
  ];
  return prefixes.find(([prefix]) => name.startsWith(prefix))?.[1];
}

/** Every `faultPoint('<name>')` in the services' sources. */
async function faultPointsInSources(): Promise<string[]> {
  const names = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith('.ts')) {
        for (const m of (await readFile(full, 'utf8')).matchAll(/faultPoint\('([a-z0-9.-]+)'\)/g))
          names.add(m[1] as string);
      }
    }
  };
  for (const service of await readdir(join(repoRoot, 'services')))
    await walk(join(repoRoot, 'services', service, 'src'));
  return [...names].sort();
}

const INVARIANTS = [
  'registry fsck clean',
  'every tag resolves',
  'channel versions contiguous',
  'every promotion audited',
  'acknowledged promotions kept',
  'published tree whole',
  'no task left running past its lease',
  'every acknowledged push reaches candidate',
  'every tag the registry holds reaches candidate',
  'acknowledged mirror changes kept',
] as const;
type Invariant = (typeof INVARIANTS)[number];

/**
 * Invariants the current code is known to break, each with the bug that breaks it. Their
 * violations are still collected and printed; their checks are skipped until the bug is fixed.
 */
const KNOWN_BUGS: Partial<Record<Invariant, string>> = {};

describe('fault injection: kill -9 at random points of every write path', () => {
  // The round plan (path, kind of kill, delay, point) comes from its own generator, so a seed
  // replays it exactly whatever the operations' own choices did.
  const planRandom = seeded(SEED);
  const random = seeded(SEED ^ 0x5bd1e995);
  const pickWith = <T>(r: () => number, items: readonly T[]): T =>
    items[Math.floor(r() * items.length)] as T;
  const pick = <T>(items: readonly T[]): T => pickWith(random, items);
  const secrets = {
    admin: randomBytes(12).toString('hex'),
    token: randomBytes(16).toString('hex'),
  };
  const authorization = `Basic ${Buffer.from(`admin:${secrets.admin}`).toString('base64')}`;
  const violations = new Map<Invariant, string[]>(INVARIANTS.map((i) => [i, []]));
  const rounds: string[] = [];
  let work: string;
  let ports: ServicePorts;
  let proc: FlotillaProcess | undefined;
  let points: string[] = [];
  let pointsFired = 0;
  let content: ContentClient;

  // what clients were told succeeded, and so must survive any crash
  const pushed: PushedTag[] = [];
  const promoted: Array<{
    repository: string;
    channel: string;
    version: number;
    tag: string;
    digest: string;
  }> = [];
  const mirrorsCreated = new Set<string>();
  const mirrorsDeleted = new Set<string>();
  // asked to be deleted: a kill before the answer may leave it either way
  const mirrorsDeleteAsked = new Set<string>();
  let serial = 0;

  const env = (extra: NodeJS.ProcessEnv = {}) =>
    flotillaEnv({
      dataDir: work,
      ports,
      extra: {
        FLOTILLA_ADMIN_PASSWORD: secrets.admin,
        FLOTILLA_API_TOKEN: secrets.token,
        FLOTILLA_CONTENT_TASK_LEASE_SECONDS: '3',
        FLOTILLA_CONTENT_POLICY: '{}',
        FLOTILLA_MIRRORS_CRAWL_INTERVAL: '0',
        ...extra,
      },
    });
  const registryUrl = () => `http://127.0.0.1:${ports.registry}`;
  const mirrorsUrl = () => `http://127.0.0.1:${ports.mirrors}`;
  const bearer = () => ({
    authorization: `Bearer ${secrets.token}`,
    'content-type': 'application/json',
  });
  const creds = () => ({ username: 'admin', password: secrets.admin });
  const swallow = async (op: () => Promise<unknown>): Promise<void> => {
    await op().catch(() => undefined);
  };

  const restart = async (extra: NodeJS.ProcessEnv = {}): Promise<FlotillaProcess> => {
    await proc?.kill('SIGKILL');
    proc = await startFlotilla(['start'], env(extra), ports);
    return proc;
  };

  const pushTracked = async (
    repository: string,
    tag: string,
    layerBytes: number,
  ): Promise<void> => {
    const image = await pushImage(registryUrl(), repository, tag, {
      layers: 2,
      layerBytes,
      auth: creds(),
    });
    pushed.push({ repository, tag, digest: image.digest });
  };

  const inCandidate = async (): Promise<PushedTag[]> => {
    const out: PushedTag[] = [];
    for (const p of pushed.slice(-12)) {
      const detail = await content.repository(p.repository).catch(() => undefined);
      if (detail?.channels.find((c) => c.name === 'candidate')?.tags[p.tag] === p.digest)
        out.push(p);
    }
    return out;
  };

  const mirrorRequest = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`${mirrorsUrl()}${path}`, {
      method,
      headers: bearer(),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
  };
  const mirrorIds = async (): Promise<string[]> => {
    const { json } = await mirrorRequest('GET', '/api/v1/mirrors');
    return (json as Array<{ id: string }>).map((m) => m.id);
  };

  /** One operation per write path; each tolerates the process dying under it. */
  const operations: Record<WritePath, () => Promise<void>> = {
    upload: async () => {
      const n = ++serial;
      await swallow(() =>
        pushTracked(`fault/upload${n}`, 'v1', (1 + Math.floor(random() * 4)) * 1024 * 1024),
      );
    },
    manifest: async () => {
      const n = ++serial;
      await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          swallow(() => pushTracked(`fault/manifest${n}`, `t${i}`, 1024)),
        ),
      );
    },
    sync: async () => {
      const n = ++serial;
      await swallow(() => pushTracked(`fault/sync${n}`, 'v1', 64 * 1024));
      const again = pick(
        pushed.length > 0 ? pushed : [{ repository: `fault/sync${n}`, tag: 'v1', digest: '' }],
      );
      await swallow(async () => {
        const task = await content.sync({ repository: again.repository });
        await content.task(task.id, { waitSeconds: 10 });
      });
    },
    promotion: async () => {
      const ready = await inCandidate().catch(() => []);
      await Promise.all(
        ready.slice(-3).map((p) =>
          swallow(async () => {
            for (const [from, to] of [
              ['candidate', 'testing'],
              ['testing', 'stable'],
            ] as const) {
              const outcome = await content.promote({
                repository: p.repository,
                tags: [p.tag],
                from,
                to,
                reason: `fault round ${serial}`,
              });
              promoted.push({
                repository: p.repository,
                channel: to,
                version: outcome.version,
                tag: p.tag,
                digest: p.digest,
              });
            }
          }),
        ),
      );
    },
    publish: async () => {
      await swallow(async () => {
        const task = await content.publish({ channel: 'stable' });
        await content.task(task.id, { waitSeconds: 20 });
      });
    },
    crawl: async () => {
      await swallow(async () => {
        const ids = await mirrorIds();
        await Promise.all(
          ids.slice(0, 3).map((id) => mirrorRequest('POST', `/api/v1/mirrors/${id}/crawl`)),
        );
      });
    },
    mirror: async () => {
      const n = ++serial;
      await swallow(async () => {
        const created = await mirrorRequest('POST', '/api/v1/mirrors', {
          name: `fault-mirror-${n}`,
          baseUrl: `${mirrorsUrl()}/master`,
          country: pick(['DE', 'US', 'JP']),
        });
        if (created.status === 201) mirrorsCreated.add((created.json as { id: string }).id);
        const live = [...mirrorsCreated].filter((id) => !mirrorsDeleted.has(id));
        if (live.length > 2) {
          const victim = pick(live);
          mirrorsDeleteAsked.add(victim);
          const deleted = await mirrorRequest('DELETE', `/api/v1/mirrors/${victim}`);
          if (deleted.status === 204 || deleted.status === 200) mirrorsDeleted.add(victim);
        }
        if (live.length > 0)
          await mirrorRequest('PATCH', `/api/v1/mirrors/${pick(live)}`, {
            bandwidth: 1 + Math.floor(random() * 1000),
          });
      });
    },
    gc: async () => {
      // gc is a process of its own next to the running registry; it is what gets killed
    },
  };

  /** Runs `flotilla registry gc`, killed with SIGKILL after `delayMs` (or at its fault point). */
  const killedGc = async (delayMs: number, extra: NodeJS.ProcessEnv): Promise<void> => {
    const cli = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'services/cli/src/main.ts', 'registry', 'gc'],
      {
        cwd: repoRoot,
        env: env(extra),
        stdio: 'ignore',
      },
    );
    const exited = new Promise<void>((r) => cli.once('exit', () => r()));
    const timer = setTimeout(() => cli.kill('SIGKILL'), delayMs);
    // concurrent pushes: what gc must never take from under a build
    await Promise.all([exited, operations.manifest()]);
    clearTimeout(timer);
  };

  const seen = new Set<string>();
  const givenUp = new Set<string>();
  /** Keeps each violation once, with the first round that saw it. */
  const record = (invariant: Invariant, round: string, found: string[]): void => {
    for (const v of found) {
      if (seen.has(`${invariant}: ${v}`)) continue;
      seen.add(`${invariant}: ${v}`);
      violations.get(invariant)!.push(`[seed ${SEED}, ${round}] ${v}`);
    }
  };

  const checkInvariants = async (round: string, registryWritten: boolean): Promise<void> => {
    record('no task left running past its lease', round, await tasksSettle(content, 30_000));
    // a tag reported missing once is not waited for again (one lost event must not slow every later round)
    const key = (t: PushedTag) => `${t.repository}:${t.tag}@${t.digest}`;
    const missing = async (tags: PushedTag[], timeoutMs: number): Promise<string[]> => {
      const found = await tagsReachCandidate(
        content,
        tags.filter((t) => !givenUp.has(key(t))),
        timeoutMs,
      );
      for (const t of tags)
        if (found.some((v) => v.startsWith(`${t.repository}:${t.tag} (${t.digest})`)))
          givenUp.add(key(t));
      return found;
    };
    record('every acknowledged push reaches candidate', round, await missing(pushed, 30_000));
    record(
      'every tag the registry holds reaches candidate',
      round,
      await missing(await registryTags(registryUrl(), authorization), 15_000),
    );
    // fsck re-hashes every blob: only after rounds that wrote registry storage (and once after the last round)
    if (registryWritten) record('registry fsck clean', round, await registryFsckClean(env()));
    record('every tag resolves', round, await registryTagsResolve(registryUrl(), authorization));
    record('channel versions contiguous', round, await channelVersionsContiguous(content));
    record('every promotion audited', round, await promotionsAudited(content));
    const lost: string[] = [];
    for (const p of promoted) {
      const version = await content
        .repository(p.repository, { channel: p.channel, version: p.version })
        .catch(() => undefined);
      const tags = version?.channels.find((c) => c.name === p.channel)?.tags ?? {};
      if (tags[p.tag] !== p.digest)
        lost.push(
          `${p.repository} ${p.channel} version ${p.version} (acknowledged) lacks ${p.tag} → ${p.digest}`,
        );
    }
    record('acknowledged promotions kept', round, lost);
    record('published tree whole', round, await publishedTreeWhole(join(work, 'publish')));
    const ids = new Set(await mirrorIds());
    record('acknowledged mirror changes kept', round, [
      ...[...mirrorsCreated]
        .filter((id) => !mirrorsDeleteAsked.has(id) && !ids.has(id))
        .map((id) => `mirror ${id} was created (201) and is gone`),
      ...[...mirrorsDeleted]
        .filter((id) => ids.has(id))
        .map((id) => `mirror ${id} was deleted and is back`),
    ]);
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-faults-'));
    ports = await freeServicePorts();
    points = await faultPointsInSources();
    console.log(`fault injection: fault points found: ${points.join(', ') || 'none'}`);
    await restart();
    content = new ContentClient({ url: `http://127.0.0.1:${ports.content}`, token: secrets.token });
    // something on every path to begin with: images in candidate, a mirror of the master copy
    for (let i = 0; i < 3; i++) await operations.manifest();
    await operations.mirror();
  }, 120_000);

  afterAll(async () => {
    await proc?.kill('SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('kills, restarts and checks, round after round', async () => {
    const started = Date.now();
    for (let round = 1; round <= ROUNDS && Date.now() - started < BUDGET_MS; round++) {
      const path = pickWith(planRandom, CHOSEN_PATHS);
      const candidates = points.filter((p) => pathOfPoint(p) === path);
      const usePoint = candidates.length > 0 && planRandom() < 0.6;
      const delayMs = Math.floor(
        planRandom() * (path === 'upload' || path === 'publish' ? 1500 : 800),
      );
      const point = `${pickWith(planRandom, candidates.length > 0 ? candidates : ['none'])}:${1 + Math.floor(planRandom() * 3)}`;
      let how: string;
      if (path === 'gc') {
        how = usePoint ? `gc at point ${point}` : `gc killed after ${delayMs} ms`;
        await killedGc(
          usePoint ? 30_000 : delayMs,
          usePoint ? { FLOTILLA_FAULT_POINT: point } : {},
        );
        await restart();
      } else if (usePoint) {
        how = `point ${point}`;
        const armed = await restart({ FLOTILLA_FAULT_POINT: point });
        await operations[path]();
        // background work (syncs the pushes started) may still reach the point
        for (
          let i = 0;
          i < 30 && armed.child.exitCode === null && armed.child.signalCode === null;
          i++
        )
          await new Promise((r) => setTimeout(r, 100));
        if (armed.child.signalCode === 'SIGKILL') pointsFired++;
        else how += ' (not reached; SIGKILL after the operation)';
        await restart();
      } else {
        how = `SIGKILL after ${delayMs} ms`;
        const victim = proc!;
        const timer = new Promise<void>((r) =>
          setTimeout(() => void victim.kill('SIGKILL').then(r), delayMs),
        );
        await Promise.all([operations[path](), timer]);
        await restart();
      }
      const label = `round ${round}: ${path}, ${how}`;
      rounds.push(label);
      await checkInvariants(label, ['upload', 'manifest', 'sync', 'gc'].includes(path));
    }
    record('registry fsck clean', 'after the last round', await registryFsckClean(env()));
    console.log(
      `fault injection: seed ${SEED}, ${rounds.length} rounds, ${pointsFired} killed at a fault point\n  ${rounds.join('\n  ')}`,
    );
    for (const [invariant, bug] of Object.entries(KNOWN_BUGS)) {
      const found = violations.get(invariant as Invariant) ?? [];
      if (found.length > 0)
        console.log(`fault injection: known bug (${bug}) seen:\n  ${found.join('\n  ')}`);
    }
    expect(rounds.length).toBeGreaterThan(0);
    expect(
      pushed.length,
      'no push was ever acknowledged; the suite exercised nothing',
    ).toBeGreaterThan(0);
  }, 300_000);

  for (const invariant of INVARIANTS) {
    // FAULT_STRICT=1 checks the known-bad invariants too (to see whether a fix holds)
    it.skipIf(KNOWN_BUGS[invariant] !== undefined && process.env.FAULT_STRICT !== '1')(
      `holds after every kill: ${invariant}`,
      () => {
        expect(violations.get(invariant), `seed ${SEED}: FAULT_SEED=${SEED} replays`).toEqual([]);
      },
    );
  }
});

// The tree check must be able to fail: a tree broken in each way it guards against.
describe('the published-tree invariant sees a broken tree', () => {
  it('names a missing blob, a blob with the wrong bytes and a marker without its record', async () => {
    const root = await mkdtemp(join(tmpdir(), 'flotilla-broken-tree-'));
    try {
      const tree = await writePublishedTree(root, {
        publication: 1,
        repositories: [{ name: 'broken/app', tags: { '1': { kind: 'image', layers: 2 } } }],
      });
      expect(await publishedTreeWhole(root)).toEqual([]);
      const [missing, altered] = Object.keys(tree.repositories['broken/app']!.blobs);
      await rm(join(root, blobPath(missing!)));
      await writeFile(join(root, blobPath(altered!)), 'not the bytes');
      await writePublicationMarker(root, 2);
      const found = await publishedTreeWhole(root);
      expect(found.some((v) => v.includes(`${missing} is not in the tree`))).toBe(true);
      expect(found.some((v) => v.includes(`${blobPath(altered!)} does not hash to its name`))).toBe(
        true,
      );
      expect(found.some((v) => v.includes('PUBLICATION 2 has no publications/2.json'))).toBe(true);
      // a channel's view shares the root's records: its marker 1 is whole, its marker 3 is not
      await mkdir(join(root, 'channels', 'testing'), { recursive: true });
      await writePublicationMarker(join(root, 'channels', 'testing'), 1);
      expect((await publishedTreeWhole(root)).filter((v) => v.includes('channels'))).toEqual([]);
      await writePublicationMarker(join(root, 'channels', 'testing'), 3);
      expect(
        (await publishedTreeWhole(root)).some((v) =>
          v.includes('channels/testing: PUBLICATION 3 has no publications/3.json'),
        ),
      ).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

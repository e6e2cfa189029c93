/**
 * Redirector replicas scale with nothing but the snapshot file: two `flotilla serve redirector`
 * processes over one file both answer from it, both follow a new snapshot (temp file + rename,
 * as the mirrors service writes it), both keep the last good snapshot when a broken file
 * appears, and their counts reach the mirrors service's statistics through their files.
 */
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SELECTION_SNAPSHOT_VERSION,
  type SelectableMirror,
  type SelectionSnapshot,
} from '@flotilla/protocol';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRedirectStatistics } from '../services/mirrors/src/snapshot-writer.js';
import {
  flotillaEnv,
  freeServicePorts,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
} from './support/flotilla.js';

const HEX = 'ab'.repeat(32);
const BLOB_PATH = `/pub/containers/blobs/sha256/${HEX.slice(0, 2)}/${HEX}`;

function mirror(name: string): SelectableMirror {
  return {
    id: name,
    name,
    baseUrl: `http://${name}.example/pub`,
    country: 'DE',
    netblocks: [],
    asn: null,
    bandwidth: 100,
    private: false,
    countriesAllowed: [],
    families: ['ipv4', 'ipv6'],
    publication: 1,
  };
}

function snapshot(mirrors: SelectableMirror[]): SelectionSnapshot {
  return {
    version: SELECTION_SNAPSHOT_VERSION,
    writtenAt: new Date().toISOString(),
    master: { name: 'master', baseUrl: 'http://master.example/master' },
    marker: 1,
    mirrors,
    blobs: [{ publication: 1, hex: [HEX] }],
  };
}

describe('redirector replicas over one snapshot file', () => {
  let work: string;
  let file: string;
  const replicas: Array<{ proc: FlotillaProcess; url: string }> = [];

  const place = async (text: string): Promise<void> => {
    const temp = `${file}.test.tmp`;
    await writeFile(temp, text);
    await rename(temp, file);
  };
  const mirrorOf = async (url: string): Promise<string | null> => {
    const res = await fetch(`${url}${BLOB_PATH}`, { redirect: 'manual' });
    return res.status === 302 ? res.headers.get('x-flotilla-mirror') : `status ${res.status}`;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-replicas-'));
    file = join(work, 'selection', 'snapshot.json');
    await mkdir(join(work, 'selection'));
    await place(JSON.stringify(snapshot([mirror('first')])));
    for (const name of ['one', 'two']) {
      const ports = await freeServicePorts();
      const env = flotillaEnv({
        dataDir: join(work, name),
        ports,
        extra: {
          FLOTILLA_SELECTION_SNAPSHOT: file,
          FLOTILLA_REDIRECTOR_POLL_INTERVAL: '250ms',
          FLOTILLA_REDIRECTOR_STATS_INTERVAL: '0',
        },
      });
      replicas.push({
        proc: await startFlotilla(['serve', 'redirector'], env, ports),
        url: `http://127.0.0.1:${ports.redirector}`,
      });
    }
  }, 120_000);

  afterAll(async () => {
    for (const r of replicas) await r.proc.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('both answer from the snapshot and both follow a change', async () => {
    for (const r of replicas) expect(await mirrorOf(r.url)).toBe('first');
    await place(JSON.stringify(snapshot([mirror('second')])));
    for (const r of replicas) {
      await waitFor(
        'the replica to load the new snapshot',
        async () => ((await mirrorOf(r.url)) === 'second' ? true : undefined),
        20_000,
        100,
      );
    }
  });

  it('keeps the last good snapshot when the file is broken or of another version', async () => {
    await place('{"version": 1, "truncated');
    await place(JSON.stringify({ ...snapshot([mirror('third')]), version: 2 }));
    // Give both a poll or two to (not) pick it up, then make sure nothing changed.
    await new Promise((resolve) => setTimeout(resolve, 800));
    for (const r of replicas) {
      expect(await mirrorOf(r.url)).toBe('second');
      expect((await fetch(`${r.url}/readyz`)).status).toBe(200);
    }
  });

  it('answers only its own routes', async () => {
    const res = await fetch(`${replicas[0]!.url}/api/v1/mirrors`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const list = await fetch(`${replicas[0]!.url}/mirrorlist?path=sha256:${HEX}`);
    expect(list.status).toBe(200);
    expect(await list.text()).toContain(
      `http://second.example/pub/blobs/sha256/${HEX.slice(0, 2)}/${HEX}`,
    );
  });

  it('hands its counts to the mirrors service through its statistics file at stop', async () => {
    const before = (await readRedirectStatistics(file, pino({ level: 'silent' }))).redirects;
    for (const r of replicas) for (let i = 0; i < 3; i += 1) await mirrorOf(r.url);
    for (const r of replicas) expect(await r.proc.stop()).toBe(0);
    expect(await readdir(join(work, 'selection', 'redirects'))).toHaveLength(2);
    const summary = await readRedirectStatistics(file, pino({ level: 'silent' }));
    expect(summary.redirects).toBeGreaterThanOrEqual(before + 6);
    expect(summary.byMirror.second).toBeGreaterThanOrEqual(6);
  });
});

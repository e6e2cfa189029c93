import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  parseSelectionSnapshot,
  SELECTION_SNAPSHOT_VERSION,
  type SelectionSnapshot,
} from '@flotilla/protocol';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SnapshotWriter } from '../src/snapshot-writer.js';

const snapshot = (marker: number): SelectionSnapshot => ({
  version: SELECTION_SNAPSHOT_VERSION,
  writtenAt: new Date(0).toISOString(),
  master: { name: 'master', baseUrl: 'http://master.example' },
  marker,
  mirrors: [],
  blobs: [{ publication: marker, hex: [String(marker % 10).repeat(64)] }],
});

describe('SnapshotWriter', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('leaves the newest snapshot in place, whole, and no temporary file', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-snapshot-'));
    const file = path.join(dir, 'selection', 'snapshot.json');
    const writer = new SnapshotWriter(file, pino({ level: 'silent' }));
    await Promise.all([1, 2, 3, 4, 5].map((n) => writer.write(snapshot(n))));
    expect(parseSelectionSnapshot(await readFile(file, 'utf8')).marker).toBe(5);
    expect(await readdir(path.dirname(file))).toEqual(['snapshot.json']);
  });
});

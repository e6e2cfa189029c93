import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../src/blob-index.js';
import type { TreeReader } from '../src/tree/reader.js';

const hex = (n: number) => n.toString(16).padStart(64, '0');

/** An in-memory tree: publication n adds the blobs listed; `broken` records fail to read. */
function memoryTree(
  records: Record<number, number[]>,
  marker: { value: number | null },
  broken = new Set<number>(),
): TreeReader {
  return {
    location: 'memory',
    readMarker: async () => marker.value,
    listPublications: async (after, upTo) =>
      Object.keys(records)
        .map(Number)
        .filter((n) => n > after && n <= upTo)
        .sort((a, b) => a - b),
    readPublication: async (n) => {
      if (broken.has(n)) throw new Error('bad record');
      return {
        schemaVersion: 1,
        publication: n,
        channel: 'stable',
        time: new Date(0).toISOString(),
        repositories: [],
        newBlobs: records[n]!.map((b) => `sha256:${hex(b)}`),
      };
    },
    blobSize: async () => 1,
  };
}

describe('BlobIndex', () => {
  const logger = pino({ level: 'silent' });

  it('maps blobs to the publication that introduced them, up to the marker only', async () => {
    const marker = { value: 2 as number | null };
    const index = new BlobIndex(memoryTree({ 1: [1, 2], 2: [3, 1], 3: [4] }, marker), logger);
    expect(await index.refresh()).toBe(true);
    expect(index.marker).toBe(2);
    // blob 1 is in both records (removed by retention, then published again): the latest counts
    expect(index.introducedIn(hex(1))).toBe(2);
    expect(index.introducedIn(hex(2))).toBe(1);
    expect(index.introducedIn(hex(3))).toBe(2);
    expect(index.introducedIn(hex(4))).toBeUndefined();
    expect(index.size).toBe(3);
    expect(await index.refresh()).toBe(false);
    marker.value = 3;
    expect(await index.refresh()).toBe(true);
    expect(index.introducedIn(hex(4))).toBe(3);
    expect(index.publicationsBetween(1, 3).map((p) => p.publication)).toEqual([2, 3]);
  });

  it('retries a record that failed to load and never counts past it', async () => {
    const broken = new Set([2]);
    const index = new BlobIndex(
      memoryTree({ 1: [1], 2: [2], 3: [3] }, { value: 3 }, broken),
      logger,
    );
    await index.refresh();
    expect(index.introducedIn(hex(2))).toBeUndefined();
    expect(index.introducedIn(hex(3))).toBe(3);
    expect(index.indexedThrough).toBe(1);
    broken.clear();
    await index.refresh();
    expect(index.introducedIn(hex(2))).toBe(2);
    expect(index.indexedThrough).toBe(3);
  });

  it('rebuilds when the marker goes backwards and empties when it disappears', async () => {
    const marker = { value: 2 as number | null };
    const records = { 1: [1], 2: [2] } as Record<number, number[]>;
    const index = new BlobIndex(memoryTree(records, marker), logger);
    await index.refresh();
    marker.value = 1;
    delete records[2];
    await index.refresh();
    expect(index.marker).toBe(1);
    expect(index.introducedIn(hex(2))).toBeUndefined();
    marker.value = null;
    expect(await index.refresh()).toBe(true);
    expect(index.marker).toBeNull();
    expect(index.size).toBe(0);
  });
});

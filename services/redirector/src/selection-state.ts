import type { SelectionSnapshot } from '@flotilla/protocol';
import { buildSelector, type Selector } from './selection/selector.js';

/**
 * What the redirector answers from, built once per snapshot and swapped as a whole: the
 * selector over the snapshot's mirrors and `sha256 hex → introducing publication`.
 */
export interface Selection {
  readonly selector: Selector;
  readonly blobs: ReadonlyMap<string, number>;
  readonly marker: number | null;
  /** The snapshot's `writtenAt`; `null` before the first snapshot. */
  readonly writtenAt: string | null;
}

export function selectionFrom(snapshot: SelectionSnapshot, random: () => number): Selection {
  const blobs = new Map<string, number>();
  for (const group of snapshot.blobs)
    for (const hex of group.hex) blobs.set(hex, group.publication);
  return {
    selector: buildSelector(snapshot.mirrors, { master: snapshot.master, random }),
    blobs,
    marker: snapshot.marker,
    writtenAt: snapshot.writtenAt,
  };
}

/** Before any snapshot: every blob is unknown (404). */
export function emptySelection(random: () => number): Selection {
  return {
    selector: buildSelector([], { master: { name: 'master', baseUrl: 'http://invalid' }, random }),
    blobs: new Map(),
    marker: null,
    writtenAt: null,
  };
}

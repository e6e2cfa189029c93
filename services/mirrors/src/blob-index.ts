import type { Logger } from 'pino';
import type { TreeReader } from './tree/reader.js';

/**
 * Which publication (last) introduced each published blob: `sha256 hex → publication`, read from
 * the tree's `publications/<n>.json` up to the `PUBLICATION` marker (records beyond it belong
 * to a publication still being written and stay invisible). A blob in no publication is not
 * published, and the redirector answers 404 for it.
 *
 * Refreshing is incremental (only records newer than the last one read) and serialised; a
 * marker that went backwards (a tree restored from backup) rebuilds from scratch.
 */
export interface PublicationSummary {
  readonly publication: number;
  readonly channel: string;
  readonly time: string;
  /** sha256 digests, as in the record. */
  readonly newBlobs: readonly string[];
}

export class BlobIndex {
  private introduced = new Map<string, number>();
  private records = new Map<number, PublicationSummary>();
  private loadedUpTo = 0;
  private currentMarker: number | null = null;
  private refreshing: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly reader: TreeReader,
    private readonly logger: Logger,
  ) {}

  /** The newest complete publication, `null` while nothing is published. */
  get marker(): number | null {
    return this.currentMarker;
  }

  /** Every publication up to this one is indexed (a record that failed to load stops it). */
  get indexedThrough(): number {
    return this.loadedUpTo;
  }

  /** Number of distinct blobs indexed. */
  get size(): number {
    return this.introduced.size;
  }

  /** The publication that introduced the blob with this sha256 hex, if published. */
  introducedIn(hex: string): number | undefined {
    return this.introduced.get(hex);
  }

  /**
   * `sha256 hex → publication` itself, read-only: for a listener that copies it at once (posting
   * it to another thread clones it), so it is not copied twice. Changes with the next refresh.
   */
  entries(): ReadonlyMap<string, number> {
    return this.introduced;
  }

  publication(n: number): PublicationSummary | undefined {
    return this.records.get(n);
  }

  /** Publications indexed in `(after, upTo]`, ascending. */
  publicationsBetween(after: number, upTo: number): PublicationSummary[] {
    const out: PublicationSummary[] = [];
    for (const [n, record] of this.records) if (n > after && n <= upTo) out.push(record);
    return out.sort((a, b) => a.publication - b.publication);
  }

  /** Calls `listener` after every refresh that changed the index; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads what is new in the tree; concurrent calls share one pass. Returns whether anything changed. */
  refresh(): Promise<boolean> {
    const run = this.refreshing.then(async () => {
      const changed = await this.refreshOnce();
      if (changed) for (const listener of this.listeners) listener();
      return changed;
    });
    this.refreshing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async refreshOnce(): Promise<boolean> {
    const marker = await this.reader.readMarker();
    if (marker === null) {
      const changed = this.currentMarker !== null;
      if (changed) this.reset();
      return changed;
    }
    if (this.currentMarker !== null && marker < this.currentMarker) {
      this.logger.warn(
        { marker, previous: this.currentMarker },
        'publication marker went backwards, rebuilding index',
      );
      this.reset();
    }
    if (marker === this.currentMarker && this.loadedUpTo === marker) return false;
    const numbers = await this.reader.listPublications(this.loadedUpTo, marker);
    let firstFailed: number | undefined;
    for (const n of numbers) {
      let record;
      try {
        record = await this.reader.readPublication(n);
      } catch (error) {
        // Its blobs stay unknown (404, never a wrong redirect); the next refresh retries.
        this.logger.error({ err: error, publication: n }, 'failed to read publication record');
        firstFailed ??= n;
        continue;
      }
      this.add({
        publication: n,
        channel: record.channel,
        time: record.time,
        newBlobs: record.newBlobs,
      });
    }
    this.loadedUpTo = firstFailed === undefined ? marker : firstFailed - 1;
    this.currentMarker = marker;
    this.logger.info({ marker, blobs: this.introduced.size }, 'blob index refreshed');
    return true;
  }

  private add(record: PublicationSummary): void {
    this.records.set(record.publication, record);
    for (const digest of record.newBlobs) {
      const hex = digest.slice(7);
      const known = this.introduced.get(hex);
      // A blob in two records was removed by retention and published again: mirrors that
      // synced in between deleted it, so only the latest (re)introduction proves a mirror has it.
      if (known === undefined || record.publication > known)
        this.introduced.set(hex, record.publication);
    }
  }

  private reset(): void {
    this.introduced = new Map();
    this.records = new Map();
    this.loadedUpTo = 0;
    this.currentMarker = null;
  }
}

/**
 * Full disks, one way for every service: recognise the error (`ENOSPC`, `EDQUOT`), measure
 * the free space of a data directory, refuse writes early below a configured reserve, say
 * "storage low" in `/readyz` and export the free bytes as a gauge.
 *
 * A write that meets a full disk fails that one operation with `StorageFullError` (507 in
 * both error formats: OCI JSON on `/v2/`, problem JSON elsewhere); the error mapper renders a
 * bare `ENOSPC`/`EDQUOT` from the filesystem the same way, so no path answers a 500 for it.
 * The reserve keeps the last bytes of a volume for the writes a service cannot refuse (its
 * store, its event journal) and for the operator.
 */
import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import type { ReadinessWarning } from './readiness.js';

/** The errno codes of a full filesystem or an exhausted quota. */
export const STORAGE_FULL_ERRNO_CODES: readonly string[] = ['ENOSPC', 'EDQUOT'];

const STORAGE_FULL_STATUS = 507;

/** Thrown when a write met a full disk or the free space is below the reserve. */
export class StorageFullError extends Error {
  override readonly name = 'StorageFullError';
  readonly status = STORAGE_FULL_STATUS;
  /** Free bytes when known (the early refusal measures them). */
  readonly freeBytes?: number;
  readonly reserveBytes?: number;

  constructor(
    detail = 'storage is full',
    options: { cause?: unknown; freeBytes?: number; reserveBytes?: number } = {},
  ) {
    super(
      detail.startsWith('storage is full') ? detail : `storage is full: ${detail}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    if (options.freeBytes !== undefined) this.freeBytes = options.freeBytes;
    if (options.reserveBytes !== undefined) this.reserveBytes = options.reserveBytes;
  }
}

/** An errno error of a full filesystem (`ENOSPC`, `EDQUOT`), or a `StorageFullError`, anywhere in its `cause` chain. */
export function isStorageFullError(err: unknown): boolean {
  let current = err;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (current instanceof StorageFullError) return true;
    if (typeof current !== 'object') return false;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && STORAGE_FULL_ERRNO_CODES.includes(code)) return true;
    if ((current as { name?: unknown }).name === 'StorageFullError') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** `err` itself when it is a `StorageFullError`, else a new one wrapping it. */
export function toStorageFullError(err: unknown, detail?: string): StorageFullError {
  if (err instanceof StorageFullError) return err;
  return new StorageFullError(detail, { cause: err });
}

/** Free bytes for an unprivileged writer on the filesystem holding `directory` (or its nearest existing parent). */
export async function freeBytesOf(directory: string): Promise<number> {
  let current = resolve(directory);
  for (;;) {
    try {
      const stats = await statfs(current);
      return Number(stats.bavail) * Number(stats.bsize);
    } catch (err) {
      const parent = dirname(current);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === current) throw err;
      current = parent;
    }
  }
}

export const STORAGE_FREE_METRIC = 'flotilla_storage_free_bytes';
export const STORAGE_RESERVE_METRIC = 'flotilla_storage_reserve_bytes';

export interface StorageSpaceOptions {
  /** A data directory; the filesystem it lives on is measured. */
  directory: string;
  /** Writes are refused (507) while fewer bytes than this are free; 0 = never refuse early. */
  reserveBytes: number;
  /** The `volume` label of the gauges and the name in messages, e.g. `registry`, `publish`. */
  volume: string;
  /** The service's metrics registry: the gauges are added there. */
  metrics?: { registry: Registry };
}

export interface StorageSpace {
  readonly directory: string;
  readonly volume: string;
  readonly reserveBytes: number;
  freeBytes(): Promise<number>;
  /** Throws `StorageFullError` while the free space is below the reserve (a write's early refusal). */
  ensureWritable(): Promise<void>;
  /** For `Readiness`: a warning `storage low: …` below the reserve (reads still work, so the probe stays up). */
  readinessCheck(): Promise<ReadinessWarning | undefined>;
}

interface Gauges {
  spaces: Set<StorageSpace>;
  reserve: Gauge;
}

// One pair of gauges per metrics registry, however many volumes a service watches.
const gaugesByRegistry = new WeakMap<Registry, Gauges>();

function registerGauges(registry: Registry, space: StorageSpace): void {
  let gauges = gaugesByRegistry.get(registry);
  if (!gauges) {
    const spaces = new Set<StorageSpace>();
    new Gauge({
      name: STORAGE_FREE_METRIC,
      help: 'Free bytes on the filesystem of a data directory (as an unprivileged writer sees them)',
      labelNames: ['volume'],
      registers: [registry],
      // measured at scrape time, so the gauge is never stale
      async collect() {
        for (const s of spaces) {
          const free = await s.freeBytes().catch(() => undefined);
          if (free !== undefined) this.set({ volume: s.volume }, free);
        }
      },
    });
    const reserve = new Gauge({
      name: STORAGE_RESERVE_METRIC,
      help: 'Free bytes below which a data directory refuses writes',
      labelNames: ['volume'],
      registers: [registry],
    });
    gauges = { spaces, reserve };
    gaugesByRegistry.set(registry, gauges);
  }
  gauges.spaces.add(space);
  gauges.reserve.set({ volume: space.volume }, space.reserveBytes);
}

export function createStorageSpace(options: StorageSpaceOptions): StorageSpace {
  const { directory, volume, reserveBytes } = options;
  const space: StorageSpace = {
    directory,
    volume,
    reserveBytes,
    freeBytes: () => freeBytesOf(directory),
    async ensureWritable() {
      if (reserveBytes <= 0) return;
      const free = await freeBytesOf(directory);
      if (free < reserveBytes) {
        throw new StorageFullError(
          `storage is full: ${free} bytes free on the ${volume} volume, below the reserve of ${reserveBytes}`,
          {
            freeBytes: free,
            reserveBytes,
          },
        );
      }
    },
    async readinessCheck() {
      const free = await freeBytesOf(directory);
      if (free < reserveBytes) {
        return {
          warning: `storage low: ${free} bytes free on the ${volume} volume, below the reserve of ${reserveBytes}; writes are refused`,
        };
      }
      return undefined;
    },
  };
  if (options.metrics) registerGauges(options.metrics.registry, space);
  return space;
}

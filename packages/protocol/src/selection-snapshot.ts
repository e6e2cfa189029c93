import { z } from 'zod';

/**
 * The selection snapshot: everything a redirector needs to answer `/pub/containers/…` and
 * `/mirrorlist`, written by the mirrors service as one JSON file (temp file, then rename)
 * whenever the eligible mirrors or the blob index change, and read by every redirector
 * replica. It carries no credentials and nothing a redirector would need a database for.
 *
 * `version` changes when a reader could misread the file; a redirector refuses a version it
 * does not know and keeps answering from the snapshot it has.
 */
export const SELECTION_SNAPSHOT_VERSION = 1;

/** The snapshot's default place, relative to FLOTILLA_DATA_DIR (FLOTILLA_SELECTION_SNAPSHOT overrides). */
export const DEFAULT_SELECTION_SNAPSHOT = 'selection/snapshot.json';

/** Where redirectors write their counts, relative to the snapshot's directory. */
export const REDIRECT_STATISTICS_DIR = 'redirects';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const alpha2 = z.string().regex(/^[A-Z]{2}$/);
const publication = z.number().int().nonnegative();

/** A mirror the redirector may send clients to: enabled, crawled, flattened. */
export const selectableMirrorSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  /** Without a trailing slash; a blob is at `<baseUrl>/blobs/sha256/<2>/<hex>`. */
  baseUrl: z.string().min(1),
  country: alpha2,
  /** CIDRs; invalid entries are ignored (the admin API validates them). */
  netblocks: z.array(z.string()),
  asn: z.number().int().nonnegative().nullable(),
  /** The weight; positive. */
  bandwidth: z.number().positive(),
  private: z.boolean(),
  /** Empty = every country. */
  countriesAllowed: z.array(alpha2),
  /** The address families the mirror answers on. */
  families: z.array(z.enum(['ipv4', 'ipv6'])),
  /** The highest publication the crawler verified the mirror holds. */
  publication,
});

export const selectionSnapshotSchema = z.object({
  version: z.literal(SELECTION_SNAPSHOT_VERSION),
  /** When the mirrors service wrote it (ISO 8601). */
  writtenAt: z.string(),
  /** Where a blob goes when no mirror holds it. */
  master: z.object({ name: z.string().min(1), baseUrl: z.string().min(1) }),
  /** The newest complete publication when written; `null` while nothing is published. */
  marker: publication.nullable(),
  mirrors: z.array(selectableMirrorSchema),
  /**
   * The blob index, grouped: each published blob's sha256 hex under the publication that
   * (last) introduced it. A blob in no group is not published.
   */
  blobs: z.array(z.object({ publication, hex: z.array(hex64) })),
});

export type SelectableMirror = z.infer<typeof selectableMirrorSchema>;
export type SelectionSnapshot = z.infer<typeof selectionSnapshotSchema>;

/** Groups `hex → introducing publication` as the snapshot stores it. */
export function groupBlobsByPublication(
  introduced: ReadonlyMap<string, number>,
): SelectionSnapshot['blobs'] {
  const groups = new Map<number, string[]>();
  for (const [hex, n] of introduced) {
    let group = groups.get(n);
    if (group === undefined) {
      group = [];
      groups.set(n, group);
    }
    group.push(hex);
  }
  return [...groups].sort(([a], [b]) => a - b).map(([n, hex]) => ({ publication: n, hex }));
}

/** Parses a snapshot file's text; throws with the reason when it is not a snapshot this code reads. */
export function parseSelectionSnapshot(text: string): SelectionSnapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('selection snapshot is not JSON');
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (version !== SELECTION_SNAPSHOT_VERSION) {
    throw new Error(
      `selection snapshot version ${JSON.stringify(version)} is not ${SELECTION_SNAPSHOT_VERSION}`,
    );
  }
  const parsed = selectionSnapshotSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `selection snapshot is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`,
    );
  }
  return parsed.data;
}

const count = z.number().int().nonnegative();

/**
 * A redirector's counts since it started, as `GET /api/v1/statistics` reports them. Each
 * redirector process writes its own to `<snapshot directory>/redirects/<instance>.json`; the
 * mirrors service sums the files.
 */
export const redirectStatisticsSchema = z.object({
  since: z.string(),
  redirects: count,
  notFound: count,
  byMirror: z.record(z.string(), count),
  byCountry: z.record(z.string(), count),
  byTier: z.record(z.string(), count),
});

export type RedirectStatisticsSummary = z.infer<typeof redirectStatisticsSchema>;

/** The sum of several redirectors' counts; `since` is the earliest. */
export function sumRedirectStatistics(
  parts: readonly RedirectStatisticsSummary[],
): RedirectStatisticsSummary {
  const total: RedirectStatisticsSummary = {
    since: '',
    redirects: 0,
    notFound: 0,
    byMirror: {},
    byCountry: {},
    byTier: {},
  };
  const add = (into: Record<string, number>, from: Record<string, number>): void => {
    for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
  };
  for (const part of parts) {
    if (total.since === '' || part.since < total.since) total.since = part.since;
    total.redirects += part.redirects;
    total.notFound += part.notFound;
    add(total.byMirror, part.byMirror);
    add(total.byCountry, part.byCountry);
    add(total.byTier, part.byTier);
  }
  if (total.since === '') total.since = new Date().toISOString();
  return total;
}

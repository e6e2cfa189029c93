/**
 * The registry's on-disk layout; the only place that builds a storage path. Paths are
 * relative to the storage root and `/`-separated; the driver maps them onto the filesystem.
 *
 * ```
 * <root>/
 *   blobs/<algo>/<2 hex>/<hex>/data                  content, immutable, named by its digest
 *   repositories/<name>/                             <name> may hold `/` (fedora/httpd)
 *     _layers/<algo>/<hex>/link                      "this repository holds blob <digest>"
 *     _manifests/
 *       revisions/<algo>/<hex>/link                  a manifest of this repository (bytes in blobs/)
 *       revisions/<algo>/<hex>/mediatype             the Content-Type it was pushed with
 *       tags/<tag>/current/link                      the digest the tag points at
 *     _referrers/<algo>/<subject hex>/<algo>-<hex>/link   manifest <digest> names <subject>
 *     _uploads/<uuid>/
 *       data                                         the bytes received so far (appended)
 *       startedat                                    ISO time the session opened (expiry)
 *       offset                                       bytes acknowledged and fsynced
 *   journal/<id>.json                                events of a manifest change under way (see
 *                                                    events/manifest-journal.ts), written before it
 *   outbox/                                          embedded store holding unsent events
 * ```
 *
 * Rules that make a crash at any moment harmless: content is written before any pointer to
 * it (blob data before a link, the manifest blob and its media type before its revision link,
 * the revision link before a tag); every small file is written to a temporary sibling,
 * fsynced and renamed into place; an upload's `data` becomes a blob by one rename after its
 * digest has been verified. Repository path components never start with `_` (the name
 * grammar forbids it), so `_layers` & co. cannot collide with a nested repository.
 */

import { join } from 'node:path';

export interface DigestParts {
  algorithm: string;
  hex: string;
}

const REPOSITORIES = 'repositories';

export const StoragePaths = {
  blobsRoot: 'blobs',
  repositoriesRoot: REPOSITORIES,

  blobDir(d: DigestParts): string {
    return `blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`;
  },
  blobData(d: DigestParts): string {
    return `${StoragePaths.blobDir(d)}/data`;
  },

  repository(name: string): string {
    return `${REPOSITORIES}/${name}`;
  },
  layersRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_layers`;
  },
  layerLink(name: string, d: DigestParts): string {
    return `${REPOSITORIES}/${name}/_layers/${d.algorithm}/${d.hex}/link`;
  },
  manifestsRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_manifests`;
  },
  revisionsRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_manifests/revisions`;
  },
  revisionDir(name: string, d: DigestParts): string {
    return `${REPOSITORIES}/${name}/_manifests/revisions/${d.algorithm}/${d.hex}`;
  },
  revisionLink(name: string, d: DigestParts): string {
    return `${StoragePaths.revisionDir(name, d)}/link`;
  },
  revisionMediaType(name: string, d: DigestParts): string {
    return `${StoragePaths.revisionDir(name, d)}/mediatype`;
  },
  tagsRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_manifests/tags`;
  },
  tagDir(name: string, tag: string): string {
    return `${REPOSITORIES}/${name}/_manifests/tags/${tag}`;
  },
  tagCurrentLink(name: string, tag: string): string {
    return `${REPOSITORIES}/${name}/_manifests/tags/${tag}/current/link`;
  },
  referrersRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_referrers`;
  },
  referrersOf(name: string, subject: DigestParts): string {
    return `${REPOSITORIES}/${name}/_referrers/${subject.algorithm}/${subject.hex}`;
  },
  referrerLink(name: string, subject: DigestParts, referrer: DigestParts): string {
    return `${StoragePaths.referrersOf(name, subject)}/${referrer.algorithm}-${referrer.hex}/link`;
  },
  uploadsRoot(name: string): string {
    return `${REPOSITORIES}/${name}/_uploads`;
  },
  uploadDir(name: string, uuid: string): string {
    return `${REPOSITORIES}/${name}/_uploads/${uuid}`;
  },
  uploadData(name: string, uuid: string): string {
    return `${StoragePaths.uploadDir(name, uuid)}/data`;
  },
  uploadStartedAt(name: string, uuid: string): string {
    return `${StoragePaths.uploadDir(name, uuid)}/startedat`;
  },
  uploadOffset(name: string, uuid: string): string {
    return `${StoragePaths.uploadDir(name, uuid)}/offset`;
  },
  journalRoot: 'journal',
  journalEntry(id: string): string {
    return `journal/${id}.json`;
  },
  /** Where GC parks a blob while it re-checks that nobody touched it (see gc.ts). */
  sweepTrash(d: DigestParts, token: string): string {
    return `${StoragePaths.blobDir(d)}/data.sweep-${token}`;
  },

  /** Special directory names inside a repository directory. */
  reserved: {
    layers: '_layers',
    manifests: '_manifests',
    referrers: '_referrers',
    uploads: '_uploads',
  },
} as const;

/** Splits `referrerLink`'s `<algo>-<hex>` directory name back into its parts. */
export function parseReferrerEntry(entry: string): DigestParts | undefined {
  const dash = entry.indexOf('-');
  if (dash <= 0) return undefined;
  return { algorithm: entry.slice(0, dash), hex: entry.slice(dash + 1) };
}

/** The suffix every temporary file carries; fsck and start-up clean-up recognise it. */
export const TEMP_MARKER = '.tmp-';

/** The embedded store directory for the event outbox (the registry has no shared database). */
export function outboxDirectory(storageRoot: string): string {
  return join(storageRoot, 'outbox');
}

/** The storage root for a data dir when no explicit storage dir is configured. */
export function defaultStorageDirectory(dataDir: string): string {
  return join(dataDir, 'registry');
}

import { isDigest } from '@flotilla/protocol';
import { PathNotFoundError, type StorageDriver } from '../storage/driver.js';
import { parseReferrerEntry, StoragePaths, TEMP_MARKER } from '../storage/paths.js';

/**
 * A read-only scan of the storage tree for GC and fsck: every blob, every link of every
 * repository (with modification times) and leftovers of interrupted writes.
 */
export interface BlobEntry {
  digest: string;
  algorithm: string;
  hex: string;
  size: number;
  modTime: Date;
}

export interface LinkEntry {
  repository: string;
  kind: 'layer' | 'revision' | 'tag' | 'referrer';
  /** The driver path of the link file. */
  path: string;
  /** What the link points at. */
  digest: string;
  modTime: Date;
  /** For tags. */
  tag?: string;
  /** For referrers: the subject digest. */
  subject?: string;
}

export interface Inventory {
  blobs: Map<string, BlobEntry>;
  links: LinkEntry[];
  repositories: string[];
  /** Temporary files and sweep leftovers (driver paths). */
  leftovers: string[];
  uploads: number;
}

async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return (await driver.list(path)).filter((n) => !n.includes(TEMP_MARKER));
  } catch (err) {
    if (err instanceof PathNotFoundError) return [];
    throw err;
  }
}

async function readLink(
  driver: StorageDriver,
  path: string,
): Promise<{ digest: string; modTime: Date } | undefined> {
  try {
    const [content, info] = await Promise.all([driver.getContent(path), driver.stat(path)]);
    return { digest: content.toString('utf8').trim(), modTime: info.modTime };
  } catch (err) {
    if (err instanceof PathNotFoundError) return undefined;
    throw err;
  }
}

export function isLeftover(path: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.includes(TEMP_MARKER) || base.startsWith('data.sweep-');
}

export async function takeInventory(driver: StorageDriver): Promise<Inventory> {
  const blobs = new Map<string, BlobEntry>();
  const leftovers: string[] = [];
  await driver.walk(StoragePaths.blobsRoot, (info) => {
    if (info.isDir) return;
    if (isLeftover(info.path)) {
      leftovers.push(info.path);
      return;
    }
    const parts = info.path.split('/'); // blobs/<algo>/<2>/<hex>/data
    if (parts.length !== 5 || parts[4] !== 'data') return;
    const algorithm = parts[1] as string;
    const hex = parts[3] as string;
    const digest = `${algorithm}:${hex}`;
    if (!isDigest(digest)) return;
    blobs.set(digest, { digest, algorithm, hex, size: info.size, modTime: info.modTime });
  });

  const repositories: string[] = [];
  await driver.walk(StoragePaths.repositoriesRoot, (info) => {
    if (!info.isDir) {
      if (isLeftover(info.path)) leftovers.push(info.path);
      return;
    }
    const components = info.path.split('/').slice(1);
    const reserved = components.findIndex((c) => c.startsWith('_'));
    if (reserved === components.length - 1) {
      // the first reserved directory below a repository: its parent is the repository
      const name = components.slice(0, reserved).join('/');
      if (!repositories.includes(name)) repositories.push(name);
      if (components[reserved] === StoragePaths.reserved.uploads) return 'skip';
    }
  });
  repositories.sort();

  const links: LinkEntry[] = [];
  let uploads = 0;
  for (const repository of repositories) {
    for (const algorithm of await listOrEmpty(driver, StoragePaths.layersRoot(repository))) {
      for (const hex of await listOrEmpty(
        driver,
        `${StoragePaths.layersRoot(repository)}/${algorithm}`,
      )) {
        const path = StoragePaths.layerLink(repository, { algorithm, hex });
        const link = await readLink(driver, path);
        if (link) links.push({ repository, kind: 'layer', path, ...link });
      }
    }
    for (const algorithm of await listOrEmpty(driver, StoragePaths.revisionsRoot(repository))) {
      for (const hex of await listOrEmpty(
        driver,
        `${StoragePaths.revisionsRoot(repository)}/${algorithm}`,
      )) {
        const path = StoragePaths.revisionLink(repository, { algorithm, hex });
        const link = await readLink(driver, path);
        if (link) links.push({ repository, kind: 'revision', path, ...link });
      }
    }
    for (const tag of await listOrEmpty(driver, StoragePaths.tagsRoot(repository))) {
      const path = StoragePaths.tagCurrentLink(repository, tag);
      const link = await readLink(driver, path);
      if (link) links.push({ repository, kind: 'tag', path, tag, ...link });
    }
    for (const algorithm of await listOrEmpty(driver, StoragePaths.referrersRoot(repository))) {
      for (const hex of await listOrEmpty(
        driver,
        `${StoragePaths.referrersRoot(repository)}/${algorithm}`,
      )) {
        const subject = { algorithm, hex };
        for (const entry of await listOrEmpty(
          driver,
          StoragePaths.referrersOf(repository, subject),
        )) {
          const referrer = parseReferrerEntry(entry);
          if (!referrer) continue;
          const path = StoragePaths.referrerLink(repository, subject, referrer);
          const link = await readLink(driver, path);
          if (link)
            links.push({
              repository,
              kind: 'referrer',
              path,
              subject: `${algorithm}:${hex}`,
              ...link,
            });
        }
      }
    }
    uploads += (await listOrEmpty(driver, StoragePaths.uploadsRoot(repository))).length;
  }
  return { blobs, links, repositories, leftovers, uploads };
}

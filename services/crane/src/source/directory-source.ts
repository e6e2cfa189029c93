import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TreeSource } from './tree-source.js';

const METADATA_SUFFIX = '.json';

/** A published tree on the local filesystem. */
export function createDirectorySource(root: string): TreeSource {
  const resolve = (relativePath: string): string => path.join(root, ...relativePath.split('/'));
  return {
    location: root,
    async readText(relativePath) {
      try {
        return await readFile(resolve(relativePath), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    async listRepositories(repositoriesDir) {
      // <dir>/<name>.json where <name> may contain '/': walk the folder
      const base = resolve(repositoriesDir);
      let entries;
      try {
        entries = await readdir(base, { recursive: true, withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      const names: string[] = [];
      for (const entry of entries) {
        if (!entry.isFile() || !entry.name.endsWith(METADATA_SUFFIX)) continue;
        const full = path.join(entry.parentPath, entry.name);
        const relative = path.relative(base, full).split(path.sep).join('/');
        names.push(relative.slice(0, -METADATA_SUFFIX.length));
      }
      return names;
    },
  };
}

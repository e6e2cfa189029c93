import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  parsePublicationMarker,
  parsePublicationRecord,
  PublishedPaths,
  type PublicationRecord,
} from '@flotilla/protocol';
import { request, type Dispatcher } from 'undici';

/**
 * Read access to the master's published tree: either the directory content publishes into
 * (`FLOTILLA_PUBLISH_DIR`) or, when this service runs apart from it, the master URL. Every
 * relative path comes from `PublishedPaths`. Mirrors never look inside a channel's view: the
 * root `PUBLICATION` is the newest publication of any channel and the records of every channel
 * share one sequence, so a mirror is judged by all of them, and blobs are shared under `blobs/`.
 */
export interface TreeReader {
  /** Where it reads from, for logs. */
  readonly location: string;
  /** The newest complete publication, `null` while nothing is published. */
  readMarker(): Promise<number | null>;
  /** Publication numbers `> after` and `<= upTo` that exist, ascending. */
  listPublications(after: number, upTo: number): Promise<number[]>;
  readPublication(n: number): Promise<PublicationRecord>;
  /** The blob's size in bytes, `null` when the master does not hold it. */
  blobSize(digest: string): Promise<number | null>;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function createDirectoryTreeReader(root: string): TreeReader {
  const absolute = path.resolve(root);
  const resolveIn = (relative: string): string => path.join(absolute, ...relative.split('/'));
  return {
    location: absolute,
    async readMarker() {
      try {
        return parsePublicationMarker(await readFile(resolveIn(PublishedPaths.marker)));
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
    },
    async listPublications(after, upTo) {
      let names: string[];
      try {
        names = await readdir(resolveIn('publications'));
      } catch (error) {
        if (isMissing(error)) return [];
        throw error;
      }
      const numbers: number[] = [];
      for (const name of names) {
        const match = /^(\d{1,15})\.json$/.exec(name);
        if (!match) continue;
        const n = Number(match[1]);
        if (n > after && n <= upTo) numbers.push(n);
      }
      return numbers.sort((a, b) => a - b);
    },
    async readPublication(n) {
      return parsePublicationRecord(await readFile(resolveIn(PublishedPaths.publication(n))));
    },
    async blobSize(digest) {
      try {
        const info = await stat(resolveIn(PublishedPaths.blob(digest)));
        return info.isFile() ? info.size : null;
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
    },
  };
}

export interface HttpTreeReaderOptions {
  dispatcher?: Dispatcher;
  timeoutMs?: number;
}

/** Reads the tree from the master URL (no directory listing: publications are probed). */
export function createHttpTreeReader(
  baseUrl: string,
  options: HttpTreeReaderOptions = {},
): TreeReader {
  const base = baseUrl.replace(/\/+$/, '');
  const timeout = options.timeoutMs ?? 10_000;
  const get = async (relative: string, method: 'GET' | 'HEAD' = 'GET') => {
    const response = await request(`${base}/${relative}`, {
      method,
      dispatcher: options.dispatcher,
      // keep the connection after a HEAD (undici closes it by default)
      reset: false,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    return response;
  };
  const readText = async (relative: string): Promise<string | null> => {
    const response = await get(relative);
    if (response.statusCode === 404) {
      await response.body.dump();
      return null;
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`master answered ${response.statusCode} for ${relative}`);
    }
    return response.body.text();
  };
  return {
    location: base,
    async readMarker() {
      const text = await readText(PublishedPaths.marker);
      return text === null ? null : parsePublicationMarker(text);
    },
    async listPublications(after, upTo) {
      const numbers: number[] = [];
      for (let n = after + 1; n <= upTo; n += 1) {
        const response = await get(PublishedPaths.publication(n), 'HEAD');
        await response.body.dump();
        if (response.statusCode === 200) numbers.push(n);
      }
      return numbers;
    },
    async readPublication(n) {
      const text = await readText(PublishedPaths.publication(n));
      if (text === null) throw new Error(`publication ${n} is missing on the master`);
      return parsePublicationRecord(text);
    },
    async blobSize(digest) {
      const response = await get(PublishedPaths.blob(digest), 'HEAD');
      await response.body.dump();
      if (response.statusCode !== 200) return null;
      const length = Number(response.headers['content-length']);
      return Number.isSafeInteger(length) ? length : null;
    },
  };
}

import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_PUBLISHED_CHANNEL,
  legacyView,
  parsePublicationMarker,
  parsePublicationRecord,
  parseRepositoryMetadata,
  PublishedPaths,
  publishedView,
  type PublishedView,
} from '@flotilla/protocol';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { TreeSource } from '../source/tree-source.js';
import { createCatalog, EMPTY_CATALOG, type Catalog } from './catalog.js';
import { parsePulpRedirectFile, type PulpRepository } from './pulp.js';
import { buildRepositoryView, type CachePolicy, type RepositoryView } from './repository.js';

export interface LoaderMetrics {
  reloaded(result: 'loaded' | 'unchanged' | 'failed', seconds: number): void;
  metadataError(kind: 'repository' | 'publication' | 'pulp'): void;
  served(catalog: Catalog): void;
}

export interface CatalogLoaderOptions {
  source: TreeSource | null;
  /** The channel whose view is served (default `stable`). */
  channel?: string;
  pulpDir?: string;
  logger: Logger;
  metrics: LoaderMetrics;
  isProtected(name: string): boolean;
  cache: CachePolicy;
  /** Cache policy for protected repositories (default: `cache`). */
  privateCache?: CachePolicy;
  /** Metadata files read at once. */
  concurrency?: number;
}

export interface CatalogLoader {
  /** The catalog being served right now (one reference, swapped whole). */
  current(): Catalog;
  /** True once a tree (or a Pulp directory) has been loaded. */
  loaded(): boolean;
  /**
   * Loads what changed since the last load; `full` re-reads every repository. Calls made while
   * a load runs are coalesced into one more load after it.
   */
  reload(options?: { full?: boolean }): Promise<Catalog>;
}

const PULP_SUFFIX = '.json';

/**
 * Reads one channel's view of the published tree into catalogs: `channels/<channel>/`, or, for
 * the default channel of a tree that has no view of it yet (written before channels), the root
 * `repositories/` and `PUBLICATION`. Order of trust, as content writes it: the view's marker
 * only moves after everything it announces is in place, so crane reads the marker first, then
 * the channel's publication records since the last load (which repositories changed), then those
 * repositories' metadata. A repository file that fails to parse or contradicts itself is
 * logged, counted and skipped, and the previous good copy keeps being served; a file that is
 * gone removes the repository.
 */
export function createCatalogLoader(options: CatalogLoaderOptions): CatalogLoader {
  const log = options.logger.child({ component: 'catalog-loader' });
  const limit = pLimit(options.concurrency ?? 16);
  let catalog: Catalog = EMPTY_CATALOG;
  let hasLoaded = false;
  let running: Promise<Catalog> | null = null;
  let queued: { promise: Promise<Catalog>; full: boolean } | null = null;
  let pulpFingerprint = '';
  let pulpByFile = new Map<string, PulpRepository>();
  const channel = options.channel ?? DEFAULT_PUBLISHED_CHANNEL;
  const ownView = publishedView(channel);
  /** The view the served catalog came from (undefined before the first load of a tree). */
  let servedView: PublishedView | undefined;

  /** The channel's view and its marker; null while the tree shows nothing for the channel. */
  async function readView(
    source: TreeSource,
  ): Promise<{ view: PublishedView; marker: number } | null> {
    const own = await source.readText(ownView.marker);
    if (own !== null) return { view: ownView, marker: parsePublicationMarker(own) };
    if (channel !== DEFAULT_PUBLISHED_CHANNEL) return null;
    const legacy = legacyView();
    const text = await source.readText(legacy.marker);
    return text === null ? null : { view: legacy, marker: parsePublicationMarker(text) };
  }

  /**
   * Repository names the view's publications in (from, to] wrote (every channel's records share
   * one sequence: a channel view keeps its own); `complete` is false when a record was unusable.
   */
  async function namesFromPublications(
    source: TreeSource,
    view: PublishedView,
    from: number,
    to: number,
  ): Promise<{ names: Set<string>; complete: boolean }> {
    const numbers: number[] = [];
    for (let n = from + 1; n <= to; n++) numbers.push(n);
    const records = await Promise.all(
      numbers.map((n) =>
        limit(async () => {
          try {
            const text = await source.readText(PublishedPaths.publication(n));
            if (text === null) return null;
            return parsePublicationRecord(text);
          } catch (err) {
            options.metrics.metadataError('publication');
            log.warn({ err, publication: n }, 'failed to read publication record');
            return null;
          }
        }),
      ),
    );
    const names = new Set<string>();
    let complete = true;
    for (const record of records) {
      if (record === null) complete = false;
      else if (view.channel === null || record.channel === view.channel) {
        for (const name of record.repositories) names.add(name);
      }
    }
    return { names, complete };
  }

  async function readRepository(
    source: TreeSource,
    view: PublishedView,
    name: string,
    marker: number,
  ): Promise<RepositoryView | 'gone' | 'bad' | 'ahead'> {
    let text: string | null;
    try {
      text = await source.readText(view.repository(name));
    } catch (err) {
      options.metrics.metadataError('repository');
      log.warn({ err, repository: name }, 'failed to read repository metadata');
      return 'bad';
    }
    if (text === null) return 'gone';
    try {
      const metadata = parseRepositoryMetadata(text);
      if (metadata.repository !== name) throw new Error(`file names ${metadata.repository}`);
      if (metadata.publication > marker) {
        // written for a publication whose marker has not moved yet: not served before it is
        log.debug(
          { repository: name, publication: metadata.publication, marker },
          'repository metadata ahead of the marker',
        );
        return 'ahead';
      }
      const isProtected = options.isProtected(name);
      const cache = isProtected ? (options.privateCache ?? options.cache) : options.cache;
      return buildRepositoryView(metadata, { protected: isProtected, cache });
    } catch (err) {
      options.metrics.metadataError('repository');
      log.warn(
        { err, repository: name },
        'failed to load repository metadata, keeping the previous copy',
      );
      return 'bad';
    }
  }

  async function loadTree(
    source: TreeSource,
    full: boolean,
  ): Promise<{
    publication: number | null;
    repositories: ReadonlyMap<string, RepositoryView>;
    view: PublishedView;
  } | null> {
    const current = await readView(source);
    if (current === null) return null;
    const { view, marker } = current;
    // a switch of view (the default channel's first own publication) reads everything anew
    const previous = servedView?.channel === view.channel ? catalog.publication : null;
    if (!full && previous === marker) return null;

    let names = new Set<string>();
    let complete = full || previous === null || marker < previous;
    if (!complete) {
      const since = await namesFromPublications(source, view, previous!, marker);
      names = since.names;
      complete = !since.complete;
    }
    if (complete) {
      const listed = await source.listRepositories(view.repositoriesDir);
      if (listed !== null) names = new Set(listed);
      else {
        // over HTTP: every publication's names; a record that cannot be read is logged, and
        // the repositories we already serve are re-read rather than dropped
        names = (await namesFromPublications(source, view, 0, marker)).names;
        for (const name of catalog.repositories.keys()) names.add(name);
      }
    }
    const next = new Map<string, RepositoryView>(complete ? [] : catalog.repositories);
    const results = await Promise.all(
      [...names].map((name) =>
        limit(async () => [name, await readRepository(source, view, name, marker)] as const),
      ),
    );
    for (const [name, result] of results) {
      if (result === 'gone') next.delete(name);
      else if (result === 'bad' || result === 'ahead') {
        const old = catalog.repositories.get(name);
        if (old) next.set(name, old);
      } else next.set(name, result);
    }
    return { publication: marker, repositories: next, view };
  }

  /** Reads the Pulp directory; null when no file changed since the last read (and not `full`). */
  async function loadPulp(
    dir: string,
    full: boolean,
  ): Promise<{
    repos: Map<string, PulpRepository>;
    byFile: Map<string, PulpRepository>;
    fingerprint: string;
  } | null> {
    let files: string[];
    try {
      files = (await readdir(dir, { recursive: true }))
        .filter((f) => f.endsWith(PULP_SUFFIX))
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      files = [];
    }
    const texts = await Promise.all(
      files.map((f) => limit(() => readFile(path.join(dir, f), 'utf8').catch(() => null))),
    );
    const hash = createHash('sha256');
    for (const [i, text] of texts.entries()) hash.update(`${files[i]}\0${text ?? ''}\0`);
    const fingerprint = hash.digest('hex');
    if (!full && fingerprint === pulpFingerprint) return null;
    const repos = new Map<string, PulpRepository>();
    const byFile = new Map<string, PulpRepository>();
    for (const [i, text] of texts.entries()) {
      if (text === null) continue;
      const file = files[i]!;
      try {
        const repo = parsePulpRedirectFile(JSON.parse(text), options.isProtected);
        repos.set(repo.name, repo);
        byFile.set(file, repo);
      } catch (err) {
        options.metrics.metadataError('pulp');
        log.warn({ err, file }, 'failed to load pulp redirect file, keeping the previous copy');
        const old = pulpByFile.get(file);
        if (old) {
          repos.set(old.name, old);
          byFile.set(file, old);
        }
      }
    }
    return { repos, byFile, fingerprint };
  }

  async function load(full: boolean): Promise<Catalog> {
    const started = performance.now();
    let tree: Awaited<ReturnType<typeof loadTree>> = null;
    let treeError: unknown;
    try {
      if (options.source) {
        try {
          tree = await loadTree(options.source, full);
        } catch (err) {
          treeError = err; // Pulp files still load; the failure is reported below
        }
      }
      let pulp = catalog.pulp;
      let pulpChanged = false;
      if (options.pulpDir) {
        const loadedPulp = await loadPulp(options.pulpDir, full);
        // a migration may run on Pulp's content alone: a readable Pulp directory is enough
        hasLoaded = true;
        if (loadedPulp !== null) {
          pulp = loadedPulp.repos;
          pulpByFile = loadedPulp.byFile;
          pulpFingerprint = loadedPulp.fingerprint;
          pulpChanged = true;
        }
      }
      if (tree !== null) {
        hasLoaded = true;
        if (servedView?.channel !== tree.view.channel) {
          log.info(
            { channel, view: tree.view.channel ?? 'root (a tree written before channels)' },
            'serving view',
          );
        }
        servedView = tree.view;
      }
      const seconds = (performance.now() - started) / 1000;
      if (tree !== null || pulpChanged) {
        catalog = createCatalog(
          tree?.publication ?? catalog.publication,
          tree?.repositories ?? catalog.repositories,
          pulp,
        );
        options.metrics.served(catalog);
        log.info(
          {
            publication: catalog.publication,
            repositories: catalog.repositories.size,
            tags: catalog.tagCount,
            pulp: pulp.size,
            seconds,
          },
          'catalog loaded',
        );
      }
      if (treeError !== undefined) throw treeError;
      options.metrics.reloaded(tree !== null || pulpChanged ? 'loaded' : 'unchanged', seconds);
      return catalog;
    } catch (err) {
      options.metrics.reloaded('failed', (performance.now() - started) / 1000);
      log.error({ err, source: options.source?.location }, 'failed to load catalog');
      throw err;
    }
  }

  function reload(opts: { full?: boolean } = {}): Promise<Catalog> {
    const full = opts.full ?? false;
    if (!running) {
      running = load(full).finally(() => {
        running = null;
      });
      return running;
    }
    if (queued) {
      queued.full ||= full;
      return queued.promise;
    }
    const slot = { full, promise: null as unknown as Promise<Catalog> };
    slot.promise = running
      .catch(() => undefined)
      .then(() => {
        queued = null;
        return reload({ full: slot.full });
      });
    queued = slot;
    return slot.promise;
  }

  return {
    current: () => catalog,
    loaded: () => hasLoaded,
    reload,
  };
}

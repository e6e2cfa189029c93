import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parsePublicationMarker, PublishedPaths } from '@flotilla/protocol';
import pLimit from 'p-limit';
import { retry, type AddressFamily } from '@flotilla/kit';
import type { Logger } from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import type { BlobIndex } from '../blob-index.js';
import {
  AUTO_DISABLE_AFTER_FAILURES,
  type CrawlStatus,
  type MirrorDocument,
} from '../mirrors/model.js';
import type { CrawlLog, CrawlRecord, MirrorRepository } from '../mirrors/repository.js';
import type { TreeReader } from '../tree/reader.js';
import { faultPoint } from '@flotilla/kit';

/**
 * One more try after a transport failure (a reset connection, a refused one): a mirror that
 * drops one connection is not a failed crawl. Timeouts and HTTP answers are not retried.
 */
const NETWORK_RETRY = { retries: 1, backoffMs: 200 };

/**
 * The crawler proves what each mirror holds, blob-exact. Per mirror: read `PUBLICATION` on
 * every address family the host resolves to (learning which families answer), then for each
 * publication newer than the one recorded, up to what the mirror claims, `HEAD` the blobs it
 * added (all of them when few, else a random sample) and compare `Content-Length` with the
 * master's size. The recorded publication is the highest one verified without a gap.
 *
 * A crawl fails when the mirror does not answer or holds less than it claims; after 4 failed
 * crawls in a row (MirrorManager's rule) the mirror is auto-disabled, and the next good crawl
 * enables it again. Mirrors are crawled with bounded concurrency and every request has a
 * timeout.
 */
export interface CrawlerOptions {
  repository: MirrorRepository;
  crawlLog: CrawlLog;
  index: BlobIndex;
  /** The master tree, for blob sizes. */
  reader: TreeReader;
  /** Blobs checked per publication when it added more than this many. */
  sampleSize: number;
  /** Mirrors crawled at once. */
  concurrency: number;
  timeoutMs: number;
  logger: Logger;
  random?: () => number;
  /** Called after a crawl is recorded (emit the event, rebuild the selector). */
  onCrawled?: (mirror: MirrorDocument, record: CrawlRecord) => Promise<void>;
}

/** HEADs in flight per mirror. */
const CHECKS_PER_MIRROR = 4;
const MAX_FAILURES_LOGGED = 50;

interface Probe {
  family: AddressFamily;
  marker?: number;
  error?: string;
}

export class Crawler {
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly agents: Record<AddressFamily, Agent>;
  private readonly running = new Map<string, Promise<CrawlRecord | null>>();
  private readonly sizes = new Map<string, number>();
  private readonly random: () => number;
  private readonly logger: Logger;

  constructor(private readonly options: CrawlerOptions) {
    this.limit = pLimit(options.concurrency);
    this.random = options.random ?? Math.random;
    this.logger = options.logger.child({ component: 'crawler' });
    const connectFor = (family: 4 | 6) =>
      new Agent({
        connect: { family, timeout: options.timeoutMs } as Agent.Options['connect'],
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        keepAliveTimeout: 1000,
      });
    this.agents = { ipv4: connectFor(4), ipv6: connectFor(6) };
  }

  /** Crawls every mirror the admin enabled (auto-disabled ones too: that is how they come back). */
  async crawlAll(): Promise<CrawlRecord[]> {
    await this.options.index.refresh();
    const mirrors = (await this.options.repository.list()).filter((m) => m.enabled);
    const records = await Promise.all(
      mirrors.map((m) => this.limit(() => this.crawlMirror(m._id, { refreshed: true }))),
    );
    return records.filter((r): r is CrawlRecord => r !== null);
  }

  /** Crawls one mirror now; a crawl already running for it is joined. `null` when it does not exist. */
  crawlMirror(id: string, options: { refreshed?: boolean } = {}): Promise<CrawlRecord | null> {
    const running = this.running.get(id);
    if (running) return running;
    const run = (async () => {
      if (!options.refreshed) await this.options.index.refresh();
      const mirror = await this.options.repository.get(id);
      if (!mirror) return null;
      return this.crawl(mirror);
    })().finally(() => this.running.delete(id));
    this.running.set(id, run);
    return run;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
    await Promise.all([this.agents.ipv4.close(), this.agents.ipv6.close()]);
  }

  private async crawl(mirror: MirrorDocument): Promise<CrawlRecord> {
    const started = Date.now();
    const log = this.logger.child({ mirror: mirror.name });
    const master = this.options.index.marker;
    const previous = mirror.publication;
    const failures: CrawlRecord['failures'] = [];
    let checked = 0;
    let status: CrawlStatus;
    let verified = previous;
    let claimed: number | null = null;
    let error: string | null = null;

    const probes = await this.probe(mirror.baseUrl);
    const answered = probes.filter((p): p is Probe & { marker: number } => p.marker !== undefined);
    const learnedFamilies = answered.map((p) => p.family);
    if (answered.length === 0) {
      status = 'unreachable';
      error =
        probes.map((p) => `${p.family}: ${p.error ?? 'no answer'}`).join('; ') || 'no address';
    } else {
      // Two families may reach two hosts; only what both claim is trusted.
      claimed = Math.min(...answered.map((p) => p.marker));
      const family = answered[0]!.family;
      // Never past what the index holds completely: an unread record's blobs are unchecked.
      const target = Math.min(claimed, master ?? claimed, this.options.index.indexedThrough);
      if (verified !== null && claimed < verified) verified = claimed;
      const from = verified ?? 0;
      const check = pLimit(CHECKS_PER_MIRROR);
      let complete = true;
      for (const publication of this.options.index.publicationsBetween(from, target)) {
        const sample = this.sample(publication.newBlobs);
        checked += sample.length;
        const results = await Promise.all(
          sample.map((digest) => check(() => this.checkBlob(mirror.baseUrl, family, digest))),
        );
        results.forEach((reason, i) => {
          if (reason !== null && failures.length < MAX_FAILURES_LOGGED) {
            failures.push({ publication: publication.publication, digest: sample[i]!, reason });
          }
        });
        if (results.some((reason) => reason !== null)) {
          complete = false;
          break;
        }
        verified = publication.publication;
      }
      // Numbers without a record in the range (gaps) hold nothing to check.
      if (complete) verified = Math.max(verified ?? 0, target);
      status = complete ? 'ok' : 'incomplete';
      if (!complete) error = `holds less than publication ${claimed} it claims`;
    }

    const failed = status !== 'ok';
    const consecutiveFailures = failed ? mirror.consecutiveFailures + 1 : 0;
    const autoDisabled = failed
      ? mirror.autoDisabled || consecutiveFailures >= AUTO_DISABLE_AFTER_FAILURES
      : false;
    const durationMs = Date.now() - started;
    const crawledAt = new Date(started).toISOString();
    const updated = await this.options.repository.recordCrawl(mirror._id, {
      publication: verified,
      claimedPublication: claimed,
      // An unreachable mirror keeps the families it was last seen answering on.
      learnedFamilies: answered.length > 0 ? learnedFamilies : mirror.learnedFamilies,
      crawledAt,
      durationMs,
      status,
      error,
      consecutiveFailures,
      autoDisabled,
    });
    faultPoint('mirrors.crawl.recorded');
    const record = await this.options.crawlLog.append({
      mirrorId: mirror._id,
      mirror: mirror.name,
      startedAt: crawledAt,
      durationMs,
      status,
      masterPublication: master,
      claimedPublication: claimed,
      previousPublication: previous,
      verifiedPublication: verified,
      checked,
      failures,
      families: learnedFamilies,
      consecutiveFailures,
      autoDisabled,
      error,
    });
    const fields = {
      status,
      claimed,
      verified,
      checked,
      failures: failures.length,
      durationMs,
      consecutiveFailures,
    };
    if (autoDisabled && !mirror.autoDisabled)
      log.warn(fields, 'mirror auto-disabled after failed crawls');
    else if (!autoDisabled && mirror.autoDisabled)
      log.info(fields, 'mirror re-enabled after a good crawl');
    else log.info(fields, 'mirror crawled');
    faultPoint('mirrors.crawl.logged');
    if (updated && this.options.onCrawled) await this.options.onCrawled(updated, record);
    return record;
  }

  /** Which families the mirror's host answers on, and what `PUBLICATION` says on each. */
  private async probe(baseUrl: string): Promise<Probe[]> {
    const hostname = new URL(baseUrl).hostname.replace(/^\[|\]$/g, '');
    let families: AddressFamily[];
    const literal = isIP(hostname);
    if (literal === 4) families = ['ipv4'];
    else if (literal === 6) families = ['ipv6'];
    else {
      try {
        const addresses = await lookup(hostname, { all: true });
        families = [
          ...new Set(addresses.map((a) => (a.family === 6 ? 'ipv6' : 'ipv4') as AddressFamily)),
        ].sort();
      } catch (err) {
        return [{ family: 'ipv4', error: `cannot resolve ${hostname}: ${(err as Error).message}` }];
      }
    }
    return Promise.all(
      families.map(async (family): Promise<Probe> => {
        try {
          const text = await this.get(`${baseUrl}/${PublishedPaths.marker}`, this.agents[family]);
          return { family, marker: parsePublicationMarker(text) };
        } catch (err) {
          return { family, error: (err as Error).message };
        }
      }),
    );
  }

  private async get(url: string, dispatcher: Dispatcher): Promise<string> {
    const response = await retry(
      () =>
        request(url, {
          dispatcher,
          signal: AbortSignal.timeout(this.options.timeoutMs),
          headers: { 'user-agent': 'flotilla-mirrors-crawler' },
        }),
      NETWORK_RETRY,
    );
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`HTTP ${response.statusCode}`);
    }
    return response.body.text();
  }

  /** `null` when the mirror holds the blob with the master's size, else why not. */
  private async checkBlob(
    baseUrl: string,
    family: AddressFamily,
    digest: string,
  ): Promise<string | null> {
    const expected = await this.blobSize(digest);
    if (expected === null) return null; // the master lost it: nothing to compare against
    try {
      const response = await retry(
        () =>
          request(`${baseUrl}/${PublishedPaths.blob(digest)}`, {
            method: 'HEAD',
            dispatcher: this.agents[family],
            // undici closes the connection after every HEAD unless told otherwise: one TLS
            // handshake per checked blob; mirrors (web servers) send no body with a HEAD
            reset: false,
            signal: AbortSignal.timeout(this.options.timeoutMs),
            headers: { 'user-agent': 'flotilla-mirrors-crawler' },
          }),
        NETWORK_RETRY,
      );
      await response.body.dump();
      if (response.statusCode !== 200) return `HTTP ${response.statusCode}`;
      const length = response.headers['content-length'];
      if (typeof length !== 'string') return 'no Content-Length';
      if (Number(length) !== expected) return `Content-Length ${length}, expected ${expected}`;
      return null;
    } catch (err) {
      return (err as Error).message || 'request failed';
    }
  }

  private async blobSize(digest: string): Promise<number | null> {
    const known = this.sizes.get(digest);
    if (known !== undefined) return known;
    const size = await this.options.reader.blobSize(digest);
    if (size !== null) this.sizes.set(digest, size);
    return size;
  }

  /** All digests when few, else a uniform random sample of `sampleSize` (partial Fisher–Yates). */
  private sample(digests: readonly string[]): string[] {
    const size = this.options.sampleSize;
    if (digests.length <= size) return [...digests];
    const pool = [...digests];
    for (let i = 0; i < size; i += 1) {
      const j = i + Math.floor(this.random() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, size);
  }
}

import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { isSignatureTag, signedDigestOfTag } from '@flotilla/protocol';
import type { ChannelStore } from '../domain/channels.js';
import type { ProgressReporter } from '../tasks/progress.js';
import { RegistryClient, UpstreamError, type RetryPolicy } from './registry-client.js';

export interface ReconcilerDeps {
  channels: ChannelStore;
  /** Read at every run (the registry's URL and credentials). */
  registry: () => { url: string; username: string; password?: string };
  /** Queues a (coalesced) sync of one repository from the registry. */
  submitSync: (repository: string) => Promise<{ task: { _id: string } }>;
  logger: Logger;
  retry?: RetryPolicy;
}

export interface ReconcileResult {
  repositories: number;
  /** Repositories where the registry holds a tag candidate lacks, or another digest. */
  behind: string[];
  /** The sync tasks queued for them. */
  tasks: string[];
  errors: { repository: string; error: string }[];
}

/** Repositories checked at once; each one's tags are HEADed with more concurrency. */
const REPOSITORY_CONCURRENCY = 4;
const TAG_CONCURRENCY = 16;

/**
 * Heals lost events: compares what the registry holds (`/v2/_catalog`, each tag list, a HEAD per
 * tag) with the first channel (`candidate`) and queues a sync for every repository that is
 * behind. Costs one HEAD per tag; downloads nothing itself.
 */
export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  async run(progress: ProgressReporter, signal: AbortSignal): Promise<ReconcileResult> {
    const { channels, logger } = this.deps;
    const registry = this.deps.registry();
    const client = new RegistryClient(
      registry.url,
      { username: registry.username, password: registry.password },
      this.deps.retry ? { retry: this.deps.retry } : {},
    );
    const channel = channels.channels[0] as string;
    const repositories = await client.listRepositories(signal);
    progress.update({
      done: 0,
      total: repositories.length,
      message: 'comparing the registry with candidate',
    });
    const result: ReconcileResult = {
      repositories: repositories.length,
      behind: [],
      tasks: [],
      errors: [],
    };
    const repoLimit = pLimit(REPOSITORY_CONCURRENCY);
    let done = 0;

    const isBehind = async (repository: string): Promise<boolean> => {
      let tags: string[];
      try {
        tags = await client.listTags(repository, signal);
      } catch (err) {
        // Listed in the catalog but without tags (all deleted): nothing to bring over.
        if (err instanceof UpstreamError && err.status === 404) return false;
        throw err;
      }
      const current = await channels.current(repository, channel);
      const have = new Map((current?.tags ?? []).map((t) => [t.tag, t.digest]));
      // A sync brings only the signatures of what it syncs: a `.sig` tag of a digest candidate
      // does not tag would make the repository look behind after every sync.
      const tagged = new Set(
        (current?.tags ?? []).filter((t) => !isSignatureTag(t.tag)).map((t) => t.digest),
      );
      tags = tags.filter(
        (t) => !isSignatureTag(t) || have.has(t) || tagged.has(signedDigestOfTag(t) ?? ''),
      );
      if (tags.some((t) => !have.has(t))) return true;
      const tagLimit = pLimit(TAG_CONCURRENCY);
      const moved = await Promise.all(
        tags.map((tag) =>
          tagLimit(async () => {
            const head = await client.headManifest(repository, tag, signal);
            return head?.digest !== undefined && head.digest !== have.get(tag);
          }),
        ),
      );
      return moved.some(Boolean);
    };

    await Promise.all(
      repositories.map((repository) =>
        repoLimit(async () => {
          signal.throwIfAborted();
          try {
            if (await isBehind(repository)) {
              result.behind.push(repository);
              const { task } = await this.deps.submitSync(repository);
              result.tasks.push(task._id);
            }
          } catch (err) {
            if (signal.aborted) throw err;
            logger.warn({ err, repository }, 'failed to reconcile repository');
            result.errors.push({
              repository,
              error: err instanceof Error ? err.message : String(err),
            });
          } finally {
            done++;
            progress.update({ done });
          }
        }),
      ),
    );
    result.behind.sort();
    logger.info(
      {
        repositories: result.repositories,
        behind: result.behind.length,
        errors: result.errors.length,
      },
      'reconcile finished',
    );
    if (result.errors.length > 0) {
      const first = result.errors[0] as { repository: string; error: string };
      throw Object.assign(
        new Error(
          `reconcile could not check ${result.errors.length} of ${repositories.length} repositories (syncs queued for the others): ${first.repository}: ${first.error}`,
        ),
        { code: 'reconcile-incomplete', details: { ...result } },
      );
    }
    return result;
  }
}

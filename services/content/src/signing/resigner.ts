import type { Logger } from 'pino';
import { faultPoint } from '@flotilla/kit';
import { isSignatureTag, signatureTag } from '@flotilla/protocol';
import type { TagEntry } from '../collections.js';
import type { Catalog } from '../domain/catalog.js';
import type { ChannelStore } from '../domain/channels.js';
import { contentProblem } from '../domain/errors.js';
import type { ProgressReporter } from '../tasks/progress.js';
import type { Signatures } from './signatures.js';

export interface ResignParams {
  channel: string;
  repositories?: string[];
}

export type ResignResult = {
  channel: string;
  key: string;
  repositories: number;
  /** Repositories that got a new version (some manifest lacked the current key's signature). */
  changed: string[];
  signed: number;
};

class ChannelMoved extends Error {}

const MAX_ATTEMPTS = 5;

/**
 * `flotilla sign`: gives every manifest a channel holds a signature by the current key (after a
 * rotation), one repository at a time. Each repository's new signatures land in one new channel
 * version, so a crash leaves every repository either wholly re-signed or untouched, and running
 * again skips what already carries the current key's signature.
 */
export class Resigner {
  constructor(
    private readonly deps: {
      channels: ChannelStore;
      catalog: Catalog;
      signatures: Signatures;
      logger: Logger;
    },
  ) {}

  async resign(
    params: ResignParams,
    progress: ProgressReporter,
    signal: AbortSignal,
  ): Promise<ResignResult> {
    const { channels, catalog, signatures } = this.deps;
    channels.assertChannel(params.channel);
    let repos = (await channels.listRepositories())
      .filter((r) => (r.channels[params.channel]?.version ?? 0) > 0)
      .map((r) => r._id);
    if (params.repositories) {
      const wanted = new Set(params.repositories);
      repos = repos.filter((r) => wanted.has(r));
    }
    const result: ResignResult = {
      channel: params.channel,
      key: signatures.keys.current.id,
      repositories: repos.length,
      changed: [],
      signed: 0,
    };
    progress.update({ done: 0, total: repos.length, message: 'signing' });
    for (const [i, repository] of repos.entries()) {
      signal.throwIfAborted();
      for (let attempt = 0; ; attempt++) {
        const version = await channels.current(repository, params.channel);
        const tags = version?.tags ?? [];
        const tagMap = new Map(tags.map((t) => [t.tag, t.digest]));
        const roots = tags.filter((t) => !isSignatureTag(t.tag)).map((t) => t.digest);
        const { manifests } = await catalog.closure(roots);
        const moves: TagEntry[] = [];
        for (const digest of manifests.keys()) {
          signal.throwIfAborted();
          const tag = signatureTag(digest);
          const existing = tagMap.get(tag);
          const combined = await signatures.combine(repository, digest, [existing], true);
          if (combined && combined !== existing) {
            moves.push({ tag, digest: combined });
            faultPoint('content.sign.attachment-made');
          }
        }
        if (moves.length === 0) break;
        const replaced = new Set(moves.map((m) => m.tag));
        try {
          await channels.commit(
            repository,
            params.channel,
            (current, currentVersion) => {
              if ((currentVersion?.number ?? 0) !== (version?.number ?? 0))
                throw new ChannelMoved();
              return [...current.filter((t) => !replaced.has(t.tag)), ...moves];
            },
            { kind: 'sign', ref: result.key },
          );
          result.changed.push(repository);
          result.signed += moves.length;
          break;
        } catch (err) {
          if (!(err instanceof ChannelMoved)) throw err;
          if (attempt + 1 >= MAX_ATTEMPTS) {
            throw contentProblem(
              'concurrent-update',
              `too many concurrent changes to ${repository} ${params.channel}; retry`,
            );
          }
        }
      }
      progress.update({ done: i + 1, message: `signed ${i + 1} of ${repos.length} repositories` });
    }
    this.deps.logger.info(
      {
        channel: params.channel,
        key: result.key,
        changed: result.changed.length,
        signed: result.signed,
      },
      'channel signed',
    );
    return result;
  }
}

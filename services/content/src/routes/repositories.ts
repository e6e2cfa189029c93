import type { Router } from 'express';
import { isSignatureTag, signatureTag } from '@flotilla/protocol';
import {
  repositoryListQuerySchema,
  repositoryName,
  repositoryQuerySchema,
} from '../api-schemas.js';
import type { TagEntry } from '../collections.js';
import { diffTags, emptyVersion, tagsToRecord } from '../domain/channels.js';
import type { ContentAppDeps } from '../app.js';
import type { ChannelVersionDoc } from '../collections.js';
import { contentProblem } from '../domain/errors.js';
import { summarizeManifests } from '../domain/manifest-summary.js';

export function mountRepositories(router: Router, deps: ContentAppDeps): void {
  const { channels, auth } = deps;

  router.get('/repositories', auth.require('read'), async (req, res) => {
    const query = repositoryListQuerySchema.parse(req.query);
    if (query.channel) channels.assertChannel(query.channel);
    const { repositories: repos, total } = await channels.findRepositories({
      ...(query.q ? { contains: query.q } : {}),
      ...(query.channel ? { channel: query.channel } : {}),
      ...(query.limit !== undefined ? { limit: query.limit } : {}),
      offset: query.offset,
    });
    res.json({
      total,
      offset: query.offset,
      ...(query.limit !== undefined ? { limit: query.limit } : {}),
      repositories: repos.map((r) => ({
        name: r._id,
        channels: Object.fromEntries(
          channels.channels
            .filter((ch) => r.channels[ch])
            .map((ch) => [ch, r.channels[ch]?.version ?? 0]),
        ),
        ...(r.published ? { published: r.published } : {}),
      })),
    });
  });

  /** Tagged digest → ids of the known keys whose signature of it the channel carries. */
  async function signedBy(tags: TagEntry[]): Promise<Record<string, string[]>> {
    const byTag = new Map(tags.map((t) => [t.tag, t.digest]));
    const out: Record<string, string[]> = {};
    for (const { tag, digest } of tags) {
      if (isSignatureTag(tag) || digest in out) continue;
      out[digest] = await deps.signatures.signers(byTag.get(signatureTag(digest)), digest);
    }
    return out;
  }

  router.get('/repositories/*name', auth.require('read'), async (req, res) => {
    const raw = (req.params as { name: string[] | string }).name;
    const name = repositoryName.parse(Array.isArray(raw) ? raw.join('/') : raw);
    const query = repositoryQuerySchema.parse(req.query);
    if ((query.version !== undefined || query.compare !== undefined) && !query.channel) {
      throw contentProblem('invalid-request', 'version and compare need channel');
    }
    const repo = await channels.repository(name);
    const wanted = query.channel ? [query.channel] : channels.channels;
    if (query.channel) channels.assertChannel(query.channel);
    const views = [];
    for (const ch of wanted) {
      const version =
        query.version !== undefined && query.channel
          ? query.version === 0
            ? emptyVersion(name, ch)
            : await channels.version(name, ch, query.version)
          : ((await channels.current(name, ch)) ?? emptyVersion(name, ch));
      views.push({
        name: ch,
        version: version.number,
        tags: tagsToRecord(version.tags),
        signedBy: await signedBy(version.tags),
        createdAt: version.createdAt,
        cause: presentCause(version.cause),
      });
    }
    const body: Record<string, unknown> = {
      name,
      createdAt: repo.createdAt,
      channels: views,
      ...(repo.published ? { published: repo.published } : {}),
    };
    if (query.details === 'true') {
      body.manifests = await summarizeManifests(
        views.flatMap((v) => Object.values(v.tags)),
        deps.catalog,
        deps.contentStore,
      );
    }
    if (query.channel) {
      body.versions = (await channels.listVersions(name, query.channel)).map((v) => ({
        number: v.number,
        createdAt: v.createdAt,
        cause: presentCause(v.cause),
        tags: v.tags.length,
      }));
      if (query.compare !== undefined) {
        const base =
          query.compare === 0
            ? emptyVersion(name, query.channel)
            : await channels.version(name, query.channel, query.compare);
        const view = views[0];
        const target = view
          ? Object.entries(view.tags).map(([tag, digest]) => ({ tag, digest }))
          : [];
        body.diff = { from: base.number, to: view?.version ?? 0, ...diffTags(base.tags, target) };
      }
    }
    res.json(body);
  });
}

/** A version's cause as the API shows it: the audit record itself is served by /promotions. */
function presentCause(cause: ChannelVersionDoc['cause']): { kind: string; ref?: string } {
  return cause.ref ? { kind: cause.kind, ref: cause.ref } : { kind: cause.kind };
}

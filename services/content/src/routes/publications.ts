import type { Router } from 'express';
import { z } from 'zod';
import { jsonBody } from '@flotilla/kit';
import { publicationQuerySchema, publicationRequestSchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { contentProblem } from '../domain/errors.js';
import { presentPublication, presentPublicationDetail, presentTask } from './present.js';

/** Digests of `newBlobs` answered per page unless `limit` says otherwise. */
const NEW_BLOBS_PAGE = 1000;
const publicationNumber = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export function mountPublications(router: Router, deps: ContentAppDeps): void {
  router.post('/publications', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = publicationRequestSchema.parse(req.body ?? {});
    const channel = body.channel ?? 'stable';
    deps.channels.assertChannel(channel);
    if (body.repositories) {
      const known = new Set((await deps.channels.listRepositories()).map((r) => r._id));
      const unknown = body.repositories.filter((r) => !known.has(r));
      if (unknown.length > 0)
        throw contentProblem('unknown-repository', `unknown repositories: ${unknown.join(', ')}`);
    }
    const task = await deps.tasks.submitPublish({
      channel,
      ...(body.repositories ? { repositories: body.repositories } : {}),
    });
    res
      .status(202)
      .location(`/api/v1/tasks/${task._id}`)
      .json({ task: presentTask(task) });
  });

  router.get('/publications', deps.auth.require('read'), async (_req, res) => {
    const list = await deps.publisher.list();
    res.json({ publications: list.map(presentPublication) });
  });

  router.get('/publications/:n', deps.auth.require('read'), async (req, res) => {
    const n = publicationNumber.parse(req.params.n);
    const query = publicationQuerySchema.parse(req.query);
    const limit = query.limit ?? NEW_BLOBS_PAGE;
    const detail = await deps.publisher.detail(n, {
      limit,
      ...(query.after ? { after: query.after } : {}),
    });
    if (detail.nextAfter) {
      const next = new URLSearchParams({ after: detail.nextAfter, limit: String(limit) });
      res.setHeader('Link', `</api/v1/publications/${n}?${next.toString()}>; rel="next"`);
    }
    res.json(presentPublicationDetail(detail));
  });
}

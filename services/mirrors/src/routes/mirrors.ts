import { faultPoint, jsonBody, problems } from '@flotilla/kit';
import { DuplicateKeyError } from '@flotilla/store';
import { Router } from 'express';
import { z } from 'zod';
import type { Crawler } from '../crawler/crawler.js';
import {
  mirrorCreateSchema,
  mirrorPatchSchema,
  toView,
  type MirrorDocument,
} from '../mirrors/model.js';
import type { CrawlLog, MirrorRepository } from '../mirrors/repository.js';
import type { RedirectStatisticsSummary } from '@flotilla/protocol';

/**
 * The admin API, `/api/v1/mirrors` (the caller mounts it behind the bearer token):
 *
 *   GET    /api/v1/mirrors                 list
 *   POST   /api/v1/mirrors                 register (201)
 *   GET    /api/v1/mirrors/:id             one mirror
 *   PATCH  /api/v1/mirrors/:id             change declared fields
 *   DELETE /api/v1/mirrors/:id             remove it and its crawl log (204)
 *   POST   /api/v1/mirrors/:id/crawl       crawl now; answers the crawl record
 *   GET    /api/v1/mirrors/:id/crawls      the crawl log, newest first (?limit=, default 20)
 *   GET    /api/v1/statistics              redirect counters
 */
export interface MirrorsRouteDeps {
  repository: MirrorRepository;
  crawlLog: CrawlLog;
  crawler: Crawler;
  /** The redirectors' counts (see statistics.ts). */
  statistics: () => Promise<RedirectStatisticsSummary>;
  currentPublication: () => number | null;
  /** After any change to the mirrors: rebuild the selection snapshot. */
  changed: () => Promise<void>;
  /** Throws StorageFullError (507) while the volume is below its reserve. */
  ensureWritable?: () => Promise<void>;
}

const idSchema = z.string().min(1).max(100);
const limitSchema = z.coerce.number().int().min(1).max(1000).default(20);

export function mirrorsRouter(deps: MirrorsRouteDeps): Router {
  const router = Router();
  const view = (doc: MirrorDocument) => toView(doc, deps.currentPublication());
  const load = async (rawId: string): Promise<MirrorDocument> => {
    const id = idSchema.parse(rawId);
    const doc = await deps.repository.get(id);
    if (!doc) throw problems.notFound(`no mirror with id ${id}`);
    return doc;
  };
  const conflictOnDuplicate = (error: unknown): never => {
    if (
      error instanceof DuplicateKeyError ||
      (error instanceof Error && error.name === 'DuplicateKeyError')
    ) {
      throw problems.conflict('a mirror with this name exists');
    }
    throw error;
  };

  router.get('/api/v1/mirrors', async (_req, res) => {
    const mirrors = await deps.repository.list();
    res.json(mirrors.map(view));
  });

  router.post('/api/v1/mirrors', jsonBody('256kb'), async (req, res) => {
    const input = mirrorCreateSchema.parse(req.body);
    await deps.ensureWritable?.();
    const doc = await deps.repository.create(input).catch(conflictOnDuplicate);
    faultPoint('mirrors.change.created');
    await deps.changed();
    req.log.info({ mirror: doc.name, id: doc._id }, 'mirror registered');
    res.status(201).location(`/api/v1/mirrors/${doc._id}`).json(view(doc));
  });

  router.get('/api/v1/mirrors/:id', async (req, res) => {
    res.json(view(await load(String(req.params.id))));
  });

  router.patch('/api/v1/mirrors/:id', jsonBody('256kb'), async (req, res) => {
    const existing = await load(String(req.params.id));
    const patch = mirrorPatchSchema.parse(req.body);
    await deps.ensureWritable?.();
    const doc = await deps.repository.update(existing._id, patch).catch(conflictOnDuplicate);
    if (!doc) throw problems.notFound(`no mirror with id ${existing._id}`);
    await deps.changed();
    req.log.info({ mirror: doc.name, id: doc._id, fields: Object.keys(patch) }, 'mirror updated');
    res.json(view(doc));
  });

  router.delete('/api/v1/mirrors/:id', async (req, res) => {
    const existing = await load(String(req.params.id));
    await deps.repository.delete(existing._id);
    faultPoint('mirrors.change.deleted');
    await deps.crawlLog.deleteForMirror(existing._id);
    await deps.changed();
    req.log.info({ mirror: existing.name, id: existing._id }, 'mirror removed');
    res.status(204).end();
  });

  router.post('/api/v1/mirrors/:id/crawl', async (req, res) => {
    const existing = await load(String(req.params.id));
    await deps.ensureWritable?.();
    const record = await deps.crawler.crawlMirror(existing._id);
    if (!record) throw problems.notFound(`no mirror with id ${existing._id}`);
    const doc = await deps.repository.get(existing._id);
    res.json({ crawl: record, mirror: doc ? view(doc) : null });
  });

  router.get('/api/v1/mirrors/:id/crawls', async (req, res) => {
    const existing = await load(String(req.params.id));
    const limit = limitSchema.parse(req.query.limit);
    res.json(await deps.crawlLog.forMirror(existing._id, limit));
  });

  router.get('/api/v1/statistics', async (_req, res) => {
    res.json(await deps.statistics());
  });

  return router;
}

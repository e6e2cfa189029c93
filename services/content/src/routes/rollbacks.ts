import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import { rollbackRequestSchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { principalOf } from '../auth.js';
import { tagsToRecord } from '../domain/channels.js';
import { presentPromotion } from './present.js';

export function mountRollbacks(router: Router, deps: ContentAppDeps): void {
  router.post('/rollbacks', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = rollbackRequestSchema.parse(req.body);
    const result = await deps.promotions.rollback({
      ...body,
      actor: principalOf(res.locals).actor,
    });
    res.status(201).json({
      promotion: presentPromotion(result.promotion),
      version: result.version.number,
      changed: result.changed,
      tags: tagsToRecord(result.version.tags),
    });
  });
}

import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import { promotionRequestSchema, promotionsQuerySchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { principalOf } from '../auth.js';
import { tagsToRecord } from '../domain/channels.js';
import { presentPromotion } from './present.js';

export function mountPromotions(router: Router, deps: ContentAppDeps): void {
  router.post('/promotions', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = promotionRequestSchema.parse(req.body);
    const result = await deps.promotions.promote({ ...body, actor: principalOf(res.locals).actor });
    res.status(201).json({
      promotion: presentPromotion(result.promotion),
      version: result.version.number,
      changed: result.changed,
      tags: tagsToRecord(result.version.tags),
    });
  });

  router.get('/promotions', deps.auth.require('read'), async (req, res) => {
    const query = promotionsQuerySchema.parse(req.query);
    const trail = await deps.promotions.trail(query);
    res.json({ promotions: trail.map(presentPromotion) });
  });
}

import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import type { ContentAppDeps } from '../app.js';
import { contentProblem } from '../domain/errors.js';
import type { PromotionPlan } from '../domain/promotions.js';
import {
  bodhiPayloadSchema,
  rememberDelivery,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifySignedDelivery,
} from '../hooks/bodhi.js';
import { distributionEnvelopeSchema, pushedRepositories } from '../hooks/distribution.js';
import { presentPromotion, presentTask } from './present.js';

const HOOK_BODY_LIMIT = '1mb';

export function mountHooks(router: Router, deps: ContentAppDeps): void {
  const { config } = deps;

  /**
   * Bodhi: authenticated by HMAC over the raw body, not by bearer token. Every build is planned
   * (validated, policy checked) before any is applied, so a refused build changes nothing.
   */
  router.post('/hooks/bodhi', jsonBody(HOOK_BODY_LIMIT, { rawBody: true }), async (req, res) => {
    if (!config.webhookSecret)
      throw contentProblem('webhook-disabled', 'FLOTILLA_WEBHOOK_SECRET is not set');
    const key = verifySignedDelivery({
      secret: config.webhookSecret,
      rawBody: req.rawBody ?? Buffer.alloc(0),
      signature: req.header(SIGNATURE_HEADER),
      timestamp: req.header(TIMESTAMP_HEADER),
      maxSkewSeconds: config.webhookMaxSkewSeconds,
    });
    const payload = bodhiPayloadSchema.parse(req.body);
    const to = payload.status;
    deps.channels.assertChannel(to);
    const index = config.channels.indexOf(to);
    const from = config.channels[index - 1];
    if (!from) throw contentProblem('invalid-request', `channel ${to} has no channel before it`);
    const actor = 'bodhi';
    const reason = `bodhi update ${payload.update} → ${to}`;
    const plans: PromotionPlan[] = [];
    for (const build of payload.builds) {
      plans.push(
        await deps.promotions.plan({
          repository: build.repository,
          from,
          to,
          ...(build.tag ? { tags: [build.tag] } : { digest: build.digest }),
          actor,
          reason,
        }),
      );
    }
    await rememberDelivery(deps.c, key);
    const promotions = [];
    for (const plan of plans) promotions.push(await deps.promotions.apply(plan));
    const task = await deps.tasks.submitPublish({ channel: to });
    res.status(202).json({
      task: presentTask(task),
      promotions: promotions.map((p) => ({
        ...presentPromotion(p.promotion),
        version: p.version.number,
      })),
    });
  });

  /** Docker Distribution's notifications (endpoint configured with an Authorization header). */
  router.post(
    '/hooks/registry',
    deps.auth.require('admin'),
    jsonBody(HOOK_BODY_LIMIT),
    async (req, res) => {
      const envelope = distributionEnvelopeSchema.parse(req.body);
      const tasks = [];
      for (const repository of pushedRepositories(envelope)) {
        const { task, coalesced } = await deps.tasks.submitSync({ repository }, true);
        tasks.push({ ...presentTask(task), coalesced });
      }
      res.status(202).json({ tasks });
    },
  );
}

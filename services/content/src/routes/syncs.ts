import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import { syncRequestSchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { presentTask } from './present.js';

export function mountSyncs(router: Router, deps: ContentAppDeps): void {
  router.post('/syncs', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = syncRequestSchema.parse(req.body);
    const { task } = await deps.tasks.submitSync(body);
    res
      .status(202)
      .location(`/api/v1/tasks/${task._id}`)
      .json({ task: presentTask(task) });
  });
}

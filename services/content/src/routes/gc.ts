import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import { gcRequestSchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { presentTask } from './present.js';

export function mountGc(router: Router, deps: ContentAppDeps): void {
  router.post('/gc', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = gcRequestSchema.parse(req.body ?? {});
    const { task } = await deps.tasks.submitGc(body);
    res
      .status(202)
      .location(`/api/v1/tasks/${task._id}`)
      .json({ task: presentTask(task) });
  });
}

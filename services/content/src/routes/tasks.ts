import type { Router } from 'express';
import { z } from 'zod';
import { tasksQuerySchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { presentTask } from './present.js';

const taskId = z.string().regex(/^[0-9a-f-]{36}$/, 'invalid task id');

export function mountTasks(router: Router, deps: ContentAppDeps): void {
  router.get('/tasks', deps.auth.require('read'), async (req, res) => {
    const query = tasksQuerySchema.parse(req.query);
    res.json({ tasks: (await deps.queue.list(query)).map(presentTask) });
  });

  router.get('/tasks/:id', deps.auth.require('read'), async (req, res) => {
    res.json(presentTask(await deps.queue.get(taskId.parse(req.params.id))));
  });

  router.delete('/tasks/:id', deps.auth.require('admin'), async (req, res) => {
    const id = taskId.parse(req.params.id);
    const task = await deps.queue.cancel(id);
    deps.worker.abortLocal(id);
    res.status(task.state === 'canceled' ? 200 : 202).json(presentTask(task));
  });
}

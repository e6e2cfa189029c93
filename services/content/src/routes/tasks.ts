import type { Router } from 'express';
import { z } from 'zod';
import { tasksQuerySchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { presentTask } from './present.js';

const taskId = z.string().regex(/^[0-9a-f-]{36}$/, 'invalid task id');
/** `?wait=<seconds>`: answer once the task is final, or after this long (a long poll). */
const taskWait = z.object({ wait: z.coerce.number().min(0).max(60).optional() });

export function mountTasks(router: Router, deps: ContentAppDeps): void {
  router.get('/tasks', deps.auth.require('read'), async (req, res) => {
    const query = tasksQuerySchema.parse(req.query);
    res.json({ tasks: (await deps.queue.list(query)).map(presentTask) });
  });

  router.get('/tasks/:id', deps.auth.require('read'), async (req, res) => {
    const id = taskId.parse(req.params.id);
    const { wait } = taskWait.parse(req.query);
    if (!wait) {
      res.json(presentTask(await deps.queue.get(id)));
      return;
    }
    // stop waiting when the client goes away
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const task = await deps.queue.waitFinal(id, wait * 1000, gone.signal);
    if (!gone.signal.aborted) res.json(presentTask(task));
  });

  router.delete('/tasks/:id', deps.auth.require('admin'), async (req, res) => {
    const id = taskId.parse(req.params.id);
    const task = await deps.queue.cancel(id);
    deps.worker.abortLocal(id);
    res.status(task.state === 'canceled' ? 200 : 202).json(presentTask(task));
  });
}

import type { Router } from 'express';
import { jsonBody } from '@flotilla/kit';
import { signRequestSchema } from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { contentProblem } from '../domain/errors.js';
import { presentTask } from './present.js';

/** The signing keys (public halves) and re-signing a channel with the current key. */
export function mountSignatures(router: Router, deps: ContentAppDeps): void {
  router.get('/keys', deps.auth.require('read'), (_req, res) => {
    const { keys } = deps.signatures;
    res.json({
      current: keys.current.id,
      identity: deps.config.signing.identity,
      signingChannels: deps.config.signing.channels,
      keys: [
        { id: keys.current.id, status: 'current', publicKey: keys.current.pem },
        ...keys.retired.map((k) => ({ id: k.id, status: 'retired', publicKey: k.pem })),
      ],
      trusted: [
        ...keys.trusted.map((k) => ({ id: k.id, source: k.source })),
        ...[...keys.trustedByRepository].flatMap(([repository, list]) =>
          list.map((k) => ({ id: k.id, source: k.source, repository })),
        ),
      ],
    });
  });

  router.post('/signatures', deps.auth.require('admin'), jsonBody(), async (req, res) => {
    const body = signRequestSchema.parse(req.body);
    deps.channels.assertChannel(body.channel);
    if (body.repositories) {
      const known = new Set((await deps.channels.listRepositories()).map((r) => r._id));
      const unknown = body.repositories.filter((r) => !known.has(r));
      if (unknown.length > 0)
        throw contentProblem('unknown-repository', `unknown repositories: ${unknown.join(', ')}`);
    }
    const task = await deps.tasks.submitSign(body);
    res
      .status(202)
      .location(`/api/v1/tasks/${task._id}`)
      .json({ task: presentTask(task) });
  });
}

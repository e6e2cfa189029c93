import { HttpProblem } from '@flotilla/kit';

/**
 * The content API's error catalog: each domain failure has one problem type and one status;
 * the kit's error mapper serialises them as RFC 9457 problem JSON.
 */
const PROBLEM_BASE = 'https://flotilla.dev/problems/content/';

const catalog = {
  'unknown-repository': { status: 404, title: 'Unknown repository' },
  'unknown-channel': { status: 400, title: 'Unknown channel' },
  'unknown-tag': { status: 404, title: 'Unknown tag' },
  'unknown-digest': { status: 404, title: 'Unknown digest' },
  'unknown-version': { status: 404, title: 'Unknown channel version' },
  'unknown-task': { status: 404, title: 'Unknown task' },
  'unknown-publication': { status: 404, title: 'Unknown publication' },
  'invalid-request': { status: 400, title: 'Invalid request' },
  'policy-refused': { status: 409, title: 'Promotion refused by policy' },
  'signature-required': { status: 409, title: 'Promotion refused: no trusted signature' },
  'task-finished': { status: 409, title: 'Task already finished' },
  'concurrent-update': { status: 409, title: 'Concurrent update' },
  'webhook-unauthenticated': { status: 401, title: 'Webhook signature invalid' },
  'webhook-replayed': { status: 409, title: 'Webhook delivery replayed' },
  'webhook-disabled': { status: 503, title: 'Webhook secret not configured' },
} as const;

export type ContentProblemCode = keyof typeof catalog;

export function contentProblem(
  code: ContentProblemCode,
  detail: string,
  extensions?: Record<string, unknown>,
): HttpProblem {
  const entry = catalog[code];
  return new HttpProblem({
    status: entry.status,
    title: entry.title,
    detail,
    type: PROBLEM_BASE + code,
    extensions: { code, ...extensions },
  });
}

import {
  content,
  ProblemError,
  type Publication,
  type PublicationDetail,
  type Task,
} from './api.js';
import {
  digestCode,
  field,
  formatBytes,
  formatTime,
  h,
  replace,
  select,
  scrollArea,
} from './dom.js';
import { navigate, notice, problemBox, withBusy, type PageContext } from './shell.js';

const FINAL = new Set(['completed', 'failed', 'canceled']);

/** Publications and what each added. */
export async function renderPublications(ctx: PageContext): Promise<void> {
  ctx.title('Publications');
  ctx.main.append(h('h1', {}, 'Publications'), publishForm());
  const { publications } = await content.get<{ publications: Publication[] }>('/publications');
  const newest = [...publications].sort((a, b) => b.number - a.number);
  ctx.main.append(
    newest.length
      ? scrollArea(
          'Publications, newest first',
          h(
            'table',
            {},
            h('caption', { class: 'visually-hidden' }, 'Publications, newest first'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Number', 'Channel', 'State', 'When', 'Repositories written', 'Blobs added'].map(
                  (t) => h('th', { scope: 'col' }, t),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              newest.map((p) =>
                h(
                  'tr',
                  {},
                  h('th', { scope: 'row' }, String(p.number)),
                  h('td', {}, p.channel),
                  h('td', {}, p.state),
                  h('td', {}, formatTime(p.time)),
                  h('td', {}, String(p.repositoryCount ?? 0)),
                  h('td', {}, p.newBlobCount ? publicationDetail(p) : 'none'),
                ),
              ),
            ),
          ),
        )
      : h('p', {}, 'Nothing has been published yet.'),
  );
}

/** What one publication added, fetched when the reader opens it (a release can add thousands). */
function publicationDetail(p: Publication): HTMLElement {
  const body = h('div', {}, 'Loading…');
  const details = h('details', {}, h('summary', {}, `${p.newBlobCount} new`), body);
  let loaded = false;
  details.addEventListener('toggle', () => {
    if (!details.open || loaded) return;
    loaded = true;
    content
      .get<PublicationDetail>(`/publications/${p.number}`)
      .then((detail) => {
        body.replaceChildren(
          h('p', {}, `Repositories: ${detail.repositories.join(', ') || '—'}`),
          h(
            'ul',
            { class: 'plain' },
            detail.newBlobs.map((d) => h('li', {}, digestCode(d))),
          ),
          ...(detail.next ? [h('p', {}, `and more (first ${detail.newBlobs.length} shown)`)] : []),
        );
      })
      .catch((err: unknown) => {
        loaded = false;
        body.replaceChildren(
          h('p', { role: 'alert' }, err instanceof Error ? err.message : String(err)),
        );
      });
  });
  return details;
}

function publishForm(): HTMLElement {
  const channel = select('channel', ['stable', 'testing', 'candidate'], 'stable');
  const submit = h('button', { type: 'submit' }, 'Publish');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card inline', 'aria-label': 'Publish a channel' },
    field('Channel to publish', channel),
    submit,
    out,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void withBusy(submit, out, async () => {
      const { task } = await content.post<{ task: Task }>('/publications', {
        channel: channel.value,
      });
      navigate(`#/tasks/${task.id}`);
      return notice(`Publish task ${task.id} queued.`);
    });
  });
  return form;
}

/** Tasks, newest first, with filters by state and kind. */
export async function renderTasks(ctx: PageContext): Promise<void> {
  ctx.title('Tasks');
  const state = select(
    'state',
    [['', 'any'], 'waiting', 'running', 'completed', 'failed', 'canceled'],
    ctx.query.get('state') ?? '',
  );
  const kind = select(
    'kind',
    [['', 'any'], 'sync', 'publish', 'retention'],
    ctx.query.get('kind') ?? '',
  );
  const filters = h(
    'form',
    { class: 'inline' },
    field('State', state),
    field('Kind', kind),
    h('button', { type: 'submit' }, 'Filter'),
  );
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    if (state.value) params.set('state', state.value);
    if (kind.value) params.set('kind', kind.value);
    navigate(`#/tasks${params.size ? `?${params}` : ''}`);
  });
  ctx.main.append(h('h1', {}, 'Tasks'), publishForm(), filters);
  const params = new URLSearchParams({ limit: '100' });
  if (state.value) params.set('state', state.value);
  if (kind.value) params.set('kind', kind.value);
  const { tasks } = await content.get<{ tasks: Task[] }>(`/tasks?${params}`);
  ctx.main.append(
    tasks.length
      ? scrollArea(
          'Tasks, newest first',
          h(
            'table',
            {},
            h('caption', { class: 'visually-hidden' }, 'Tasks, newest first'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Task', 'Kind', 'Subject', 'State', 'Created', 'Finished'].map((t) =>
                  h('th', { scope: 'col' }, t),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              tasks.map((t) =>
                h(
                  'tr',
                  {},
                  h(
                    'th',
                    { scope: 'row' },
                    h('a', { href: `#/tasks/${t.id}` }, h('code', {}, t.id.slice(0, 8))),
                  ),
                  h('td', {}, t.kind),
                  h('td', {}, t.repository ?? t.channel ?? '—'),
                  h('td', {}, h('span', { class: `state state-${t.state}` }, t.state)),
                  h('td', {}, formatTime(t.createdAt)),
                  h('td', {}, formatTime(t.finishedAt)),
                ),
              ),
            ),
          ),
        )
      : h('p', {}, 'No tasks.'),
  );
}

function progressText(t: Task): string {
  const p = t.progress;
  const parts: string[] = [];
  if (p.total !== undefined) parts.push(`${p.done ?? 0} of ${p.total}`);
  if (p.bytesTotal !== undefined)
    parts.push(`${formatBytes(p.bytesDone ?? 0)} of ${formatBytes(p.bytesTotal)}`);
  if (p.message) parts.push(p.message);
  return parts.join(' · ') || (t.state === 'waiting' ? 'waiting for a worker' : '—');
}

/**
 * One task, live: the page asks with the API's long poll (`?wait=2`), which answers the moment
 * the task ends or after two seconds with its current progress, until the task is final.
 */
export async function renderTask(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? '';
  ctx.title(`Task ${id.slice(0, 8)}`);
  const state = h('span', { class: 'state', id: 'task-state' });
  const bar = h('progress', { id: 'task-progress', max: 1 });
  const progressLine = h('span', {});
  const facts = h('dl', { class: 'facts' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel task');
  const cancelOut = h('div', { 'aria-live': 'polite' });
  ctx.main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/tasks' }, 'Tasks')),
    h('h1', {}, `Task `, h('code', {}, id)),
    h('p', { class: 'status-line', role: 'status' }, 'State: ', state),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'task-progress' }, 'Progress'),
      bar,
      ' ',
      progressLine,
    ),
    facts,
    outcome,
    h('p', {}, cancel),
    cancelOut,
  );
  cancel.addEventListener('click', () => {
    void withBusy(cancel, cancelOut, async () => {
      const task = await content.delete<Task>(`/tasks/${id}`);
      draw(task);
      return notice(
        task.state === 'canceled'
          ? 'Task canceled.'
          : 'Cancel requested; the worker stops at its next step.',
      );
    });
  });

  const draw = (t: Task) => {
    state.textContent = t.state;
    state.className = `state state-${t.state}`;
    const { done, total, bytesDone, bytesTotal } = t.progress;
    if (t.state === 'completed') {
      bar.max = 1;
      bar.value = 1;
    } else if (bytesTotal) {
      bar.max = bytesTotal;
      bar.value = bytesDone ?? 0;
    } else if (total) {
      bar.max = total;
      bar.value = done ?? 0;
    } else bar.removeAttribute('value');
    progressLine.textContent = progressText(t);
    replace(
      facts,
      h('dt', {}, 'Kind'),
      h('dd', {}, t.kind),
      t.repository
        ? [
            h('dt', {}, 'Repository'),
            h('dd', {}, h('a', { href: `#/repositories/${t.repository}` }, t.repository)),
          ]
        : null,
      t.channel ? [h('dt', {}, 'Channel'), h('dd', {}, t.channel)] : null,
      h('dt', {}, 'Created'),
      h('dd', {}, formatTime(t.createdAt)),
      h('dt', {}, 'Started'),
      h('dd', {}, formatTime(t.startedAt)),
      h('dt', {}, 'Finished'),
      h('dd', {}, formatTime(t.finishedAt)),
      h('dt', {}, 'Attempts'),
      h('dd', {}, String(t.attempts)),
    );
    replace(
      outcome,
      t.error
        ? h(
            'div',
            { class: 'problem', role: 'alert' },
            h('p', {}, h('strong', {}, 'Failed: '), t.error.message),
          )
        : null,
      t.result
        ? h(
            'details',
            { open: true },
            h('summary', {}, 'Result'),
            h('pre', {}, JSON.stringify(t.result, null, 2)),
          )
        : null,
    );
    cancel.hidden = FINAL.has(t.state);
  };

  let task = await content.get<Task>(`/tasks/${id}`);
  draw(task);
  // Bounded: a task page left open stops asking after an hour.
  for (let round = 0; round < 1800 && ctx.alive() && !FINAL.has(task.state); round += 1) {
    try {
      task = await content.get<Task>(`/tasks/${id}?wait=2`);
      if (ctx.alive()) draw(task);
    } catch (err) {
      if (!ctx.alive()) return;
      ctx.main.append(problemBox(err));
      if (err instanceof ProblemError && err.problem.status !== 0) return;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

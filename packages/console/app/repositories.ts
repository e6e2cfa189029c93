import {
  content,
  type ManifestSummary,
  type Promotion,
  type RepositoryDetail,
  type RepositoryPage,
} from './api.js';
import {
  digestCode,
  field,
  formatBytes,
  formatTime,
  h,
  replace,
  select,
  type Child,
  scrollArea,
} from './dom.js';
import { notice, problemBox, withBusy, type PageContext } from './shell.js';

const PAGE_SIZE = 50;

/** Repositories: a server-side search and pages of 50, so a thousand stay quick. */
export async function renderRepositories(ctx: PageContext): Promise<void> {
  ctx.title('Repositories');
  let q = ctx.query.get('q') ?? '';
  let page = Math.max(1, Number(ctx.query.get('page') ?? '1') || 1);
  const search = h('input', { type: 'search', name: 'q', value: q, autocomplete: 'off' });
  const results = h('div', { 'aria-live': 'polite' });
  ctx.main.append(
    h('h1', {}, 'Repositories'),
    h(
      'form',
      { role: 'search', class: 'inline', onsubmit: (e: Event) => e.preventDefault() },
      field('Search repositories', search, 'Part of a name, e.g. httpd'),
    ),
    results,
  );

  const load = async () => {
    const params = new URLSearchParams({
      limit: String(PAGE_SIZE),
      offset: String((page - 1) * PAGE_SIZE),
    });
    if (q) params.set('q', q);
    const answer = await content.get<RepositoryPage>(`/repositories?${params}`);
    if (!ctx.alive()) return;
    const total = answer.total ?? answer.repositories.length;
    const first = total === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
    const last = (page - 1) * PAGE_SIZE + answer.repositories.length;
    const prev = h('button', { type: 'button', disabled: page <= 1 }, 'Previous page');
    const next = h('button', { type: 'button', disabled: last >= total }, 'Next page');
    prev.addEventListener('click', () => go(page - 1));
    next.addEventListener('click', () => go(page + 1));
    replace(
      results,
      h(
        'p',
        { class: 'count' },
        total === 0
          ? q
            ? `No repository matches “${q}”.`
            : 'No repositories yet.'
          : `Showing ${first}–${last} of ${total}`,
      ),
      answer.repositories.length
        ? scrollArea(
            'Repositories and the current version of each channel',
            h(
              'table',
              {},
              h(
                'caption',
                { class: 'visually-hidden' },
                'Repositories and the current version of each channel',
              ),
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  h('th', { scope: 'col' }, 'Repository'),
                  h('th', { scope: 'col' }, 'Channels (version)'),
                  h('th', { scope: 'col' }, 'Published'),
                ),
              ),
              h(
                'tbody',
                {},
                answer.repositories.map((r) =>
                  h(
                    'tr',
                    {},
                    h('th', { scope: 'row' }, h('a', { href: `#/repositories/${r.name}` }, r.name)),
                    h(
                      'td',
                      {},
                      Object.entries(r.channels)
                        .map(([ch, v]) => `${ch} ${v}`)
                        .join(' · ') || '—',
                    ),
                    h(
                      'td',
                      {},
                      r.published
                        ? `${r.published.channel} v${r.published.version} in publication ${r.published.publication}`
                        : '—',
                    ),
                  ),
                ),
              ),
            ),
          )
        : null,
      h('div', { class: 'pager' }, prev, next),
    );
  };
  const go = (target: number) => {
    page = target;
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    if (page > 1) params.set('page', String(page));
    history.replaceState(null, '', `#/repositories${params.size ? `?${params}` : ''}`);
    load().catch((err) => replace(results, problemBox(err)));
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      q = search.value.trim();
      go(1);
    }, 200);
  });
  await load().catch((err) => replace(results, problemBox(err)));
}

/** Signature attachments (`sha256-<hex>.sig`) show as the Signature column of what they sign. */
const SIGNATURE_TAG = /^sha256-[0-9a-f]{64}\.sig$/;

function manifestCells(
  digest: string,
  m: ManifestSummary | undefined,
  signers: string[] | undefined,
): Child[] {
  return [
    h('td', {}, digestCode(digest)),
    h(
      'td',
      {},
      m ? (m.platforms.length ? m.platforms.join(', ') : m.kind === 'index' ? 'index' : '—') : '—',
    ),
    h('td', { class: 'num' }, formatBytes(m?.size)),
    h('td', {}, formatTime(m?.created ?? m?.createdAt)),
    h(
      'td',
      {},
      signers === undefined
        ? '—'
        : signers.length > 0
          ? `signed by ${signers.join(', ')}`
          : 'unsigned',
    ),
  ];
}

/** One repository: its channels side by side, then promote, compare and roll back. */
export async function renderRepository(ctx: PageContext): Promise<void> {
  const name = ctx.params[0] ?? '';
  ctx.title(name);
  const columns = h('div', { class: 'channels' });
  const heading = h('h1', {}, name);
  ctx.main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/repositories' }, 'Repositories')),
    heading,
    columns,
  );

  let detail = await content.get<RepositoryDetail>(`/repositories/${encodeURI(name)}?details=true`);
  const channelNames = detail.channels.map((c) => c.name);

  const drawColumns = () => {
    replace(
      columns,
      detail.channels.map((ch) => {
        const tags = Object.entries(ch.tags)
          .filter(([tag]) => !SIGNATURE_TAG.test(tag))
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return h(
          'section',
          { class: 'channel', 'aria-labelledby': `ch-${ch.name}` },
          h(
            'h2',
            { id: `ch-${ch.name}` },
            ch.name,
            h('span', { class: 'version' }, ` version ${ch.version}`),
          ),
          h(
            'p',
            { class: 'muted' },
            ch.cause && ch.version > 0
              ? `${ch.cause.kind}${ch.createdAt ? `, ${formatTime(ch.createdAt)}` : ''}`
              : 'never had content',
          ),
          tags.length
            ? scrollArea(
                `Tags in ${ch.name}`,
                h(
                  'table',
                  {},
                  h('caption', { class: 'visually-hidden' }, `Tags in ${ch.name}`),
                  h(
                    'thead',
                    {},
                    h(
                      'tr',
                      {},
                      ['Tag', 'Digest', 'Platforms', 'Size', 'Created', 'Signature'].map((t) =>
                        h('th', { scope: 'col' }, t),
                      ),
                    ),
                  ),
                  h(
                    'tbody',
                    {},
                    tags.map(([tag, digest]) =>
                      h(
                        'tr',
                        {},
                        h('th', { scope: 'row' }, tag),
                        manifestCells(digest, detail.manifests?.[digest], ch.signedBy?.[digest]),
                      ),
                    ),
                  ),
                ),
              )
            : h('p', {}, 'No tags.'),
        );
      }),
    );
  };
  drawColumns();
  const reload = async () => {
    detail = await content.get<RepositoryDetail>(`/repositories/${encodeURI(name)}?details=true`);
    drawColumns();
  };

  ctx.main.append(
    promoteForm(name, channelNames, detail, reload),
    compareForm(name, channelNames),
    rollbackForm(name, channelNames, reload),
  );
}

function promoteForm(
  name: string,
  channels: string[],
  detail: RepositoryDetail,
  reload: () => Promise<void>,
): HTMLElement {
  const from = select('from', channels, channels[0]);
  const to = select('to', channels, channels[1] ?? channels[0]);
  const allTags = [...new Set(detail.channels.flatMap((c) => Object.keys(c.tags)))].sort();
  const tags = h('input', {
    name: 'tags',
    required: true,
    value: allTags.join(', '),
    autocomplete: 'off',
  });
  const reason = h('textarea', { name: 'reason', required: true, rows: 2, maxlength: 1000 });
  const submit = h('button', { type: 'submit' }, 'Promote');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'promote-title' },
    h('h2', { id: 'promote-title' }, 'Promote'),
    h('div', { class: 'row' }, field('From channel', from), field('To channel', to)),
    field('Tags', tags, 'Comma-separated tags of the source channel'),
    field('Reason', reason, 'Recorded in the audit trail, e.g. the update id'),
    submit,
    out,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const list = tags.value.split(/[\s,]+/).filter(Boolean);
    void withBusy(submit, out, async () => {
      const result = await content.post<{ version: number; changed: boolean }>('/promotions', {
        repository: name,
        tags: list,
        from: from.value,
        to: to.value,
        reason: reason.value.trim(),
      });
      await reload();
      return notice(
        result.changed
          ? `Promoted ${list.join(', ')} from ${from.value} to ${to.value}: ${to.value} is now version ${result.version}.`
          : `${to.value} already had ${list.join(', ')} (version ${result.version} unchanged).`,
      );
    });
  });
  return form;
}

function compareForm(name: string, channels: string[]): HTMLElement {
  const channel = select('channel', channels, channels[0]);
  const base = h('input', {
    type: 'number',
    name: 'from',
    min: 0,
    required: true,
    value: '0',
    inputmode: 'numeric',
  });
  const target = h('input', { type: 'number', name: 'to', min: 0, inputmode: 'numeric' });
  const submit = h('button', { type: 'submit' }, 'Compare');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'compare-title' },
    h('h2', { id: 'compare-title' }, 'Compare two versions of a channel'),
    h(
      'div',
      { class: 'row' },
      field('Channel', channel),
      field('From version', base),
      field('To version', target, 'Empty: the current version'),
    ),
    submit,
    out,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void withBusy(submit, out, async () => {
      const params = new URLSearchParams({ channel: channel.value, compare: base.value || '0' });
      if (target.value) params.set('version', target.value);
      const answer = await content.get<RepositoryDetail>(
        `/repositories/${encodeURI(name)}?${params}`,
      );
      const diff = answer.diff;
      if (!diff) return notice('No difference reported.');
      const rows = [
        ...diff.added.map((t) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, t.tag),
            h('td', {}, 'added'),
            h('td', {}, '—'),
            h('td', {}, digestCode(t.digest)),
          ),
        ),
        ...diff.removed.map((t) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, t.tag),
            h('td', {}, 'removed'),
            h('td', {}, digestCode(t.digest)),
            h('td', {}, '—'),
          ),
        ),
        ...diff.changed.map((t) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, t.tag),
            h('td', {}, 'changed'),
            h('td', {}, digestCode(t.from)),
            h('td', {}, digestCode(t.to)),
          ),
        ),
      ];
      return h(
        'div',
        {},
        h('p', {}, `${channel.value}: version ${diff.from} → ${diff.to}`),
        rows.length
          ? scrollArea(
              'Differences',
              h(
                'table',
                {},
                h('caption', { class: 'visually-hidden' }, 'Differences'),
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Tag', 'Change', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)),
                  ),
                ),
                h('tbody', {}, rows),
              ),
            )
          : h('p', {}, 'The two versions hold the same tags.'),
      );
    });
  });
  return form;
}

function rollbackForm(name: string, channels: string[], reload: () => Promise<void>): HTMLElement {
  const channel = select('channel', channels, channels[channels.length - 1]);
  const version = h('input', {
    type: 'number',
    name: 'version',
    min: 1,
    required: true,
    inputmode: 'numeric',
  });
  const reason = h('textarea', { name: 'reason', required: true, rows: 2, maxlength: 1000 });
  const submit = h('button', { type: 'submit' }, 'Roll back');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'rollback-title' },
    h('h2', { id: 'rollback-title' }, 'Roll back'),
    h(
      'div',
      { class: 'row' },
      field('Channel', channel),
      field('To the content of version', version),
    ),
    field('Reason', reason),
    submit,
    out,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void withBusy(submit, out, async () => {
      const result = await content.post<{ version: number }>('/rollbacks', {
        repository: name,
        channel: channel.value,
        version: Number(version.value),
        reason: reason.value.trim(),
      });
      await reload();
      return notice(
        `${channel.value} is now version ${result.version}, with the content of version ${version.value}. Publish to serve it.`,
      );
    });
  });
  return form;
}

/** The audit trail: who moved what, when and why. */
export async function renderPromotions(ctx: PageContext): Promise<void> {
  ctx.title('Promotions');
  const repository = ctx.query.get('repository') ?? '';
  const params = new URLSearchParams({ limit: '200' });
  if (repository) params.set('repository', repository);
  const filter = h('input', { name: 'repository', value: repository, autocomplete: 'off' });
  const form = h(
    'form',
    { class: 'inline' },
    field('Repository', filter),
    h('button', { type: 'submit' }, 'Filter'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = filter.value.trim()
      ? `#/promotions?repository=${encodeURIComponent(filter.value.trim())}`
      : '#/promotions';
  });
  ctx.main.append(h('h1', {}, 'Promotions audit'), form);
  const { promotions } = await content.get<{ promotions: Promotion[] }>(`/promotions?${params}`);
  ctx.main.append(
    promotions.length
      ? scrollArea(
          'Channel changes, newest first',
          h(
            'table',
            {},
            h('caption', { class: 'visually-hidden' }, 'Channel changes, newest first'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['When', 'What', 'Repository', 'Channels', 'Tags', 'Versions', 'Who', 'Why'].map(
                  (t) => h('th', { scope: 'col' }, t),
                ),
              ),
            ),
            h(
              'tbody',
              {},
              promotions.map((p) =>
                h(
                  'tr',
                  {},
                  h('td', {}, formatTime(p.time)),
                  h('td', {}, p.kind),
                  h('td', {}, h('a', { href: `#/repositories/${p.repository}` }, p.repository)),
                  h('td', {}, p.from ? `${p.from} → ${p.to}` : p.to),
                  h('td', {}, p.tags.join(', ') || '—'),
                  h('td', {}, `${p.before.version} → ${p.after.version}`),
                  h('td', {}, p.actor),
                  h('td', {}, p.reason ?? '—'),
                ),
              ),
            ),
          ),
        )
      : h('p', {}, 'No promotions yet.'),
  );
}

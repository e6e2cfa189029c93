import { mirrors, type Mirror, type Statistics } from './api.js';
import { field, formatTime, h, replace, svg, type Child, scrollArea } from './dom.js';
import { navigate, notice, withBusy, type PageContext } from './shell.js';

function families(m: Mirror): string {
  const declared = m.families ? `declared ${m.families.join(' + ')}` : '';
  const learned = m.learnedFamilies.length
    ? `seen on ${m.learnedFamilies.join(' + ')}`
    : 'not seen yet';
  return [declared, learned].filter(Boolean).join('; ');
}

function stateOf(m: Mirror): string {
  if (!m.enabled) return 'disabled by admin';
  if (m.autoDisabled) return `auto-disabled after ${m.consecutiveFailures} failed crawls`;
  return m.upToDate ? 'up to date' : m.publication === null ? 'not verified yet' : 'behind';
}

function lastCrawl(m: Mirror): Child {
  if (!m.lastCrawledAt) return 'never';
  return [
    `${formatTime(m.lastCrawledAt)}: ${m.lastCrawlStatus ?? '—'}`,
    m.lastCrawlDurationMs !== null ? ` in ${m.lastCrawlDurationMs} ms` : '',
    m.lastCrawlError ? h('div', { class: 'muted' }, m.lastCrawlError) : null,
  ];
}

/** Every mirror's state, with crawl and enable/disable at hand, and the form to add one. */
export async function renderMirrors(ctx: PageContext): Promise<void> {
  ctx.title('Mirrors');
  const list = h('div', { 'aria-live': 'polite' });
  const actionOut = h('div', { 'aria-live': 'polite' });
  ctx.main.append(
    h('h1', {}, 'Mirrors'),
    actionOut,
    list,
    mirrorForm(
      undefined,
      (m) => notice(`Mirror ${m.name} registered.`),
      () => draw(),
    ),
  );

  const draw = async () => {
    const all = await mirrors.get<Mirror[]>('/mirrors');
    if (!ctx.alive()) return;
    if (all.length === 0) {
      replace(list, h('p', {}, 'No mirrors registered.'));
      return;
    }
    replace(
      list,
      scrollArea(
        'Registered mirrors',
        h(
          'table',
          {},
          h('caption', { class: 'visually-hidden' }, 'Registered mirrors'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              [
                'Mirror',
                'State',
                'Publication (verified / claimed)',
                'Last crawl',
                'Failures',
                'Address families',
                'Actions',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            all.map((m) => {
              const crawl = h(
                'button',
                { type: 'button' },
                'Crawl',
                h('span', { class: 'visually-hidden' }, ` ${m.name}`),
              );
              const toggle = h(
                'button',
                { type: 'button' },
                m.enabled ? 'Disable' : 'Enable',
                h('span', { class: 'visually-hidden' }, ` ${m.name}`),
              );
              crawl.addEventListener('click', () => {
                void withBusy(crawl, actionOut, async () => {
                  const answer = await mirrors.post<{
                    crawl: { status?: string; publication?: number | null; error?: string | null };
                  }>(`/mirrors/${m.id}/crawl`);
                  await draw();
                  return notice(
                    `Crawled ${m.name}: ${answer.crawl.status ?? 'done'}${answer.crawl.error ? ` (${answer.crawl.error})` : ''}.`,
                  );
                });
              });
              toggle.addEventListener('click', () => {
                void withBusy(toggle, actionOut, async () => {
                  await mirrors.patch<Mirror>(`/mirrors/${m.id}`, { enabled: !m.enabled });
                  await draw();
                  return notice(`${m.name} ${m.enabled ? 'disabled' : 'enabled'}.`);
                });
              });
              return h(
                'tr',
                {},
                h(
                  'th',
                  { scope: 'row' },
                  h('a', { href: `#/mirrors/${m.id}` }, m.name),
                  h('div', { class: 'muted' }, `${m.baseUrl} · ${m.country}`),
                ),
                h(
                  'td',
                  {},
                  h(
                    'span',
                    {
                      class: `state ${m.upToDate && m.enabled && !m.autoDisabled ? 'state-completed' : 'state-failed'}`,
                    },
                    stateOf(m),
                  ),
                ),
                h('td', {}, `${m.publication ?? '—'} / ${m.claimedPublication ?? '—'}`),
                h('td', {}, lastCrawl(m)),
                h('td', { class: 'num' }, String(m.consecutiveFailures)),
                h('td', {}, families(m)),
                h('td', { class: 'actions' }, crawl, toggle),
              );
            }),
          ),
        ),
      ),
    );
  };
  await draw();
}

/** The add form (no mirror) or the edit form (a mirror). */
function mirrorForm(
  existing: Mirror | undefined,
  done: (m: Mirror) => HTMLElement,
  after: () => Promise<void>,
): HTMLElement {
  const name = h('input', {
    name: 'name',
    required: true,
    value: existing?.name ?? '',
    autocomplete: 'off',
    pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,99}',
  });
  const baseUrl = h('input', {
    name: 'baseUrl',
    type: 'url',
    required: true,
    value: existing?.baseUrl ?? '',
    autocomplete: 'off',
  });
  const country = h('input', {
    name: 'country',
    required: true,
    value: existing?.country ?? '',
    maxlength: 2,
    autocomplete: 'off',
  });
  const bandwidth = h('input', {
    name: 'bandwidth',
    type: 'number',
    min: 1,
    value: String(existing?.bandwidth ?? 100),
    inputmode: 'numeric',
  });
  const netblocks = h('input', {
    name: 'netblocks',
    value: existing?.netblocks.join(', ') ?? '',
    autocomplete: 'off',
  });
  const asn = h('input', {
    name: 'asn',
    type: 'number',
    min: 1,
    value: existing?.asn === null || existing?.asn === undefined ? '' : String(existing.asn),
    inputmode: 'numeric',
  });
  const priv = h('input', {
    name: 'private',
    type: 'checkbox',
    checked: existing?.private ?? false,
  });
  const enabled = h('input', {
    name: 'enabled',
    type: 'checkbox',
    checked: existing?.enabled ?? true,
  });
  const submit = h('button', { type: 'submit' }, existing ? 'Save changes' : 'Add mirror');
  const out = h('div', { 'aria-live': 'polite' });
  const titleId = existing ? 'edit-title' : 'add-title';
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, existing ? `Edit ${existing.name}` : 'Add a mirror'),
    h(
      'div',
      { class: 'row' },
      field('Name', name),
      field('Country', country, 'ISO 3166 code, e.g. DE'),
    ),
    field(
      'Base URL',
      baseUrl,
      'Where the tree is served, e.g. https://mirror.example.org/containers',
    ),
    h('div', { class: 'row' }, field('Bandwidth (Mbit/s)', bandwidth), field('ASN', asn)),
    field('Netblocks', netblocks, 'Comma-separated CIDRs, e.g. 192.0.2.0/24, 2001:db8::/32'),
    h(
      'div',
      { class: 'checks' },
      h('label', {}, priv, ' Private (only its netblocks and ASN)'),
      h('label', {}, enabled, ' Enabled'),
    ),
    submit,
    out,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = {
      name: name.value.trim(),
      baseUrl: baseUrl.value.trim(),
      country: country.value.trim(),
      bandwidth: Number(bandwidth.value || '100'),
      netblocks: netblocks.value.split(/[\s,]+/).filter(Boolean),
      asn: asn.value ? Number(asn.value) : null,
      private: priv.checked,
      enabled: enabled.checked,
    };
    void withBusy(submit, out, async () => {
      const mirror = existing
        ? await mirrors.patch<Mirror>(`/mirrors/${existing.id}`, body)
        : await mirrors.post<Mirror>('/mirrors', body);
      if (!existing) form.reset();
      await after();
      return done(mirror);
    });
  });
  return form;
}

/** One mirror: edit, crawl, remove, and its crawl log. */
export async function renderMirror(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? '';
  const mirror = await mirrors.get<Mirror>(`/mirrors/${encodeURIComponent(id)}`);
  ctx.title(mirror.name);
  const summary = h('dl', { class: 'facts' });
  const log = h('div', {});
  const drawSummary = (m: Mirror) =>
    replace(
      summary,
      h('dt', {}, 'State'),
      h('dd', {}, stateOf(m)),
      h('dt', {}, 'Verified publication'),
      h('dd', {}, String(m.publication ?? '—')),
      h('dt', {}, 'Claimed publication'),
      h('dd', {}, String(m.claimedPublication ?? '—')),
      h('dt', {}, 'Last crawl'),
      h('dd', {}, lastCrawl(m)),
      h('dt', {}, 'Failures in a row'),
      h('dd', {}, String(m.consecutiveFailures)),
      h('dt', {}, 'Address families'),
      h('dd', {}, families(m)),
    );
  const drawLog = async () => {
    const crawls = await mirrors.get<
      Array<{
        startedAt?: string;
        finishedAt?: string;
        status?: string;
        publication?: number | null;
        error?: string | null;
      }>
    >(`/mirrors/${encodeURIComponent(id)}/crawls?limit=20`);
    replace(
      log,
      crawls.length
        ? scrollArea(
            'Recent crawls',
            h(
              'table',
              {},
              h('caption', {}, 'Recent crawls'),
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['When', 'Status', 'Publication', 'Error'].map((t) =>
                    h('th', { scope: 'col' }, t),
                  ),
                ),
              ),
              h(
                'tbody',
                {},
                crawls.map((c) =>
                  h(
                    'tr',
                    {},
                    h('td', {}, formatTime(c.finishedAt ?? c.startedAt)),
                    h('td', {}, c.status ?? '—'),
                    h('td', {}, String(c.publication ?? '—')),
                    h('td', {}, c.error ?? '—'),
                  ),
                ),
              ),
            ),
          )
        : h('p', {}, 'No crawls yet.'),
    );
  };
  drawSummary(mirror);
  const crawl = h('button', { type: 'button' }, 'Crawl now');
  const remove = h('button', { type: 'button', class: 'danger' }, 'Remove mirror');
  const out = h('div', { 'aria-live': 'polite' });
  crawl.addEventListener('click', () => {
    void withBusy(crawl, out, async () => {
      const answer = await mirrors.post<{ crawl: { status?: string }; mirror: Mirror | null }>(
        `/mirrors/${encodeURIComponent(id)}/crawl`,
      );
      if (answer.mirror) drawSummary(answer.mirror);
      await drawLog();
      return notice(`Crawl finished: ${answer.crawl.status ?? 'done'}.`);
    });
  });
  remove.addEventListener('click', () => {
    if (!confirm(`Remove ${mirror.name} and its crawl log?`)) return;
    void withBusy(remove, out, async () => {
      await mirrors.delete(`/mirrors/${encodeURIComponent(id)}`);
      navigate('#/mirrors');
      return notice('Removed.');
    });
  });
  ctx.main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/mirrors' }, 'Mirrors')),
    h('h1', {}, mirror.name),
    summary,
    h('p', { class: 'actions' }, crawl, remove),
    out,
    mirrorForm(
      mirror,
      (m) => {
        drawSummary(m);
        return notice('Saved.');
      },
      async () => undefined,
    ),
    log,
  );
  await drawLog();
}

/** A horizontal bar chart drawn as SVG, with the same numbers as a table for screen readers. */
function barChart(title: string, data: Record<string, number>): HTMLElement {
  const entries = Object.entries(data)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20);
  const titleId = `chart-${title.replace(/\W+/g, '-').toLowerCase()}`;
  if (entries.length === 0)
    return h(
      'section',
      { class: 'chart' },
      h('h2', { id: titleId }, title),
      h('p', {}, 'No redirects yet.'),
    );
  const max = Math.max(...entries.map(([, v]) => v), 1);
  const rowHeight = 26;
  const labelWidth = 110;
  const width = 400;
  const barSpace = width - labelWidth - 60;
  const chart = svg(
    'svg',
    {
      viewBox: `0 0 ${width} ${entries.length * rowHeight + 8}`,
      role: 'img',
      'aria-labelledby': titleId,
      class: 'bars',
      preserveAspectRatio: 'xMinYMin meet',
    },
    entries.map(([label, value], i) => {
      const y = i * rowHeight + 4;
      const w = Math.max(1, Math.round((value / max) * barSpace));
      return svg(
        'g',
        {},
        svg(
          'text',
          { x: labelWidth - 8, y: y + 16, 'text-anchor': 'end', class: 'bar-label' },
          label.length > 18 ? `${label.slice(0, 17)}…` : label,
        ),
        svg('rect', { x: labelWidth, y, width: w, height: rowHeight - 8, rx: 3, class: 'bar' }),
        svg('text', { x: labelWidth + w + 6, y: y + 16, class: 'bar-value' }, String(value)),
      );
    }),
  );
  return h(
    'section',
    { class: 'chart' },
    h('h2', { id: titleId }, title),
    chart,
    h(
      'details',
      {},
      h('summary', {}, 'As a table'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Redirects')),
        ),
        h(
          'tbody',
          {},
          entries.map(([k, v]) =>
            h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, String(v))),
          ),
        ),
      ),
    ),
  );
}

/** The redirector's counters as charts. */
export async function renderStatistics(ctx: PageContext): Promise<void> {
  ctx.title('Redirect statistics');
  const stats = await mirrors.get<Statistics>('/statistics');
  ctx.main.append(
    h('h1', {}, 'Redirect statistics'),
    h(
      'p',
      {},
      `${stats.redirects} redirects and ${stats.notFound} unknown blobs since ${formatTime(stats.since)}.`,
    ),
    h(
      'div',
      { class: 'charts' },
      barChart('Redirects by mirror', stats.byMirror),
      barChart('Redirects by client country', stats.byCountry),
      barChart('Redirects by selection tier', stats.byTier),
    ),
  );
}

/**
 * The page shell: navigation, a hash router (`#/repositories/fedora/httpd`) and the pieces
 * every page shares (problem boxes, busy states). Hash routes need no server fallback and
 * keep the console a set of static files.
 */
import { ProblemError, session } from './api.js';
import { h, replace, type Child } from './dom.js';

export interface PageContext {
  main: HTMLElement;
  params: string[];
  query: URLSearchParams;
  /** False once the user has moved to another page: long-running loops stop. */
  alive(): boolean;
  title(text: string): void;
}

export interface Route {
  path: RegExp;
  render(ctx: PageContext): Promise<void> | void;
  /** Pages anyone may open without a token (only the login form). */
  public?: boolean;
}

const NAV: Array<[string, string]> = [
  ['#/repositories', 'Repositories'],
  ['#/promotions', 'Promotions'],
  ['#/publications', 'Publications'],
  ['#/tasks', 'Tasks'],
  ['#/mirrors', 'Mirrors'],
  ['#/statistics', 'Statistics'],
];

export function problemBox(err: unknown): HTMLElement {
  if (err instanceof ProblemError) {
    const p = err.problem;
    return h(
      'div',
      { class: 'problem', role: 'alert' },
      h(
        'p',
        { class: 'problem-title' },
        h('strong', {}, p.title),
        p.status ? ` (HTTP ${p.status})` : '',
      ),
      p.detail ? h('p', { class: 'problem-detail' }, p.detail) : null,
      Array.isArray(p.issues) && p.issues.length > 1
        ? h(
            'ul',
            {},
            p.issues.map((i) =>
              h('li', {}, `${i.path === '(root)' ? '' : `${i.path}: `}${i.message}`),
            ),
          )
        : null,
    );
  }
  return h(
    'div',
    { class: 'problem', role: 'alert' },
    h(
      'p',
      {},
      h('strong', {}, 'Something went wrong'),
      ' ',
      String((err as Error)?.message ?? err),
    ),
  );
}

export function notice(text: Child): HTMLElement {
  return h('div', { class: 'notice', role: 'status' }, text);
}

/** Runs `action` with the button disabled and the outcome written into `out`. */
export async function withBusy(
  button: HTMLButtonElement | null,
  out: HTMLElement,
  action: () => Promise<Child>,
): Promise<boolean> {
  if (button) button.disabled = true;
  replace(out);
  try {
    replace(out, await action());
    return true;
  } catch (err) {
    replace(out, problemBox(err));
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

export function navigate(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

export function startRouter(routes: Route[], root: HTMLElement): void {
  const nav = h('nav', { 'aria-label': 'Main' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const header = h(
    'header',
    { class: 'top' },
    h('a', { class: 'brand', href: '#/repositories' }, 'Flotilla console'),
    nav,
  );
  replace(root, h('a', { class: 'skip', href: '#main' }, 'Skip to content'), header, main);

  let generation = 0;

  const renderNav = (current: string) => {
    if (!session.token()) {
      replace(nav);
      return;
    }
    const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
    logout.addEventListener('click', () => {
      session.clear();
      navigate('#/login');
    });
    replace(
      nav,
      h(
        'ul',
        {},
        NAV.map(([href, text]) =>
          h(
            'li',
            {},
            h('a', { href, 'aria-current': current.startsWith(href) ? 'page' : undefined }, text),
          ),
        ),
        h('li', {}, logout),
      ),
    );
  };

  const render = async () => {
    const hash = location.hash || '#/repositories';
    // `#main` (the skip link) is an in-page anchor, not a route.
    if (!hash.startsWith('#/')) return;
    const [pathPart = '', queryPart = ''] = hash.slice(1).split('?', 2);
    const path = decodeURI(pathPart);
    const route = routes.find((r) => r.path.test(path));
    generation += 1;
    const mine = generation;
    if (!route) {
      replace(
        main,
        h('h1', {}, 'Not found'),
        h('p', {}, 'There is no page at ', h('code', {}, path), '.'),
      );
      renderNav(hash);
      return;
    }
    if (!route.public && !session.token()) {
      afterLogin = hash;
      navigate('#/login');
      return;
    }
    renderNav(hash);
    replace(main);
    const ctx: PageContext = {
      main,
      params: (route.path.exec(path) ?? []).slice(1).map((p) => p ?? ''),
      query: new URLSearchParams(queryPart),
      alive: () => generation === mine,
      title: (text) => {
        document.title = `${text} · Flotilla console`;
      },
    };
    try {
      await route.render(ctx);
    } catch (err) {
      if (ctx.alive()) main.append(problemBox(err));
    }
    // Move focus to the page's heading so keyboard and screen-reader users start there.
    if (ctx.alive()) {
      const heading = main.querySelector('h1');
      if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus({ preventScroll: false });
      }
    }
  };

  window.addEventListener('hashchange', () => void render());
  void render();
}

/** The page a user asked for before being sent to the login form. */
let afterLogin = '#/repositories';

/** Where the login form sends the user afterwards. */
export function afterLoginTarget(): string {
  const target = afterLogin;
  afterLogin = '#/repositories';
  return target.startsWith('#/login') ? '#/repositories' : target;
}

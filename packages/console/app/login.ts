import { content, session, type RepositoryPage } from './api.js';
import { append, field, h, replace } from './dom.js';
import { afterLoginTarget, navigate, problemBox, type PageContext } from './shell.js';

/** The API token form. The token is checked with one read before the console opens. */
export function renderLogin(ctx: PageContext): void {
  ctx.title('Log in');
  const token = h('input', {
    type: 'password',
    name: 'token',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card narrow' },
    field(
      'API token',
      token,
      'FLOTILLA_API_TOKEN, or a read-only token; kept in this tab only (sessionStorage) and sent as a bearer header.',
    ),
    submit,
    out,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(out);
    session.set(token.value.trim());
    try {
      await content.get<RepositoryPage>('/repositories?limit=1');
      token.value = '';
      navigate(afterLoginTarget());
    } catch (err) {
      session.clear();
      replace(out, problemBox(err));
      token.focus();
    } finally {
      submit.disabled = false;
    }
  });
  const reason = ctx.query.get('reason');
  append(ctx.main, [
    h('h1', {}, 'Log in to the Flotilla console'),
    reason === 'expired'
      ? h('p', { class: 'notice', role: 'status' }, 'The API refused the token; log in again.')
      : null,
    form,
  ]);
}

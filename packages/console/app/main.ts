/** The console's entry point: the routes, and what a refused token does. */
import { onUnauthorized, session } from './api.js';
import { renderLogin } from './login.js';
import { renderMirror, renderMirrors, renderStatistics } from './mirrors.js';
import { renderPromotions, renderRepositories, renderRepository } from './repositories.js';
import { navigate, startRouter, type Route } from './shell.js';
import { renderPublications, renderTask, renderTasks } from './tasks.js';

const routes: Route[] = [
  { path: /^\/login$/, render: renderLogin, public: true },
  { path: /^\/repositories$/, render: renderRepositories },
  { path: /^\/repositories\/(.+)$/, render: renderRepository },
  { path: /^\/promotions$/, render: renderPromotions },
  { path: /^\/publications$/, render: renderPublications },
  { path: /^\/tasks$/, render: renderTasks },
  { path: /^\/tasks\/([0-9a-f-]+)$/, render: renderTask },
  { path: /^\/mirrors$/, render: renderMirrors },
  { path: /^\/mirrors\/([^/]+)$/, render: renderMirror },
  { path: /^\/statistics$/, render: renderStatistics },
];

onUnauthorized(() => {
  session.clear();
  // The login form shows the refusal itself.
  if (!location.hash.startsWith('#/login')) navigate('#/login?reason=expired');
});

const root = document.getElementById('app');
if (root) startRouter(routes, root);

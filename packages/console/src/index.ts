/**
 * The web console's server side: the static pages (built by `tsc -b` from `app/` into
 * `dist/app/`) and a narrow proxy to the mirrors admin API, so the browser talks to one origin.
 *
 * The content service mounts it under `/console`:
 *
 *   GET /console/                         the page (index.html)
 *   GET /console/static/…                 stylesheet
 *   GET /console/app/…                    the compiled ES modules
 *   *   /console/mirrors-api/api/v1/mirrors[/…], GET …/api/v1/statistics
 *                                         forwarded to the mirrors API, Authorization included
 *
 * The proxy forwards only those paths (it is not an open proxy) and buffers bodies (the
 * mirrors admin API takes and answers small JSON documents).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response, type Router } from 'express';
import { request } from 'undici';

export interface ConsoleOptions {
  /** Base URL of the mirrors service, e.g. `http://127.0.0.1:5002` (no trailing path). */
  mirrorsApiUrl: string;
  /** How long a forwarded request may take (default 30 s: a crawl answers when it ends). */
  proxyTimeoutMs?: number;
}

/** Where the compiled browser modules are (`npm run build` writes them). */
export const consoleAppDir = fileURLToPath(new URL('../dist/app', import.meta.url));
export const consoleStaticDir = fileURLToPath(new URL('../static', import.meta.url));

/** The headers every console response carries: nothing inline, nothing from elsewhere. */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

/** The mirrors API paths the console may reach, and the methods each allows. */
const PROXIED: Array<{ path: RegExp; methods: string[] }> = [
  { path: /^\/api\/v1\/mirrors$/, methods: ['GET', 'POST'] },
  { path: /^\/api\/v1\/mirrors\/[^/]{1,100}$/, methods: ['GET', 'PATCH', 'DELETE'] },
  { path: /^\/api\/v1\/mirrors\/[^/]{1,100}\/(crawl)$/, methods: ['POST'] },
  { path: /^\/api\/v1\/mirrors\/[^/]{1,100}\/(crawls)$/, methods: ['GET'] },
  { path: /^\/api\/v1\/statistics$/, methods: ['GET'] },
];

function problem(res: Response, status: number, title: string, detail: string): void {
  res
    .status(status)
    .type('application/problem+json')
    .json({ type: 'about:blank', title, status, detail });
}

export function createConsoleRouter(options: ConsoleOptions): Router {
  if (!existsSync(consoleAppDir)) {
    // The page still loads and says why, rather than the service refusing to start.
    process.emitWarning(`console assets missing at ${consoleAppDir}: run npm run build`);
  }
  const mirrorsBase = options.mirrorsApiUrl.replace(/\/+$/, '');
  const timeout = options.proxyTimeoutMs ?? 30_000;
  const router = express.Router({ strict: true });

  router.use((_req, res, next) => {
    res.set(SECURITY_HEADERS);
    next();
  });
  router.get('/', (req, res) => {
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) {
      res.redirect(301, `${req.baseUrl}/`);
      return;
    }
    res.set('Cache-Control', 'no-cache').sendFile('index.html', { root: consoleStaticDir });
  });
  const staticOptions = {
    index: false,
    fallthrough: true,
    setHeaders: (r: Response) => r.set('Cache-Control', 'no-cache'),
  };
  router.use('/static', express.static(consoleStaticDir, staticOptions));
  router.use('/app', express.static(consoleAppDir, staticOptions));

  router.use(
    '/mirrors-api',
    express.raw({ type: () => true, limit: '256kb' }),
    async (req: Request, res: Response) => {
      const path = req.path;
      const rule = PROXIED.find((r) => r.path.test(path));
      if (!rule) return problem(res, 404, 'Not Found', `the console does not forward ${path}`);
      if (!rule.methods.includes(req.method))
        return problem(res, 405, 'Method Not Allowed', `${req.method} ${path} is not forwarded`);
      const query = req.originalUrl.includes('?')
        ? req.originalUrl.slice(req.originalUrl.indexOf('?'))
        : '';
      const headers: Record<string, string> = { accept: 'application/json' };
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      const body = Buffer.isBuffer(req.body) && req.body.length > 0 ? req.body : undefined;
      if (body) headers['content-type'] = req.headers['content-type'] ?? 'application/json';
      try {
        const answer = await request(`${mirrorsBase}${path}${query}`, {
          method: req.method as 'GET',
          headers,
          ...(body ? { body } : {}),
          headersTimeout: timeout,
          bodyTimeout: timeout,
        });
        const bytes = Buffer.from(await answer.body.arrayBuffer());
        const type = answer.headers['content-type'];
        res.status(answer.statusCode);
        if (typeof type === 'string') res.type(type);
        res.end(bytes);
      } catch (err) {
        problem(
          res,
          502,
          'Bad Gateway',
          `the mirrors API at ${mirrorsBase} did not answer (${(err as Error).message})`,
        );
      }
    },
  );
  return router;
}

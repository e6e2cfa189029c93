/**
 * The web console in real headless Chromium (Debian's `chromium`, driven by playwright-core)
 * against a running all-in-one: log in, find a repository, promote candidate → testing and see
 * the policy refuse candidate → stable, watch a publish task complete live, add a mirror and
 * crawl it, log out. Every page gets a screenshot under test-output/console/ and an axe-core
 * check (no serious or critical violations). The console's browser modules come from
 * `npm run build` (packages/console/dist/app).
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from './support/images.js';
import {
  flotillaEnv,
  freeServicePorts,
  repoRoot,
  startFlotilla,
  waitFor,
  type FlotillaProcess,
  type ServicePorts,
} from './support/flotilla.js';
import { startStaticServer, type StaticServer } from './support/static-server.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ASSETS = join(repoRoot, 'packages/console/dist/app/main.js');
const missing = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}`
  : !existsSync(ASSETS)
    ? 'console not built (npm run build)'
    : '';
if (missing && process.env.CI) throw new Error(`console browser test cannot run: ${missing}`);
if (missing) console.log(`console browser test skipped: ${missing}`);

const SHOTS = join(repoRoot, 'test-output', 'console');
const TOKEN = 'console-test-token-0123456789abcdef';
const axeSource = await readFile(
  createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8',
);

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[] }>;
}

describe.skipIf(missing !== '')('web console in headless Chromium', { timeout: 60_000 }, () => {
  let work: string;
  let ports: ServicePorts;
  let flotilla: FlotillaProcess;
  let mirror: StaticServer;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  let consoleUrl: string;
  const api = (path: string) =>
    fetch(`http://127.0.0.1:${ports.content}/api/v1${path}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    }).then((r) => r.json() as Promise<Record<string, unknown>>);

  /** A screenshot and an accessibility check of what the page shows now. */
  const check = async (name: string) => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    await page.evaluate(axeSource);
    // Strings, not functions: this file is type-checked without the DOM library.
    const violations = await page.evaluate<AxeViolation[]>(
      `axe.run(document, { resultTypes: ['violations'] }).then((r) =>
         r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))`,
    );
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious, `${name}: ${JSON.stringify(serious, null, 1)}`).toEqual([]);
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-console-'));
    await mkdir(SHOTS, { recursive: true });
    ports = await freeServicePorts();
    const env = flotillaEnv({
      dataDir: join(work, 'var'),
      ports,
      extra: { FLOTILLA_API_TOKEN: TOKEN, FLOTILLA_MIRRORS_CRAWL_INTERVAL: '0' },
    });
    flotilla = await startFlotilla(['start'], env, ports);
    const password = (
      await readFile(join(work, 'var', 'secrets', 'admin-password'), 'utf8')
    ).trim();
    const auth = { username: 'admin', password };
    for (const [repo, tag] of [
      ['fedora/httpd', '39'],
      ['fedora/httpd', '40'],
      ['fedora/nginx', '1.25'],
      ['tools/busybox', '1'],
    ] as const) {
      await pushImage(`http://127.0.0.1:${ports.registry}`, repo, tag, { auth });
    }
    await waitFor('three repositories synced into candidate', async () => {
      const answer = await api('/repositories');
      const repos = answer.repositories as Array<{ channels: Record<string, number> }>;
      if (repos.length !== 3 || !repos.every((r) => (r.channels.candidate ?? 0) > 0))
        return undefined;
      const httpd = (await api('/repositories/fedora/httpd?channel=candidate')).channels as Array<{
        tags: Record<string, string>;
      }>;
      return Object.keys(httpd[0]?.tags ?? {}).length === 2 ? true : undefined;
    });
    await mkdir(join(work, 'mirror'));
    mirror = await startStaticServer(join(work, 'mirror'));

    context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) pageErrors.push(msg.text());
    });
    page.setDefaultTimeout(20_000);
    consoleUrl = `http://127.0.0.1:${ports.content}/console/`;
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    const code = await flotilla?.stop();
    await mirror?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    expect(code).toBe(0);
  }, 60_000);

  it('serves the console with a strict content security policy and no third-party resources', async () => {
    const res = await fetch(consoleUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    const proxied = await fetch(`${consoleUrl}mirrors-api/metrics`);
    expect(proxied.status, 'the mirrors proxy forwards only the admin API').toBe(404);
  });

  it('logs in: a wrong token is refused in words, the right one opens the repositories', async () => {
    await page.goto(consoleUrl);
    await page.getByRole('heading', { name: 'Log in to the Flotilla console' }).waitFor();
    await check('01-login');
    await page.getByLabel('API token').fill('not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').innerText()).toContain('unknown token');
    await check('02-login-refused');
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Repositories' }).waitFor();
    expect(page.url()).not.toContain(TOKEN);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(3);
    await check('03-repositories');
  });

  it('finds a repository by searching', async () => {
    await page.getByLabel('Search repositories').fill('httpd');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    await expect.poll(() => page.locator('.count').innerText()).toBe('Showing 1–1 of 1');
    await page.getByRole('link', { name: 'fedora/httpd' }).click();
    await page.getByRole('heading', { name: 'fedora/httpd', level: 1 }).waitFor();
    const candidate = page.locator('section.channel', {
      has: page.getByRole('heading', { name: /^candidate/ }),
    });
    await expect
      .poll(() => candidate.locator('tbody tr').first().innerText())
      .toMatch(/^39\s+sha256:[0-9a-f]{12}…\s+linux\/amd64\s+[\d.]+ (B|KiB)/);
    await check('04-repository');
  });

  it('promotes candidate → testing with a reason, and shows the policy refusing candidate → stable', async () => {
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Promote' }) });
    await form.getByLabel('From channel').selectOption('candidate');
    await form.getByLabel('To channel').selectOption('testing');
    await form.getByLabel('Tags').fill('39');
    await form.getByLabel('Reason').fill('QA-1234 passed');
    await form.getByRole('button', { name: 'Promote' }).click();
    await expect
      .poll(() => form.getByRole('status').innerText())
      .toContain('Promoted 39 from candidate to testing: testing is now version 1');
    const testing = page.locator('section.channel', {
      has: page.getByRole('heading', { name: /^testing/ }),
    });
    await expect.poll(() => testing.locator('tbody tr').count()).toBe(1);
    await check('05-promoted');

    // 40 never went through testing: the policy refuses it for stable, and the page says why.
    await form.getByLabel('To channel').selectOption('stable');
    await form.getByLabel('Tags').fill('40');
    await form.getByRole('button', { name: 'Promote' }).click();
    const refusal = form.getByRole('alert');
    await expect.poll(() => refusal.innerText()).toContain('Promotion refused by policy');
    expect(await refusal.innerText()).toMatch(/HTTP 409[\s\S]*testing/);
    await check('06-promotion-refused');

    const audit = (await api('/promotions?repository=fedora/httpd')).promotions as Array<{
      reason?: string;
      to: string;
    }>;
    expect(audit).toEqual([expect.objectContaining({ to: 'testing', reason: 'QA-1234 passed' })]);

    // 39 went through testing: it goes on to stable, signed on the way by Flotilla's key. Its
    // signature attachment (a `.sig` tag) shows in the Signature column, not as a row.
    await form.getByLabel('From channel').selectOption('testing');
    await form.getByLabel('To channel').selectOption('stable');
    await form.getByLabel('Tags').fill('39');
    await form.getByLabel('Reason').fill('QA-1234 released');
    await form.getByRole('button', { name: 'Promote' }).click();
    const stable = page.locator('section.channel', {
      has: page.getByRole('heading', { name: /^stable/ }),
    });
    await expect.poll(() => stable.locator('tbody tr').count()).toBe(1);
    await expect
      .poll(() => stable.locator('tbody tr').first().innerText())
      .toMatch(/signed by \S+/);
    expect(await testing.locator('tbody tr').first().innerText()).toContain('unsigned');
  });

  it('compares two versions of a channel', async () => {
    const form = page.locator('form', {
      has: page.getByRole('heading', { name: 'Compare two versions of a channel' }),
    });
    await form.getByLabel('Channel').selectOption('testing');
    await form.getByLabel('From version').fill('0');
    await form.getByRole('button', { name: 'Compare' }).click();
    await expect.poll(() => form.locator('tbody tr').first().innerText()).toMatch(/^39\s+added/);
    await check('07-compare');
  });

  it('shows the promotions audit', async () => {
    await page.getByRole('link', { name: 'Promotions' }).click();
    await page.getByRole('heading', { name: 'Promotions audit' }).waitFor();
    await expect
      .poll(() => page.locator('tbody').innerText())
      .toMatch(/QA-1234 released[\s\S]*QA-1234 passed/);
    await check('08-promotions');
  });

  it('publishes testing and watches the task reach completed on its page, live', async () => {
    await page.getByRole('link', { name: 'Tasks' }).click();
    await page.getByRole('heading', { name: 'Tasks', exact: true }).waitFor();
    await check('09-tasks');
    await page.getByLabel('Channel to publish').selectOption('testing');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByRole('heading', { name: /^Task / }).waitFor();
    const taskUrl = page.url();
    // The page updates itself (long poll): no reload, no navigation.
    await expect
      .poll(() => page.locator('#task-state').innerText(), { timeout: 60_000 })
      .toBe('completed');
    expect(page.url()).toBe(taskUrl);
    expect(await page.locator('#task-progress').getAttribute('value')).toBe('1');
    await check('10-task-completed');

    await page.getByRole('link', { name: 'Publications' }).click();
    await page.getByRole('heading', { name: 'Publications' }).waitFor();
    await expect
      .poll(() => page.locator('tbody tr').first().innerText())
      .toMatch(/^1\s+testing\s+complete/);
    // What a publication added is fetched when its row is opened.
    await page.locator('tbody tr').first().locator('summary').click();
    await expect
      .poll(() => page.locator('tbody tr').first().innerText())
      .toMatch(/Repositories: \S+/);
    await expect
      .poll(() => page.locator('tbody tr').first().locator('li').count())
      .toBeGreaterThan(0);
    await check('11-publications');
  });

  it('adds a mirror, crawls it and sees the verified publication', async () => {
    const publishDir = join(work, 'var', 'publish');
    await cp(publishDir, join(work, 'mirror'), {
      recursive: true,
      filter: (src) => !src.endsWith('/PUBLICATION') && !src.includes('.staging'),
    });
    await cp(join(publishDir, 'PUBLICATION'), join(work, 'mirror', 'PUBLICATION'));

    await page.getByRole('link', { name: 'Mirrors' }).click();
    await page.getByRole('heading', { name: 'Mirrors', level: 1 }).waitFor();
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add a mirror' }) });
    await form.getByLabel('Name', { exact: true }).fill('mirror-a');
    await form.getByLabel('Country', { exact: true }).fill('DE');
    await form.getByLabel('Base URL').fill(mirror.url);
    await form.getByRole('button', { name: 'Add mirror' }).click();
    await expect
      .poll(() => form.getByRole('status').innerText())
      .toContain('Mirror mirror-a registered');
    const row = page.locator('tbody tr', { hasText: 'mirror-a' });
    await expect.poll(() => row.innerText()).toContain('not verified yet');

    // A bad address family is refused with the API's words.
    await form.getByLabel('Name', { exact: true }).fill('mirror-b');
    await form.getByLabel('Country', { exact: true }).fill('DE');
    await form.getByLabel('Base URL').fill(mirror.url);
    await form.getByLabel('Netblocks', { exact: true }).fill('not-a-cidr');
    await form.getByRole('button', { name: 'Add mirror' }).click();
    await expect.poll(() => form.getByRole('alert').innerText()).toContain('CIDR');
    await check('12-mirror-refused');

    await row.getByRole('button', { name: 'Crawl mirror-a' }).click();
    await expect
      .poll(() => page.getByRole('status').first().innerText())
      .toContain('Crawled mirror-a: ok');
    await expect.poll(() => row.innerText()).toContain('up to date');
    expect(await row.innerText()).toContain('1 / 1');
    await check('13-mirrors');

    await row.getByRole('link', { name: 'mirror-a' }).click();
    await page.getByRole('heading', { name: 'mirror-a', level: 1 }).waitFor();
    await expect
      .poll(() => page.getByRole('table', { name: 'Recent crawls' }).locator('tbody tr').count())
      .toBe(1);
    await check('14-mirror');

    // Edit it: the change reaches the mirrors API and comes back.
    const edit = page.locator('form', {
      has: page.getByRole('heading', { name: 'Edit mirror-a' }),
    });
    await edit.getByLabel('Bandwidth (Mbit/s)').fill('250');
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => edit.getByRole('status').innerText()).toBe('Saved.');

    // Disable it from the list.
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Mirrors' })
      .click();
    const listed = page.locator('tbody tr', { hasText: 'mirror-a' });
    await listed.getByRole('button', { name: 'Disable mirror-a' }).click();
    await expect.poll(() => listed.innerText()).toContain('disabled by admin');
    const stored = (await fetch(`http://127.0.0.1:${ports.mirrors}/api/v1/mirrors`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    }).then((r) => r.json())) as Array<{ name: string; bandwidth: number; enabled: boolean }>;
    expect(stored).toEqual([
      expect.objectContaining({ name: 'mirror-a', bandwidth: 250, enabled: false }),
    ]);
    await check('15-mirror-disabled');
  });

  it('draws the redirect statistics', async () => {
    // One redirect through the redirector, so there is a bar to draw.
    const index = JSON.parse(
      await readFile(join(work, 'var', 'publish', 'publications', '1.json'), 'utf8'),
    ) as { newBlobs: string[] };
    const blob = index.newBlobs[0]!.replace('sha256:', '');
    const redirect = await fetch(
      `http://127.0.0.1:${ports.mirrors}/pub/containers/blobs/sha256/${blob.slice(0, 2)}/${blob}`,
      { redirect: 'manual' },
    );
    expect(redirect.status).toBe(302);
    await page.getByRole('link', { name: 'Statistics' }).click();
    await page.getByRole('heading', { name: 'Redirect statistics' }).waitFor();
    await expect
      .poll(
        async () => {
          await page.reload();
          return page.locator('svg[role="img"] rect.bar').count();
        },
        { timeout: 15_000 },
      )
      .toBeGreaterThan(0);
    await check('16-statistics');
  });

  it('fits a phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${consoleUrl}#/repositories/fedora/httpd`);
    await page.getByRole('heading', { name: 'fedora/httpd', level: 1 }).waitFor();
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await check('17-repository-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('logs out: the token is gone and pages ask for it again', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in to the Flotilla console' }).waitFor();
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);
    await page.goto(`${consoleUrl}#/tasks`);
    await page.getByRole('heading', { name: 'Log in to the Flotilla console' }).waitFor();
    expect(pageErrors).toEqual([]);
  });
});

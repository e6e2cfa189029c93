/** Starts content in-process on listen(0) with an embedded store in a temp dir and a local bus. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalBus } from '@flotilla/bus';
import type { Bus } from '@flotilla/bus';
import { createLogger, listen, type RunningServer } from '@flotilla/kit';
import { createEmbeddedStore, type Store } from '@flotilla/store';
import { request } from 'undici';
import { loadContentConfig } from '../src/config.js';
import { createContentService, type ContentService } from '../src/service.js';

export const ADMIN = 'admin-token-for-tests';
export const READER = 'read-token-for-tests';
export const HOOK_SECRET = 'webhook-secret-for-tests';

export interface ContentHarness {
  url: string;
  dir: string;
  service: ContentService;
  store: Store;
  bus: Bus;
  server: RunningServer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
  api<T = any>(
    method: string,
    p: string,
    body?: unknown,
    options?: { token?: string | null; headers?: Record<string, string>; raw?: string },
  ): Promise<{ status: number; body: T; headers: Record<string, unknown> }>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- API answers are read loosely in tests
  waitTask(id: string, timeoutMs?: number): Promise<any>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Use this data dir (kept at stop). */
  dir?: string;
  /** Share a store / bus with other instances (not closed at stop). */
  store?: Store;
  bus?: Bus;
  queues?: { tasks?: string; registryEvents?: string };
}

export async function startContent(
  env: Record<string, string> = {},
  options: StartOptions = {},
): Promise<ContentHarness> {
  const dir = options.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-content-')));
  const config = loadContentConfig({
    FLOTILLA_DATA_DIR: dir,
    FLOTILLA_API_TOKEN: ADMIN,
    FLOTILLA_CONTENT_READ_TOKENS: READER,
    FLOTILLA_WEBHOOK_SECRET: HOOK_SECRET,
    FLOTILLA_REGISTRY_URL: 'http://127.0.0.1:9',
    FLOTILLA_REGISTRY_PASSWORD: 'unused',
    FLOTILLA_CONTENT_PORT: '0',
    // Tests that reconcile say so; elsewhere it would only add a task per start.
    FLOTILLA_CONTENT_RECONCILE_INTERVAL: '0',
    ...env,
  });
  const logger = createLogger({ name: 'content-test', level: process.env.LOG_LEVEL ?? 'silent' });
  const store = options.store ?? createEmbeddedStore({ dir: path.join(dir, 'db'), logger });
  const bus = options.bus ?? createLocalBus({ logger });
  const service = await createContentService({
    config,
    logger,
    store,
    bus,
    pollMs: 200,
    outboxIntervalMs: 200,
    ...(options.queues ? { queues: options.queues } : {}),
  });
  const server = await listen(service.handler, { host: '127.0.0.1', port: 0, logger });
  await service.start();
  const url = server.url;

  const api: ContentHarness['api'] = async (method, p, body, opts = {}) => {
    const token = opts.token === undefined ? ADMIN : opts.token;
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined = opts.raw;
    if (body !== undefined && payload === undefined) payload = JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] ??= 'application/json';
    const res = await request(`${url}${p}`, { method: method as 'GET', headers, body: payload });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: the text is the body
    }
    return { status: res.statusCode, body: parsed as never, headers: res.headers };
  };

  const waitTask = async (id: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // long poll: the answer comes when the task ends (or after a second)
      const { body } = await api('GET', `/api/v1/tasks/${id}?wait=1`);
      if (['completed', 'failed', 'canceled'].includes(body.state)) return body;
      if (Date.now() > deadline) throw new Error(`task ${id} still ${body.state}`);
    }
  };

  return {
    url,
    dir,
    service,
    store,
    bus,
    server,
    api,
    waitTask,
    async stop() {
      await server.close();
      await service.stop();
      if (!options.bus) await bus.close();
      if (!options.store) await store.close();
      if (!options.dir) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

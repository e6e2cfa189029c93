import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Bus } from '@flotilla/bus';
import { listen, type RunningServer } from '@flotilla/kit';
import { pino } from 'pino';
import { request } from 'undici';
import { createCraneService, loadCraneConfig, type CraneService } from '../src/index.js';
import type { TreeSource } from '../src/source/tree-source.js';

export interface Crane {
  service: CraneService;
  server: RunningServer;
  url: string;
  root: string;
  get(path: string, headers?: Record<string, string>, method?: string): Promise<Reply>;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = unknown>(): T;
}

export async function tempDir(prefix = 'crane-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Starts crane on 127.0.0.1:0 over `root` with the given extra environment. */
export async function startCrane(
  root: string,
  env: Record<string, string> = {},
  extra: { bus?: Bus; source?: TreeSource; start?: boolean } = {},
): Promise<Crane> {
  const config = loadCraneConfig({
    FLOTILLA_PUBLISH_DIR: root,
    FLOTILLA_CRANE_PORT: '0',
    FLOTILLA_CRANE_BLOB_BASE_URL: 'http://mirrors.test/pub/containers',
    FLOTILLA_CRANE_POLL_INTERVAL: '0',
    FLOTILLA_CRANE_RATE_LIMIT: '0',
    FLOTILLA_CRANE_INSTANCE_ID: `test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    ...env,
  });
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
  const service = await createCraneService({
    config,
    logger,
    ...(extra.bus ? { bus: extra.bus } : {}),
    ...(extra.source ? { source: extra.source } : {}),
  });
  if (extra.start ?? true) await service.start();
  const server = await listen(service.handler, {
    port: 0,
    logger,
    maxHeaderSize: config.maxHeaderSize,
  });
  return {
    service,
    server,
    url: server.url,
    root,
    get: (p, headers = {}, method = 'GET') => call(server.url, p, headers, method),
    async close() {
      await server.close();
      await service.stop();
    },
  };
}

export async function call(
  base: string,
  p: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Reply> {
  const res = await request(`${base}${p}`, { method: method as 'GET', headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    json<T>() {
      return JSON.parse(body.toString('utf8')) as T;
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const ALL_MANIFESTS = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

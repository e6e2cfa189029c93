import { request } from 'undici';
import type { TreeSource } from './tree-source.js';

/** A published tree served over HTTP (the master copy, e.g. `http://127.0.0.1:5002/master`). */
export function createHttpSource(
  baseUrl: string,
  options: { timeoutMs?: number } = {},
): TreeSource {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const timeoutMs = options.timeoutMs ?? 15_000;
  return {
    location: base,
    async readText(relativePath) {
      const url = new URL(relativePath.split('/').map(encodeURIComponent).join('/'), base);
      const res = await request(url, {
        method: 'GET',
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        headers: { accept: 'application/json, text/plain, */*', 'cache-control': 'no-cache' },
      });
      if (res.statusCode === 404) {
        await res.body.dump();
        return null;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`GET ${url.href} answered ${res.statusCode}`);
      }
      return res.body.text();
    },
    listRepositories() {
      return Promise.resolve(null);
    },
  };
}

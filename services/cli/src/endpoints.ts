import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, EXIT } from './output.js';

/**
 * Where the admin APIs are and which token to present: flags, then the environment, then the
 * secrets an all-in-one `flotilla start` generated under the data dir.
 */
export interface Endpoint {
  url: string;
  token: string;
}

export interface EndpointFlags {
  url?: string;
  token?: string;
  dataDir?: string;
}

const DEFAULT_PORTS = { content: 5003, mirrors: 5002 } as const;

export function dataDirOf(flags: EndpointFlags, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flags.dataDir ?? env.FLOTILLA_DATA_DIR ?? './var');
}

export function readSecret(dataDir: string, fileName: string): string | undefined {
  try {
    return readFileSync(join(dataDir, 'secrets', fileName), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function resolveEndpoint(
  service: keyof typeof DEFAULT_PORTS,
  flags: EndpointFlags,
  env: NodeJS.ProcessEnv = process.env,
): Endpoint {
  const upper = service.toUpperCase();
  const port = env[`FLOTILLA_${upper}_PORT`] ?? String(DEFAULT_PORTS[service]);
  const url = flags.url ?? env[`FLOTILLA_${upper}_URL`] ?? `http://127.0.0.1:${port}`;
  const token =
    flags.token ?? env.FLOTILLA_API_TOKEN ?? readSecret(dataDirOf(flags, env), 'api-token');
  if (!token) {
    throw new CliError(
      `no API token: pass --token, set FLOTILLA_API_TOKEN, or run where ${join(dataDirOf(flags, env), 'secrets', 'api-token')} exists`,
      EXIT.unauthorized,
    );
  }
  return { url: url.replace(/\/+$/, ''), token };
}

/** Every environment variable the CLI itself reads (deployment tests check against it). */
export const CLI_ENVIRONMENT = [
  'FLOTILLA_DATA_DIR',
  'FLOTILLA_API_TOKEN',
  'FLOTILLA_CONTENT_URL',
  'FLOTILLA_CONTENT_PORT',
  'FLOTILLA_MIRRORS_URL',
  'FLOTILLA_MIRRORS_PORT',
  'FLOTILLA_REGISTRY_STORAGE_DIR',
  'FLOTILLA_CRANE_TESTING_PORT',
  'FLOTILLA_KEY_PASSPHRASE',
  'LOG_LEVEL',
] as const;

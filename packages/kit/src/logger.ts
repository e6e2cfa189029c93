/**
 * The one logger factory. Services make one root logger in main.ts and hand children to
 * components (`logger.child({ component: 'sync' })`); the app factory adds a child per
 * request carrying `reqId`.
 */
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { ConfigError, LOG_LEVELS, type Env } from './config.js';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  /** Shown as `name` on every line (usually the service). */
  name?: string;
  /** Overrides `LOG_LEVEL`. */
  level?: string;
  /** Where `LOG_LEVEL`, `NODE_ENV` and `VITEST` are read (default `process.env`). */
  env?: Env;
  /** Write somewhere other than stdout (tests capture lines this way). */
  destination?: DestinationStream;
  /**
   * Human-readable lines through pino-pretty (a worker thread) instead of JSON. Default: when
   * stdout is a terminal and no destination is given; `LOG_FORMAT=json` or `pretty` decides.
   */
  pretty?: boolean;
}

const SECRET_KEYS = [
  'password',
  'token',
  'secret',
  'authorization',
  'apiToken',
  'adminPassword',
  'webhookSecret',
  'FLOTILLA_ADMIN_PASSWORD',
  'FLOTILLA_API_TOKEN',
  'FLOTILLA_WEBHOOK_SECRET',
];
/**
 * Secrets never reach a log line: these keys at the top level and inside the usual
 * containers. Explicit paths only — pino's wildcard redaction costs ~10x per line.
 */
const REDACTED_PATHS = [
  ...SECRET_KEYS,
  ...['config', 'options', 'upstream', 'body'].flatMap((parent) =>
    SECRET_KEYS.map((key) => `${parent}.${key}`),
  ),
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** Tests are quiet unless they ask: LOG_LEVEL unset under vitest or NODE_ENV=test → silent. */
function defaultLevel(env: Env): string {
  const fromEnv = env.LOG_LEVEL?.trim().toLowerCase();
  if (fromEnv) return fromEnv;
  return env.NODE_ENV === 'test' || env.VITEST !== undefined ? 'silent' : 'info';
}

export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const level = options.level ?? defaultLevel(env);
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(
      `invalid configuration: LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(level)})`,
      ['LOG_LEVEL'],
    );
  }
  const pinoOptions: LoggerOptions = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (options.name !== undefined) pinoOptions.name = options.name;
  if (options.destination) return pino(pinoOptions, options.destination);
  const format = env.LOG_FORMAT?.trim().toLowerCase();
  const pretty =
    options.pretty ??
    (format === 'pretty' ? true : format === 'json' ? false : Boolean(process.stdout.isTTY));
  if (pretty) {
    pinoOptions.transport = {
      target: 'pino-pretty',
      options: {
        destination: 1,
        colorize: Boolean(process.stdout.isTTY),
        singleLine: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
      },
    };
  }
  return pino(pinoOptions);
}

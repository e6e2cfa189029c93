/**
 * Configuration from the environment. A service describes its settings as a zod object
 * whose keys are the environment variable names; `loadConfig` parses them once at start
 * and fails with one readable line naming the variable and the expected form.
 *
 * Empty (or blank) variables count as unset, so `FOO=` in a compose file falls back to
 * the default instead of failing validation.
 */
import { z } from 'zod';

export class ConfigError extends Error {
  /** The variables that failed, in schema order. */
  readonly variables: readonly string[];

  constructor(message: string, variables: readonly string[] = []) {
    super(message);
    this.name = 'ConfigError';
    this.variables = variables;
  }
}

export function isConfigError(value: unknown): value is ConfigError {
  return value instanceof ConfigError;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Values of these variables never appear in an error message. */
const SENSITIVE_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY)(_|$)/i;

export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.output<S> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    input[key] = value === undefined || value.trim() === '' ? undefined : value;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;

  const seen = new Set<string>();
  const parts: string[] = [];
  for (const issue of result.error.issues) {
    const key = issue.path.length > 0 ? String(issue.path[0]) : '(environment)';
    if (seen.has(key)) continue;
    seen.add(key);
    parts.push(describeIssue(key, issue.message, input[key]));
  }
  throw new ConfigError(`invalid configuration: ${parts.join('; ')}`, [...seen]);
}

function describeIssue(key: string, message: string, raw: string | undefined): string {
  if (raw === undefined) return `${key} is required`;
  const text = /^(must|is|should) /.test(message) ? `${key} ${message}` : `${key}: ${message}`;
  return `${text} (got ${showValue(key, raw)})`;
}

function showValue(key: string, raw: string): string {
  if (SENSITIVE_NAME.test(key)) return 'a hidden value';
  let shown = raw;
  // A URL may carry a password (MONGODB_URL, AMQP_URL): never echo it.
  try {
    const parsed = new URL(raw);
    if (parsed.password !== '') {
      parsed.password = '***';
      shown = parsed.toString();
    }
  } catch {
    // not a URL: shown as is
  }
  if (shown.length > 200) shown = `${shown.slice(0, 200)}…`;
  return JSON.stringify(shown);
}

/**
 * Prints a `ConfigError`'s line to stderr and exits with 78 (EX_CONFIG). Anything else is
 * rethrown: only configuration mistakes deserve the quiet exit.
 */
export function exitOnConfigError(err: unknown): never {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(78);
}

// ---------------------------------------------------------------------------------------
// Reusable field schemas. Each takes the raw string and yields a typed value; add
// `.default(...)` (output type) or `.optional()` in the service's schema.

function fail(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A TCP port, 0–65535 (0 = any free port, useful in tests). */
export function port() {
  return z.string().transform((raw, ctx): number => {
    const s = raw.trim();
    if (/^\d{1,5}$/.test(s)) {
      const n = Number(s);
      if (n <= 65535) return n;
    }
    return fail(ctx, 'must be an integer between 0 and 65535');
  });
}

/** An integer within bounds. */
export function int(options: { min?: number; max?: number } = {}) {
  const min = options.min ?? Number.MIN_SAFE_INTEGER;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const range =
    options.min !== undefined && options.max !== undefined
      ? ` between ${min} and ${max}`
      : options.min !== undefined
        ? ` of at least ${min}`
        : options.max !== undefined
          ? ` of at most ${max}`
          : '';
  return z.string().transform((raw, ctx): number => {
    const s = raw.trim();
    if (/^[+-]?\d+$/.test(s)) {
      const n = Number(s);
      if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
    }
    return fail(ctx, `must be an integer${range}`);
  });
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV6_LITERAL = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$/;

/** A host name or IP literal to listen on or connect to; `[::1]` is unbracketed to `::1`. */
export function host() {
  return z.string().transform((raw, ctx): string => {
    let s = raw.trim();
    if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
    if (HOST_NAME.test(s) || (s.includes(':') && IPV6_LITERAL.test(s))) return s;
    return fail(ctx, 'must be a host name or an IP address');
  });
}

export interface UrlFieldOptions {
  /** Accepted schemes with the colon, default `['http:', 'https:']`. */
  protocols?: readonly string[];
  /** Remove a trailing `/` so callers can append `/path` (default true). */
  stripTrailingSlash?: boolean;
}

/** An absolute URL, returned as a string (no trailing slash by default). */
export function url(options: UrlFieldOptions = {}) {
  const protocols = options.protocols ?? ['http:', 'https:'];
  const strip = options.stripTrailingSlash ?? true;
  const schemes = protocols.map((p) => p.replace(/:$/, '')).join(' or ');
  return z.string().transform((raw, ctx): string => {
    const s = raw.trim();
    let parsed: URL;
    try {
      parsed = new URL(s);
    } catch {
      return fail(ctx, `must be an absolute ${schemes} URL`);
    }
    if (!protocols.includes(parsed.protocol))
      return fail(ctx, `must be an absolute ${schemes} URL`);
    return strip ? s.replace(/\/+$/, '') : s;
  });
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses `250`, `250ms`, `30s`, `1.5m`, `2h`, `1d` into milliseconds. A bare number is in
 * `bareUnit` (milliseconds unless a setting was documented in whole seconds).
 */
export function parseDurationMs(text: string, bareUnit: 'ms' | 's' = 'ms'): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const value = Number(m[1]) * (DURATION_UNITS[m[2] ?? bareUnit] ?? 1);
  return Number.isFinite(value) && value <= Number.MAX_SAFE_INTEGER ? Math.round(value) : undefined;
}

export interface DurationOptions {
  /** What a bare number means; `s` for the settings named `…_SECONDS`. Default `ms`. */
  bareUnit?: 'ms' | 's';
  minMs?: number;
  maxMs?: number;
}

/** A duration in milliseconds: `500`, `500ms`, `30s`, `5m`, `1h`, `1d`. */
export function durationMs(options: DurationOptions = {}) {
  const bareUnit = options.bareUnit ?? 'ms';
  const bare = bareUnit === 's' ? 'seconds' : 'milliseconds';
  return z.string().transform((raw, ctx): number => {
    const value = parseDurationMs(raw, bareUnit);
    if (value === undefined)
      return fail(
        ctx,
        `must be a duration such as 500ms, 30s, 5m or 1h (a bare number is ${bare})`,
      );
    if (options.minMs !== undefined && value < options.minMs)
      return fail(ctx, `must be at least ${options.minMs} ms`);
    if (options.maxMs !== undefined && value > options.maxMs)
      return fail(ctx, `must be at most ${options.maxMs} ms`);
    return value;
  });
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Parses `1048576`, `512B`, `64MiB`, `1.5GiB`, `500MB`, `2TB` into bytes (a bare number is bytes; any case). */
export function parseSizeBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase() || 'b'];
  if (unit === undefined) return undefined;
  const value = Number(m[1]) * unit;
  return Number.isFinite(value) && value <= Number.MAX_SAFE_INTEGER ? Math.floor(value) : undefined;
}

/** A size in bytes: `0`, `1048576`, `64MiB`, `2GiB`, `500MB`. */
export function sizeBytes() {
  return z.string().transform((raw, ctx): number => {
    const value = parseSizeBytes(raw);
    if (value === undefined)
      return fail(
        ctx,
        'must be a size such as 0, 1048576, 64MiB, 2GiB or 500MB (a bare number is bytes)',
      );
    return value;
  });
}

/**
 * A comma-separated list; items are trimmed and empty items dropped. With `item`, each
 * entry is parsed by that schema and the first bad entry is named.
 */
export function csv(): z.ZodPipe<z.ZodString, z.ZodTransform<string[], string>>;
export function csv<T>(
  item: z.ZodType<T, string>,
): z.ZodPipe<z.ZodString, z.ZodTransform<T[], string>>;
export function csv<T>(item?: z.ZodType<T, string>) {
  return z.string().transform((raw, ctx) => {
    const entries = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (!item) return entries;
    const out: T[] = [];
    for (const [i, entry] of entries.entries()) {
      const r = item.safeParse(entry);
      if (!r.success) {
        const why = r.error.issues[0]?.message ?? 'is invalid';
        return fail(
          ctx,
          `must be a comma-separated list; item ${i + 1} (${JSON.stringify(entry)}) ${why}`,
        );
      }
      out.push(r.data);
    }
    return out;
  });
}

/** `true/false`, `1/0`, `yes/no`, `on/off` (any case). */
export function bool() {
  return z.stringbool({ error: 'must be a boolean (true/false, 1/0, yes/no, on/off)' });
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A pino level name. */
export function logLevel() {
  return z.string().transform((raw, ctx): LogLevel => {
    const s = raw.trim().toLowerCase();
    if ((LOG_LEVELS as readonly string[]).includes(s)) return s as LogLevel;
    return fail(ctx, `must be one of ${LOG_LEVELS.join(', ')}`);
  });
}

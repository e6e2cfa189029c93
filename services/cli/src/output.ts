/**
 * How the CLI talks to people and scripts. Human output by default (tables, one-line results,
 * summaries); with `--json` exactly one JSON document on stdout. Logs and progress go to
 * stderr only. Errors are one line on stderr, naming the thing, and one exit code convention
 * holds for every command (`EXIT`; docs/operations.md, "The flotilla command").
 */

/** Exit codes, the same for every command. */
export const EXIT = {
  ok: 0,
  /** The command ran and the operation failed (a task failed or was canceled). */
  failed: 1,
  /** Bad usage: unknown option, missing argument, invalid value (HTTP 400). */
  usage: 2,
  /** A check found problems (`registry fsck`). */
  checkFailed: 3,
  /** The thing named does not exist (HTTP 404). */
  notFound: 4,
  /** Refused because of the current state: policy, duplicate, finished task (HTTP 409). */
  conflict: 5,
  /** The token is missing, unknown or may only read (HTTP 401/403). */
  unauthorized: 6,
  /** The server failed or could not be reached (HTTP 5xx, connection refused, timeout). */
  server: 7,
  /** Bad configuration (EX_CONFIG). */
  config: 78,
} as const;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

export interface OutputOptions {
  json?: boolean;
}

export function emit<T>(data: T, options: OutputOptions, render: (data: T) => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(data, null, 2)}\n` : `${render(data)}\n`);
}

/** A plain aligned table; the header row is upper-cased. */
export function table(headers: string[], rows: Array<Array<string | number | undefined>>): string {
  const cells = [
    headers.map((h) => h.toUpperCase()),
    ...rows.map((r) => r.map((c) => (c === undefined ? '-' : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

/** `key: value` lines, aligned (one resource). */
export function facts(rows: Array<[string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows
    .map(
      ([k, v]) =>
        `${`${k}:`.padEnd(width + 1)}  ${v === undefined || v === null ? '-' : String(v)}`,
    )
    .join('\n');
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function exitCodeForStatus(status: number): number {
  if (status === 404) return EXIT.notFound;
  if (status === 409 || status === 412) return EXIT.conflict;
  if (status === 401 || status === 403) return EXIT.unauthorized;
  if (status >= 400 && status < 500) return EXIT.usage;
  return EXIT.server;
}

interface ProblemLike {
  title?: unknown;
  detail?: unknown;
  issues?: unknown;
}

/** The problem's words, never a schema path: `(root)` names nothing a user typed. */
export function problemMessage(problem: ProblemLike | undefined, fallback: string): string {
  const issues = Array.isArray(problem?.issues)
    ? (problem.issues as Array<{ path?: unknown; message?: unknown }>)
    : [];
  if (issues.length > 0) {
    return issues
      .map((i) =>
        i.path && i.path !== '(root)'
          ? `${String(i.path)}: ${String(i.message)}`
          : String(i.message),
      )
      .join('; ');
  }
  const detail =
    typeof problem?.detail === 'string' ? problem.detail.replace(/^\(root\):\s*/, '') : undefined;
  const title = typeof problem?.title === 'string' ? problem.title : undefined;
  return detail ?? title ?? fallback;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'EAI_AGAIN',
]);

/** The one line and the exit code for anything a command throws. */
export function describeError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  const e = err as {
    name?: string;
    status?: unknown;
    problem?: ProblemLike;
    body?: unknown;
    code?: unknown;
    cause?: { code?: unknown };
  };
  if (
    (e?.name === 'ContentApiError' || e?.name === 'MirrorsApiError') &&
    typeof e.status === 'number'
  ) {
    const service = e.name === 'ContentApiError' ? 'content' : 'mirrors';
    const problem =
      e.problem ??
      (typeof e.body === 'object' && e.body !== null ? (e.body as ProblemLike) : undefined);
    return {
      message: `${problemMessage(problem, `${service} API answered ${e.status}`)}`,
      exitCode: exitCodeForStatus(e.status),
    };
  }
  const code =
    typeof e?.code === 'string'
      ? e.code
      : typeof e?.cause?.code === 'string'
        ? e.cause.code
        : undefined;
  if (code && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) {
    return {
      message: `cannot reach the server (${code}); is Flotilla running? (--url, FLOTILLA_<SERVICE>_URL)`,
      exitCode: EXIT.server,
    };
  }
  return { message: err instanceof Error ? err.message : String(err), exitCode: EXIT.failed };
}

/** Prints the error as one line on stderr and exits with the convention's code. */
export async function fail(err: unknown): Promise<never> {
  // Commander has printed its own message (usage errors) or the help (exit 0) already.
  const commander = err as { name?: string; code?: unknown; exitCode?: unknown };
  if (commander?.name === 'CommanderError' && typeof commander.code === 'string') {
    // `--help` and `--version` succeed; help shown because a command was missing is a usage error.
    const asked =
      commander.code === 'commander.helpDisplayed' || commander.code === 'commander.version';
    process.exit(asked ? EXIT.ok : EXIT.usage);
  }
  // A ConfigError comes from a loaded kit, so this import costs nothing then; the CLI does not
  // load kit up front.
  const { isConfigError } = await import('@flotilla/kit');
  const { message, exitCode } = isConfigError(err)
    ? { message: String((err as Error).message), exitCode: EXIT.config }
    : describeError(err);
  process.stderr.write(`flotilla: ${message.split('\n')[0]}\n`);
  process.exit(exitCode);
}

/** How the CLI talks to people and scripts: one readable line on error, `--json` for scripts. */

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
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
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
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

/** Prints the error as one line and exits non-zero (78, EX_CONFIG, for bad configuration). */
export async function fail(err: unknown): Promise<never> {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`flotilla: ${message.split('\n')[0]}\n`);
  // A ConfigError comes from a loaded kit, so this import costs nothing then; the CLI does not
  // load kit up front.
  const { isConfigError } = await import('@flotilla/kit');
  process.exit(err instanceof CliError ? err.exitCode : isConfigError(err) ? 78 : 1);
}

/**
 * Readiness: named dependency checks (store, bus, published tree…) run on `GET /readyz`,
 * in parallel, each bounded by a timeout. A check fails by throwing, rejecting, timing out
 * or returning `false`. A check that returns a `ReadinessWarning` passes with status `warn`
 * and its message as `detail` (e.g. "storage low": reads still work, so the probe stays up).
 */

export type ReadinessCheck = () => unknown;

/** What a check returns to pass with a warning. */
export interface ReadinessWarning {
  warning: string;
}

function isWarning(value: unknown): value is ReadinessWarning {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { warning?: unknown }).warning === 'string'
  );
}

export interface ReadinessCheckSpec {
  name: string;
  check: ReadinessCheck;
  timeoutMs?: number;
}

export type ReadinessChecks =
  Readonly<Record<string, ReadinessCheck>> | readonly ReadinessCheckSpec[] | Readiness;

export interface ReadinessCheckResult {
  status: 'ok' | 'warn' | 'fail';
  ms: number;
  error?: string;
  /** A warning's message. */
  detail?: string;
}

export interface ReadinessReport {
  status: 'ok' | 'fail' | 'draining';
  checks: Record<string, ReadinessCheckResult>;
}

export const DEFAULT_READINESS_TIMEOUT_MS = 2000;

export class Readiness {
  readonly #checks = new Map<string, { check: ReadinessCheck; timeoutMs: number }>();
  readonly #defaultTimeoutMs: number;
  #draining = false;

  constructor(checks?: ReadinessChecks, options: { timeoutMs?: number } = {}) {
    this.#defaultTimeoutMs = options.timeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS;
    if (checks instanceof Readiness) {
      for (const [name, entry] of checks.#checks) this.#checks.set(name, entry);
    } else if (Array.isArray(checks)) {
      for (const spec of checks as readonly ReadinessCheckSpec[])
        this.add(spec.name, spec.check, spec);
    } else if (checks) {
      for (const [name, check] of Object.entries(checks as Record<string, ReadinessCheck>))
        this.add(name, check);
    }
  }

  /** Registers (or replaces) a named check. */
  add(name: string, check: ReadinessCheck, options: { timeoutMs?: number } = {}): this {
    this.#checks.set(name, { check, timeoutMs: options.timeoutMs ?? this.#defaultTimeoutMs });
    return this;
  }

  /** While draining (shutting down) the service reports not ready, so balancers move away. */
  setDraining(draining = true): void {
    this.#draining = draining;
  }

  get draining(): boolean {
    return this.#draining;
  }

  async run(): Promise<ReadinessReport> {
    const entries = [...this.#checks];
    const results = await Promise.all(
      entries.map(([, { check, timeoutMs }]) => runCheck(check, timeoutMs)),
    );
    const checks: Record<string, ReadinessCheckResult> = {};
    let ok = true;
    entries.forEach(([name], i) => {
      const r = results[i] as ReadinessCheckResult;
      checks[name] = r;
      if (r.status === 'fail') ok = false;
    });
    return { status: this.#draining ? 'draining' : ok ? 'ok' : 'fail', checks };
  }
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<ReadinessCheckResult> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    const value = await Promise.race([Promise.resolve().then(check), timeout]);
    if (value === false)
      return { status: 'fail', ms: elapsed(), error: 'check reported not ready' };
    if (isWarning(value)) return { status: 'warn', ms: elapsed(), detail: value.warning };
    return { status: 'ok', ms: elapsed() };
  } catch (err) {
    return {
      status: 'fail',
      ms: elapsed(),
      error: err instanceof Error ? err.message : String(err),
    };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

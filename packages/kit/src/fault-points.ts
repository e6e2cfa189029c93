/**
 * Named points on write paths where a fault-injection test can kill the process.
 *
 * `FLOTILLA_FAULT_POINT=<name>[:<n>]` makes the n-th (default first) call of
 * `faultPoint(<name>)` send SIGKILL to its own process, so a test can stop a service exactly
 * between two writes and check what a restart makes of it. Unset (production), a call costs
 * one comparison.
 */

interface FaultSpec {
  name: string;
  remaining: number;
}

function parseFaultSpec(value: string | undefined): FaultSpec | undefined {
  if (value === undefined || value === '') return undefined;
  const match = /^([a-z0-9.-]+)(?::([1-9][0-9]*))?$/.exec(value);
  if (match === null) throw new Error(`FLOTILLA_FAULT_POINT must be <name>[:<n>], got ${value}`);
  return { name: match[1]!, remaining: Number(match[2] ?? 1) };
}

// Read once per process: the variable belongs to the process, like its pid.
const spec = parseFaultSpec(process.env.FLOTILLA_FAULT_POINT);

/** Kills this process with SIGKILL when the test that started it chose this point. */
export function faultPoint(name: string): void {
  if (spec === undefined || spec.name !== name) return;
  spec.remaining -= 1;
  if (spec.remaining === 0) process.kill(process.pid, 'SIGKILL');
}

export { parseFaultSpec };

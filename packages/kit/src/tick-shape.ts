/**
 * Keeps node's `process.nextTick` on its fast path for the life of the process.
 *
 * `nextTick` builds every tick object from one object literal whose first two keys are
 * computed symbols. V8 records the object's hidden class (its map) in that literal's feedback,
 * and holds maps weakly. A full GC that runs while no tick object happens to be alive (common
 * while a service starts: it loads a GeoIP database or builds an index between ticks) frees
 * the map; the next tick object gets a new one, the recorded map no longer matches, and the
 * feedback turns megamorphic for good. From then on every tick goes through V8's runtime
 * (`Runtime_DefineKeyedOwnPropertyInLiteral`), which cost the redirector about 2.5 µs of CPU
 * per request, several times what its own code costs. Which processes fell into that state depended on
 * when their collections happened to run, so identical processes differed.
 *
 * Keeping one tick object alive keeps its map, and the maps it was built from, alive.
 * Entry points import `@flotilla/kit/tick-shape` before anything else, so the map is pinned
 * before any code records it. The evidence is in docs/bench/mirrors.md.
 */
import { createHook } from 'node:async_hooks';

const kept: object[] = [];

/** Captures one tick object through a momentary async hook and keeps it. Idempotent. */
export function keepTickObjectShape(): void {
  if (kept.length > 0) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept.length === 0) kept.push(resource);
    },
  });
  hook.enable();
  try {
    process.nextTick(() => undefined);
  } finally {
    hook.disable();
  }
}

/** The tick object kept alive, if any: for tests. */
export function keptTickObject(): object | undefined {
  return kept[0];
}

keepTickObjectShape();

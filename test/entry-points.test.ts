import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

// Every process entry point must keep a tick object before any other module is evaluated
// (packages/kit/src/tick-shape.ts explains why), then set the heap's growth before any service
// allocates (packages/kit/src/heap-growth.ts); ES modules evaluate in import order.
const ENTRY_POINTS = [
  'services/cli/src/main.ts',
  'services/registry/src/main.ts',
  'services/crane/src/main.ts',
  'services/mirrors/src/main.ts',
  'services/content/src/main.ts',
];

describe('entry points', () => {
  it.each(ENTRY_POINTS)(
    '%s imports @flotilla/kit/tick-shape, then @flotilla/kit/heap-growth, before anything else',
    async (path) => {
      const source = await readFile(new URL(`../${path}`, import.meta.url), 'utf8');
      const imports = source.split('\n').filter((line) => /^import\b/.test(line));
      expect(imports.slice(0, 2)).toEqual([
        "import '@flotilla/kit/tick-shape';",
        "import '@flotilla/kit/heap-growth';",
      ]);
    },
  );
});

import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

// Every process entry point must keep a tick object before any other module is evaluated
// (packages/kit/src/tick-shape.ts explains why); ES modules evaluate in import order.
const ENTRY_POINTS = [
  'services/cli/src/main.ts',
  'services/registry/src/main.ts',
  'services/crane/src/main.ts',
  'services/mirrors/src/main.ts',
  'services/content/src/main.ts',
];

describe('entry points', () => {
  it.each(ENTRY_POINTS)(
    '%s imports @flotilla/kit/tick-shape before anything else',
    async (path) => {
      const source = await readFile(new URL(`../${path}`, import.meta.url), 'utf8');
      const firstImport = source.split('\n').find((line) => /^import\b/.test(line));
      expect(firstImport).toBe("import '@flotilla/kit/tick-shape';");
    },
  );
});

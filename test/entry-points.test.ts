import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isEntryPoint } from '@flotilla/kit';
import { describe, expect, it } from 'vitest';

// Each service's main.ts starts itself only when it is the script node runs, and decides that
// with kit's one check (a symlinked bin must count as the entry point, a relative argv[1] too).
const SERVICE_ENTRY_POINTS = [
  'services/registry/src/main.ts',
  'services/crane/src/main.ts',
  'services/mirrors/src/main.ts',
  'services/redirector/src/main.ts',
  'services/content/src/main.ts',
];

describe('entry points', () => {
  it.each(SERVICE_ENTRY_POINTS)(
    '%s decides with kit isEntryPoint(import.meta.url)',
    async (path) => {
      const source = await readFile(new URL(`../${path}`, import.meta.url), 'utf8');
      expect(source).toMatch(/^if \(isEntryPoint\(import\.meta\.url\)\) \{$/m);
      expect(source).not.toMatch(/argv\[1\]/);
    },
  );

  it('isEntryPoint follows symlinks and rejects other scripts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-entry-'));
    try {
      const script = join(dir, 'main.js');
      await writeFile(script, '');
      await symlink(script, join(dir, 'bin'));
      const url = pathToFileURL(script).href;
      expect(isEntryPoint(url, script)).toBe(true);
      expect(isEntryPoint(url, join(dir, 'bin'))).toBe(true);
      expect(isEntryPoint(url, join(dir, 'other.js'))).toBe(false);
      expect(isEntryPoint(url, undefined)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

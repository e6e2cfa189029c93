import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Whether the module at `moduleUrl` (pass `import.meta.url`) is the script node was started
 * with. Both sides go through realpath, so a symlinked bin or a relative argv[1] still match.
 */
export function isEntryPoint(
  moduleUrl: string,
  entry: string | undefined = process.argv[1],
): boolean {
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

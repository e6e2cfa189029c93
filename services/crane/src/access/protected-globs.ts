/**
 * `FLOTILLA_CRANE_PROTECTED`: repository globs that need credentials. `*` matches within one
 * path component, `**` across components, `?` one character other than `/`.
 * `fedora/internal/*` protects `fedora/internal/httpd` but not `fedora/internal/a/b`;
 * `private/**` protects everything under `private/`.
 */
export function compileProtectedGlobs(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false;
  const patterns = globs.map((glob) => {
    let source = '';
    for (let i = 0; i < glob.length; i++) {
      const c = glob[i]!;
      if (c === '*' && glob[i + 1] === '*') {
        source += '.*';
        i++;
      } else if (c === '*') source += '[^/]*';
      else if (c === '?') source += '[^/]';
      else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${source}$`);
  });
  return (name) => patterns.some((p) => p.test(name));
}

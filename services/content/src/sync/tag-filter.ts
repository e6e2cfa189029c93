/** Include/exclude tag globs: `*` matches any run of characters, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const ch of glob) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export function createTagFilter(
  include: string[] = [],
  exclude: string[] = [],
): (tag: string) => boolean {
  const inc = include.map(globToRegExp);
  const exc = exclude.map(globToRegExp);
  return (tag) =>
    (inc.length === 0 || inc.some((re) => re.test(tag))) && !exc.some((re) => re.test(tag));
}

/**
 * Every relative link in the repository's Markdown resolves: the file (or folder) exists,
 * and a `#fragment` names a heading of the target file (GitHub's slugs).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/flotilla.js';

const files = execFileSync(
  'git',
  ['ls-files', '--cached', '--others', '--exclude-standard', '*.md'],
  { cwd: repoRoot, encoding: 'utf8' },
)
  .split('\n')
  .filter((f) => f !== '' && existsSync(join(repoRoot, f)));

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = heading[1]!
      .replace(/`|\*\*|__/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    slugs.add(n === 0 ? base : `${base}-${n}`);
  }
  return slugs;
}

/** Inline links and images outside code, as `[text](target "title")`. */
function linksOf(markdown: string): string[] {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...withoutCode.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map(
    (m) => m[1]!,
  );
}

describe('Markdown links', () => {
  it('finds the Markdown files', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('docs/architecture.md');
  });

  it.each(files)('%s: every relative link resolves', (file) => {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const broken: string[] = [];
    for (const link of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue;
      const [pathPart, fragment] = link.split('#', 2) as [string, string | undefined];
      const target =
        pathPart === ''
          ? join(repoRoot, file)
          : join(repoRoot, dirname(file), decodeURIComponent(pathPart));
      if (!existsSync(target)) {
        broken.push(`${link} (no ${relative(repoRoot, target)})`);
        continue;
      }
      if (fragment !== undefined && statSync(target).isFile() && target.endsWith('.md')) {
        if (!headingSlugs(readFileSync(target, 'utf8')).has(fragment.toLowerCase()))
          broken.push(`${link} (no heading #${fragment})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('makes GitHub slugs', () => {
    const slugs = headingSlugs(
      '# Flotilla — design\n## The `published` tree\n## Two ways\n## Two ways\n```\n# not a heading\n```\n',
    );
    expect([...slugs]).toEqual([
      'flotilla--design',
      'the-published-tree',
      'two-ways',
      'two-ways-1',
    ]);
  });
});

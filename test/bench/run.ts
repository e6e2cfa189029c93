/**
 * `npm run bench [-- module ...]`: runs the bench modules (test/bench/<name>.ts), prints one
 * table of ours vs the peer, and writes `.bench/results.json`. BENCH_QUICK=1 shortens runs.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchModule, BenchRow } from './lib.js';
import { repoRoot } from './lib.js';

const here = join(repoRoot, 'test', 'bench');
const available = (await readdir(here))
  .filter((f) => f.endsWith('.ts') && !['lib.ts', 'run.ts'].includes(f))
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const modules = wanted.length ? wanted : available;
const unknown = modules.filter((m) => !available.includes(m));
if (unknown.length) {
  console.error(
    `unknown bench module(s): ${unknown.join(', ')}; available: ${available.join(', ')}`,
  );
  process.exit(2);
}

const rows: BenchRow[] = [];
const failures: string[] = [];
for (const name of modules) {
  const workDir = await mkdtemp(join(tmpdir(), `flotilla-bench-${name}-`));
  const started = Date.now();
  console.log(`\n== ${name} ==`);
  try {
    const mod = (await import(join(here, `${name}.ts`))) as { default: BenchModule };
    const out = await mod.default({
      workDir,
      quick: process.env.BENCH_QUICK === '1',
      log: (m) => console.log(`  [${name}] ${m}`),
    });
    rows.push(...out);
  } catch (err) {
    failures.push(`${name}: ${(err as Error).stack ?? String(err)}`);
    console.error(`  [${name}] failed: ${(err as Error).message}`);
  } finally {
    await rm(workDir, { recursive: true, force: true });
    console.log(`  [${name}] ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

const fmt = (n: number | undefined) =>
  n === undefined
    ? ''
    : Number.isFinite(n)
      ? Math.abs(n) >= 100
        ? n.toFixed(0)
        : n.toFixed(2)
      : String(n);
const table = [
  '| group | metric | ours | peer | unit | ratio | target | pass |',
  '|---|---|---:|---:|---|---:|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.group} | ${r.metric}${r.note ? ` (${r.note})` : ''} | ${fmt(r.ours)} | ${fmt(r.theirs)} | ${r.unit} | ${
        r.ratio === undefined ? '' : `${fmt(r.ratio)}×`
      } | ${r.target ?? ''} | ${r.pass === undefined ? '' : r.pass ? 'yes' : 'NO'} |`,
  ),
].join('\n');
console.log(`\n${table}\n`);
await mkdir(join(repoRoot, '.bench'), { recursive: true });
await writeFile(
  join(repoRoot, '.bench', 'results.json'),
  JSON.stringify({ time: new Date().toISOString(), rows, failures }, null, 2),
);
if (failures.length) {
  console.error(failures.join('\n\n'));
  process.exit(1);
}

/**
 * `npm run bench [-- module ...]`: measures the machine's ceilings, runs the bench modules
 * (test/bench/<name>.ts), prints one table of ours vs the peer and the ceilings, writes
 * `.bench/results.json`, and plots every curve to SVG: into docs/bench/plots/ on a full run,
 * into .bench/plots/ with BENCH_QUICK=1 (the smallest sizes only).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ceilingRows, measureCeilings } from './ceilings.js';
import type { BenchModule, BenchRow, Curve } from './lib.js';
import { repoRoot } from './lib.js';
import { curveSvg } from './plot.js';

const here = join(repoRoot, 'test', 'bench');
const available = (await readdir(here))
  .filter((f) => f.endsWith('.ts') && !['lib.ts', 'run.ts', 'ceilings.ts', 'plot.ts'].includes(f))
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

const quick = process.env.BENCH_QUICK === '1';
const rows: BenchRow[] = [];
const curves: Curve[] = [];
const failures: string[] = [];

console.log('\n== machine ==');
const ceilingDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-machine-'));
const ceilings = await measureCeilings(ceilingDir, quick, (m) => console.log(`  [machine] ${m}`));
await rm(ceilingDir, { recursive: true, force: true });
rows.push(...ceilingRows(ceilings, quick));

for (const name of modules) {
  const workDir = await mkdtemp(join(tmpdir(), `flotilla-bench-${name}-`));
  const started = Date.now();
  console.log(`\n== ${name} ==`);
  try {
    const mod = (await import(join(here, `${name}.ts`))) as { default: BenchModule };
    const out = await mod.default({
      workDir,
      quick,
      ceilings,
      log: (m) => console.log(`  [${name}] ${m}`),
      curve: (c) => curves.push(c),
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
const plotDir = quick
  ? join(repoRoot, '.bench', 'plots')
  : join(repoRoot, 'docs', 'bench', 'plots');
await mkdir(plotDir, { recursive: true });
for (const c of curves) {
  await writeFile(join(plotDir, `${c.id}.svg`), await curveSvg(c));
  console.log(`plot: ${join(plotDir, `${c.id}.svg`)}`);
}
await mkdir(join(repoRoot, '.bench'), { recursive: true });
await writeFile(
  join(repoRoot, '.bench', 'results.json'),
  JSON.stringify(
    { time: new Date().toISOString(), quick, ceilings, rows, curves, failures },
    null,
    2,
  ),
);
if (failures.length) {
  console.error(failures.join('\n\n'));
  process.exit(1);
}

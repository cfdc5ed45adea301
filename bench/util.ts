/**
 * Shared bench plumbing: tinybench tasks that run an inner loop (so a ~20 ns operation is not
 * drowned by the harness's per-call cost), a ratio table against baselines measured in the same
 * run, goals, and JSON output under bench/results/ in the format of src/cli/results.ts (which the
 * HTML report reads).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { RESULTS_DIR, type Goal, type Row, type RunInfo, type SuiteResults } from '../src/cli/results.js';

export type { Goal, Row };

/** Runs each `[name, fn]` where fn performs `inner` operations; returns ns per operation. */
export async function measure(tasks: [string, () => void][], inner: number, timeMs = 400): Promise<Map<string, number>> {
  const bench = new Bench({ time: timeMs, warmup: true, warmupTime: 100 });
  for (const [name, fn] of tasks) bench.add(name, fn);
  await bench.run();
  const out = new Map<string, number>();
  for (const t of bench.tasks) {
    const r = t.result as unknown as { latency?: { p50?: number; mean: number } } | undefined;
    const ms = r?.latency?.p50 ?? r?.latency?.mean;
    if (ms === undefined) throw new Error(`bench task ${t.name} produced no result`);
    out.set(t.name, (ms * 1e6) / inner);
  }
  return out;
}

/** Builds a row, with a ratio against `baseline` when given and a `≤ x` / `≥ x` target check. */
export function row(results: Map<string, number>, name: string, baseline?: string, target?: { max?: number; minOpsPerSec?: number }): Row {
  const ns = results.get(name)!;
  const r: Row = { name, nsPerOp: ns, opsPerSec: 1e9 / ns };
  if (baseline) {
    r.baseline = baseline;
    r.ratio = ns / results.get(baseline)!;
  }
  if (target?.max !== undefined && r.ratio !== undefined) {
    r.target = `≤ ${target.max}×`;
    r.targetMaxRatio = target.max;
    r.met = r.ratio <= target.max;
  }
  if (target?.minOpsPerSec !== undefined) {
    r.target = `≥ ${(target.minOpsPerSec / 1e6).toFixed(1)} M/s`;
    r.targetMinOpsPerSec = target.minOpsPerSec;
    r.met = r.opsPerSec >= target.minOpsPerSec;
  }
  return r;
}

export function printTable(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  const lines = rows.map((r) => [
    r.name,
    r.nsPerOp.toFixed(1),
    (r.opsPerSec / 1e6).toFixed(2),
    r.baseline ?? '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'met' : 'MISSED',
  ]);
  const head = ['task', 'ns/op', 'M ops/s', 'baseline', 'ratio', 'target', ''];
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => l.map((c, i) => (i === 0 || i === 3 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  console.log(fmt(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const l of lines) console.log(fmt(l));
}

/** A goal on a derived figure, checked: `measured op target`. */
export function goal(name: string, measured: number, unit: Goal['unit'], op: Goal['op'], target: number): Goal {
  return { name, measured, unit, op, target, met: op === '≤' ? measured <= target : measured >= target };
}

/** Where and when this run happened, for the results file. */
export function runInfo(): Required<RunInfo> {
  return { date: new Date().toISOString(), node: process.version, cores: availableParallelism() };
}

/** Writes `data` to bench/results/<suite>.json (next to the sources, whether run from dist or not). */
export function writeResults<S extends keyof SuiteResults>(suite: S, data: SuiteResults[S]): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${suite}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2));
  return file;
}

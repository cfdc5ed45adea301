/**
 * Comparing a run with an earlier one (`fencelab bench --baseline FILE`). Every row a suite reports
 * (a core or chain row, an allocator cell, a wake or piscina variant, a contention cell or workload
 * row, a goal) has one headline figure: its ratio to the baseline measured in the same run when it has
 * one (that ratio is what the suites exist to measure, and it carries across machines better than
 * a raw time), otherwise its own value. A row's change is its headline figure against the same
 * row's in the earlier run, matched by key.
 */
import type {
  AllocCell,
  AllocResults,
  ChainResults,
  ContentionCell,
  ContentionResults,
  CoreResults,
  FenceWorkloadRow,
  Goal,
  PiscinaResults,
  PiscinaVariant,
  Row,
  Suite,
  SuiteResults,
  WakeResults,
  WakeVariant,
} from './schema.js';

export type Unit = '×' | 'ns' | 'µs' | 'M/s';

/** The number a row is compared by. */
export interface Figure {
  /** Names the row across runs (a task with its same-run baseline, a lock kind at a worker count). */
  key: string;
  value: number;
  unit: Unit;
  better: 'lower' | 'higher';
}

/** Changes smaller than this (relative) are shown as unchanged: run-to-run noise is about this size. */
export const NOISE = 0.05;

/** A row's figure in this run against the same row's in the baseline run. */
export interface Change {
  before: number;
  after: number;
  unit: Unit;
  /** after / before − 1 (0.1 = 10 % more). */
  relative: number;
  /** Beyond ±{@link NOISE}, in the row's good direction or not. */
  verdict: 'better' | 'worse' | 'same';
}

export function rowFigure(r: Row): Figure {
  return r.ratio !== undefined
    ? { key: `${r.name} ÷ ${r.baseline}`, value: r.ratio, unit: '×', better: 'lower' }
    : { key: r.name, value: r.nsPerOp, unit: 'ns', better: 'lower' };
}

/**
 * A row's ratio as printed: `1.10×`, or with the interquartile range of its rounds when it was
 * measured in paired rounds, `1.01× (IQR 0.98–1.04)`; empty without a ratio.
 */
export function ratioText(r: Row): string {
  if (r.ratio === undefined) return '';
  const q = r.ratioQuartiles;
  return q === undefined ? `${r.ratio.toFixed(2)}×` : `${r.ratio.toFixed(2)}× (IQR ${q[0].toFixed(2)}–${q[1].toFixed(2)})`;
}

export function variantFigure(v: WakeVariant): Figure {
  return v.ratioP50 !== undefined
    ? { key: `${v.name} p50 ÷ ${v.baseline}`, value: v.ratioP50, unit: '×', better: 'lower' }
    : { key: `${v.name} p50`, value: v.latencyNs.p50 / 1000, unit: 'µs', better: 'lower' };
}

export function cellFigure(c: ContentionCell): Figure {
  const at = `${c.kind}, ${c.threads} workers${c.csNs ? `, ${c.csNs} ns in the lock` : ''}`;
  return c.ratio !== undefined
    ? { key: `${at} ÷ ${c.baseline}`, value: c.ratio, unit: '×', better: 'higher' }
    : { key: at, value: c.mOpsPerSec, unit: 'M/s', better: 'higher' };
}

export function workloadFigure(w: FenceWorkloadRow): Figure {
  const at = `fence workload: ${w.variant}, ${w.threads} workers`;
  return w.ratio !== undefined
    ? { key: `${at} ÷ ${w.baseline}`, value: w.ratio, unit: '×', better: 'higher' }
    : { key: at, value: w.kFencesPerSec / 1000, unit: 'M/s', better: 'higher' };
}

export function allocFigure(c: AllocCell): Figure {
  const at = `${c.impl}, ${c.threads} workers, ${c.live} live`;
  return c.ratio !== undefined
    ? { key: `${at} ÷ ${c.baseline}`, value: c.ratio, unit: '×', better: 'lower' }
    : { key: at, value: c.mOpsPerSec, unit: 'M/s', better: 'higher' };
}

export function piscinaFigure(v: PiscinaVariant): Figure {
  const at = `${v.schedule}: ${v.name} p50`;
  return v.ratioP50 !== undefined
    ? { key: `${at} ÷ ${v.baseline}`, value: v.ratioP50, unit: '×', better: 'lower' }
    : { key: at, value: v.latencyNs.p50 / 1000, unit: 'µs', better: 'lower' };
}

export function goalFigure(g: Goal): Figure {
  return { key: `goal: ${g.name}`, value: g.measured, unit: g.unit, better: g.op === '≤' ? 'lower' : 'higher' };
}

/** The figures of a baseline run's rows, by key, for {@link changeOf}. */
export type BaselineFigures = ReadonlyMap<string, Figure>;

export function indexFigures(figures: Figure[]): BaselineFigures {
  return new Map(figures.map((f) => [f.key, f]));
}

/** `f` against the same row of the baseline run; undefined when that run lacks the row. */
export function changeOf(f: Figure, baseline: BaselineFigures): Change | undefined {
  const b = baseline.get(f.key);
  if (b === undefined || b.unit !== f.unit || !(b.value > 0)) return undefined;
  const relative = f.value / b.value - 1;
  const verdict = Math.abs(relative) < NOISE ? 'same' : (relative < 0) === (f.better === 'lower') ? 'better' : 'worse';
  return { before: b.value, after: f.value, unit: f.unit, relative, verdict };
}

/** A figure as printed: `1.23×`, `206.8 ns`, `9.08 µs`, `29.2 M/s`. */
export function formatFigure(value: number, unit: Unit): string {
  if (unit === '×') return `${value.toFixed(2)}×`;
  if (unit === 'ns') return `${value.toFixed(1)} ns`;
  if (unit === 'µs') return `${value.toFixed(2)} µs`;
  return `${Number(value.toPrecision(3))} M/s`;
}

/** A change as printed: `−4.1% better`, `+12.0% worse`, `+1.3% same`. */
export function formatChange(c: Change): string {
  const pct = `${c.relative < 0 ? '−' : '+'}${Math.abs(c.relative * 100).toFixed(1)}%`;
  return `${pct} ${c.verdict}`;
}

/** Every row's figure of one suite's results (rows, variants or cells, then goals), for {@link indexFigures}. */
export function suiteFigures<S extends Suite>(suite: S, results: SuiteResults[S]): Figure[] {
  const r = results as SuiteResults[Suite];
  switch (suite) {
    case 'core':
    case 'chain':
      return (r as CoreResults | ChainResults).rows.map(rowFigure);
    case 'wake':
      return [...(r as WakeResults).variants.map(variantFigure), ...(r as WakeResults).goals.map(goalFigure)];
    case 'alloc':
      return [...(r as AllocResults).cells.map(allocFigure), ...(r as AllocResults).goals.map(goalFigure)];
    case 'contention': {
      const c = r as ContentionResults;
      return [...c.results.map(cellFigure), ...(c.workload ?? []).map(workloadFigure), ...(c.goals ?? []).map(goalFigure)];
    }
    case 'piscina': {
      const p = r as PiscinaResults;
      return [...p.chain.map(rowFigure), ...p.variants.map(piscinaFigure), ...p.goals.map(goalFigure)];
    }
  }
  throw new Error(`unknown suite ${String(suite)}`);
}

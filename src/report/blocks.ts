/**
 * Building blocks of the benchmark report (html.ts): colours, bar and line charts, tables, the
 * baseline comparison of one figure, and a suite section's frame.
 */
import type { ChartConfiguration } from 'chart.js';
import { changeOf, formatChange, formatFigure, goalFigure, ratioText, rowFigure, type BaselineFigures, type Change, type Figure } from './compare.js';
import { type Goal, type Row, type RunInfo, type Suite, type SuiteResults } from './schema.js';

export const TITLES: Record<Suite, string> = {
  core: 'core — single-thread costs against same-run baselines',
  wake: 'wake — signal → wake latency across threads',
  chain: 'chain — fence chain operations',
  contention: 'contention — locks and fences across workers',
  alloc: 'alloc — the allocator across threads',
  piscina: 'piscina — task completion through out-fences against pool.run',
};

export const COLOR = { met: '#2e7d32', missed: '#c62828', noTarget: '#78909c', target: '#000000', baseline: '#90caf9', baselineBorder: '#1565c0' };
/** One colour per series (percentile, lock kind), in order; `BASELINE_SERIES` is the same hue, lighter. */
export const SERIES = ['#1565c0', '#ef6c00', '#6a1b9a', '#2e7d32', '#c62828', '#00838f', '#ad1457', '#5d4037'];
export const BASELINE_SERIES = ['#90caf9', '#ffcc80', '#ce93d8', '#a5d6a7', '#ef9a9a', '#80deea', '#f48fb1', '#bcaaa4'];
/** Heights in CSS pixels: a horizontal bar's slot, each further bar in a group, axes and legend. */
export const BAR_SLOT_PX = 34;
export const GROUPED_BAR_PX = 12;
export const LABEL_LINE_PX = 14;
export const CHART_FRAME_PX = 70;
export const LINE_CHART_PX = 320;

export type Config = ChartConfiguration<'bar' | 'line', (number | null)[], string | string[]>;
export type Charts = [id: string, config: Config][];
/** A table cell: its text, and a class for the met / missed and better / worse colours. */
export type Cell = string | { text: string; cls: string };
/** What a suite contributes: its HTML, the charts its canvases show, its targets' outcomes and its rows' changes. */
export interface Section {
  html: string;
  charts: Charts;
  met: boolean[];
  changes: (Change | undefined)[];
}

/** Escapes text for HTML content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** The baseline run's results of one suite, and its rows' figures by key. */
export interface Baseline<S extends Suite> {
  results: SuiteResults[S] | undefined;
  figures: BaselineFigures;
}

/** Change of `f` against the baseline (undefined without one or when the baseline run lacks the row). */
export function changeFor(f: Figure, base: Baseline<Suite> | undefined): Change | undefined {
  return base === undefined ? undefined : changeOf(f, base.figures);
}

/** A chart label's extra line with the change, when there is a baseline. */
export function changeLine(f: Figure, base: Baseline<Suite> | undefined): string[] {
  if (base === undefined) return [];
  const c = changeOf(f, base.figures);
  return [c === undefined ? 'not in the baseline run' : `${formatChange(c)} (was ${formatFigure(c.before, c.unit)})`];
}

/**
 * One line per name (`values(name)` in label order, null where missing); with `before`, a dashed,
 * lighter line of the baseline run for each. The fence's locks are drawn thicker.
 */
export function lineDatasets(names: string[], values: (name: string) => (number | null)[], before?: (name: string) => (number | null)[]): Config['data']['datasets'] {
  const width = (name: string) => (name.startsWith('fence') ? 3.5 : 2);
  const datasets: Config['data']['datasets'] = names.map((name, i) => ({
    type: 'line',
    label: name,
    data: values(name).map(finite),
    borderColor: SERIES[i % SERIES.length],
    backgroundColor: SERIES[i % SERIES.length],
    borderWidth: width(name),
  }));
  if (before)
    names.forEach((name, i) => {
      const data = before(name).map(finite);
      // A line the baseline run has no figure for (a lock or a measure it did not have) would only
      // add an empty legend entry.
      if (data.every((v) => v === null)) return;
      datasets.push({
        type: 'line',
        label: `${name}, baseline run`,
        data,
        borderColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
        backgroundColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
        borderDash: [6, 4],
        borderWidth: width(name),
      });
    });
  return datasets;
}

/**
 * One bar series per name (`values(name)` in label order, null where missing); with `before`, each
 * followed by the baseline run's bars of that name in the same hue, lighter.
 */
export function barDatasets<N extends string>(names: readonly N[], values: (name: N) => (number | null)[], before?: (name: N) => (number | null)[]): Config['data']['datasets'] {
  const datasets: Config['data']['datasets'] = [];
  names.forEach((name, i) => {
    datasets.push({ type: 'bar', label: name, data: values(name), backgroundColor: SERIES[i % SERIES.length] });
    // No baseline series for a figure the baseline run did not have (a suite or measure added since).
    const old = before?.(name);
    if (old?.some((x) => x !== null)) datasets.push({ type: 'bar', label: `${name}, baseline run`, data: old, backgroundColor: BASELINE_SERIES[i % BASELINE_SERIES.length] });
  });
  return datasets;
}

/** A line chart over `labels`; the legend's entries drawn as short lines (dashed for the baseline run). */
export function lineChart(
  labels: string[],
  datasets: Config['data']['datasets'],
  xTitle: string,
  yTitle: string,
  range?: { min: number; max: number },
  yScale: 'linear' | 'logarithmic' = 'linear',
): Config {
  const values = datasets.flatMap((d) => (d.data as (number | null)[]).filter((v): v is number => v !== null));
  return {
    type: 'line',
    data: { labels, datasets },
    options: {
      ...COMMON_OPTIONS,
      plugins: { legend: { labels: { usePointStyle: true, pointStyle: 'line', pointStyleWidth: 28 } } },
      scales: {
        x: { title: { display: true, text: xTitle } },
        y: { type: yScale, ...(range ?? axisFloor(yScale, values)), title: { display: true, text: yTitle } },
      },
    },
  };
}

export function finite(v: number | null): number | null {
  return v === null || !Number.isFinite(v) ? null : v;
}

/* ───────────── building blocks ───────────── */

export const COMMON_OPTIONS = { responsive: true, maintainAspectRatio: false, animation: false } as const;

export interface Bar {
  label: string | string[];
  value: number;
  /** The baseline run's value: absent without a baseline, null when that run lacks the row. */
  before?: number | null;
  target?: number;
  met?: boolean;
}

/**
 * Horizontal bars coloured by their target's outcome, with each target drawn as a tick across its
 * bar (a line dataset without a line, whose points are rotated line markers), and the baseline
 * run's bars, light, below this run's when any bar has a baseline value.
 */
export function barChart(bars: Bar[], axis: string, scale: 'linear' | 'logarithmic'): Config {
  const withBaseline = bars.some((b) => b.before !== undefined);
  const datasets: Config['data']['datasets'] = [
    {
      type: 'bar',
      label: 'this run',
      data: bars.map((b) => b.value),
      backgroundColor: bars.map((b) => (b.met === undefined ? COLOR.noTarget : b.met ? COLOR.met : COLOR.missed)),
    },
  ];
  if (withBaseline)
    datasets.push({
      type: 'bar',
      label: 'baseline run',
      data: bars.map((b) => b.before ?? null),
      backgroundColor: COLOR.baseline,
      borderColor: COLOR.baselineBorder,
      borderWidth: 1,
    });
  if (bars.some((b) => b.target !== undefined))
    datasets.push({
      type: 'line',
      label: 'target',
      data: bars.map((b) => b.target ?? null),
      showLine: false,
      pointStyle: 'line',
      pointRotation: 90,
      pointRadius: withBaseline ? 18 : 12,
      pointHoverRadius: withBaseline ? 20 : 14,
      borderWidth: 3,
      borderColor: COLOR.target,
      // Datasets of lower order are drawn later: the ticks go over the bars they cross.
      order: -1,
    });
  const values = bars.flatMap((b) => [b.value, ...(typeof b.before === 'number' ? [b.before] : [])]);
  return {
    type: 'bar',
    data: { labels: bars.map((b) => b.label), datasets },
    options: {
      ...COMMON_OPTIONS,
      indexAxis: 'y',
      // The bars' colours and the ticks are explained in the caption; a legend would show one colour.
      plugins: { legend: { display: false } },
      scales: {
        x: { type: scale, ...axisFloor(scale, values), title: { display: true, text: axis } },
        y: { ticks: { autoSkip: false } },
      },
    },
  };
}

export function barLegend(base: Baseline<Suite> | undefined): string {
  return `Bar green: target met, red: missed, grey: no target; black tick: the target.${base ? ' Light blue bar under each: the baseline run.' : ''}`;
}

/**
 * Height of a horizontal bar chart with `categories` slots of `perCategory` bars each, whose
 * labels have `labelLines` lines.
 */
export function barsHeight(categories: number, perCategory = 1, labelLines = 1): number {
  const slot = Math.max(BAR_SLOT_PX + (perCategory - 1) * GROUPED_BAR_PX, labelLines * LABEL_LINE_PX + 8);
  return CHART_FRAME_PX + categories * slot;
}

/**
 * Where the value axis starts: zero on a linear axis; on a log axis the power of ten below the
 * smallest positive value, so that every bar, which starts at the axis, shows some length (with no
 * positive value, Chart.js picks).
 */
export function axisFloor(scale: 'linear' | 'logarithmic', values: number[]): { beginAtZero: true } | { min?: number } {
  if (scale === 'linear') return { beginAtZero: true };
  const low = Math.min(...values.filter((v) => v > 0));
  return Number.isFinite(low) ? { min: 10 ** Math.floor(Math.log10(low)) } : {};
}

export function chartBlock(id: string, heightPx: number, caption: string): string {
  return `<figure><div class="chart" style="height:${heightPx}px"><canvas id="${escapeHtml(id)}"></canvas></div><figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

export function section(suite: Suite, run: RunInfo, details: string, parts: string[]): string {
  const meta = [
    `run ${run.date ?? '–'}`,
    `Node ${run.node ?? '–'}`,
    ...(run.cpu ? [run.cpu] : []),
    `${run.cores ?? '–'} cores`,
    ...(run.load !== undefined ? [`load average ${run.load.toFixed(1)}`] : []),
    ...(details ? [details] : []),
    ...(run.quick ? ['quick'] : []),
  ].join(' · ');
  return `<section id="${suite}">\n<h2>${escapeHtml(TITLES[suite])}</h2>\n<p class="meta">${escapeHtml(meta)}</p>\n${parts.filter(Boolean).join('\n')}\n</section>`;
}

export function changeHead(base: Baseline<Suite> | undefined): string[] {
  return base ? ['baseline run', 'change'] : [];
}

/** The baseline run's figure and the change, coloured by verdict; nothing without a baseline. */
export function changeCells(f: Figure, base: Baseline<Suite> | undefined): Cell[] {
  if (base === undefined) return [];
  const c = changeOf(f, base.figures);
  if (c === undefined) return ['–', { text: 'not in the baseline run', cls: 'same' }];
  return [formatFigure(c.before, c.unit), { text: formatChange(c), cls: c.verdict }];
}

export function rowTable(rows: Row[], base: Baseline<Suite> | undefined): string {
  return htmlTable(
    ['task', 'ns/op', 'ratio', 'baseline', 'target', 'met', ...changeHead(base)],
    rows.map((x) => [
      x.name,
      x.nsPerOp.toFixed(1),
      ratioText(x),
      x.baseline ?? '',
      x.target ?? '',
      metCell(x.met),
      ...changeCells(rowFigure(x), base),
    ]),
    [3],
  );
}

export function goalTable(goals: Goal[], base: Baseline<Suite> | undefined): string {
  if (goals.length === 0) return '';
  const unit = (g: Goal) => (g.unit === '×' ? '×' : ' µs');
  return htmlTable(
    ['goal', 'measured', 'target', 'met', ...changeHead(base)],
    goals.map((g) => [g.name, `${g.measured.toFixed(2)}${unit(g)}`, `${g.op} ${g.target}${unit(g)}`, metCell(g.met), ...changeCells(goalFigure(g), base)]),
  );
}

/** A table; the columns in `text` (besides the first) hold names: left-aligned, and they may wrap. */
export function htmlTable(head: string[], rows: Cell[][], text: number[] = []): string {
  const td = (c: Cell, i: number) => {
    const cls = [...(typeof c === 'string' ? [] : [c.cls]), ...(text.includes(i) ? ['text'] : [])].join(' ');
    return `<td${cls ? ` class="${escapeHtml(cls)}"` : ''}>${escapeHtml(typeof c === 'string' ? c : c.text)}</td>`;
  };
  const th = (h: string, i: number) => `<th${text.includes(i) ? ' class="text"' : ''}>${escapeHtml(h)}</th>`;
  return `<table>\n<thead><tr>${head.map(th).join('')}</tr></thead>\n<tbody>\n${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
}

export function metCell(met: boolean | undefined): Cell {
  return met === undefined ? '' : met ? { text: 'met', cls: 'met' } : { text: 'MISSED', cls: 'missed' };
}

export function outcomes(rows: Row[]): boolean[] {
  return rows.flatMap((x) => (x.met === undefined ? [] : [x.met]));
}

/** The rows of a baseline run, by their figure's key (a task can appear twice with two baselines). */
export function rowsByFigure(rows: Row[] | undefined): Map<string, Row> {
  return new Map((rows ?? []).map((x) => [rowFigure(x).key, x] as const));
}

/** A chart label: one line, or several when more lines follow it. */
export function lines(first: string, more: string[]): string | string[] {
  return more.length === 0 ? first : [first, ...more];
}

export function nullable<T>(v: T | undefined, f: (v: T) => number): number | null {
  return v === undefined ? null : f(v);
}

/** Three significant digits without exponent noise: 47.8, 0.00035. */
export function significant(n: number): string {
  return String(Number(n.toPrecision(3)));
}


/**
 * The benchmark report: one self-contained HTML page with charts and tables for every suite of a run
 * (or of the results directory). Chart.js is inlined, so the page works offline and from a CI
 * artefact; the charts' data sits in one JSON element, drawn by a few lines of script. Given a
 * baseline run, every table row shows its figure in that run and the change (compare.ts), and every
 * chart draws the baseline run next to this one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ChartConfiguration } from 'chart.js';
import {
  NOISE,
  allocFigure,
  cellFigure,
  changeOf,
  formatChange,
  formatFigure,
  goalFigure,
  indexFigures,
  rowFigure,
  suiteFigures,
  variantFigure,
  workloadFigure,
  type BaselineFigures,
  type Change,
  type Figure,
} from './compare.js';
import { formatCs } from './text.js';
import {
  SUITES,
  type AllocCell,
  type AllocResults,
  type BenchResults,
  type BenchRun,
  type ChainResults,
  type ContentionCell,
  type ContentionResults,
  type CoreResults,
  type FenceWorkloadRow,
  type Goal,
  type Row,
  type RunInfo,
  type Suite,
  type SuiteResults,
  type WakeResults,
} from './schema.js';

/** The report's file name when it sits next to the results it shows (bench/results/). */
export const REPORT_FILE = 'report.html';
/** id of the `<script type="application/json">` element that maps each canvas id to its Chart.js config. */
export const CHART_DATA_ID = 'fencelab-charts';

const TITLES: Record<Suite, string> = {
  core: 'core — single-thread costs against same-run baselines',
  wake: 'wake — signal → wake latency across threads',
  chain: 'chain — fence chain operations',
  contention: 'contention — locks and fences across workers',
  alloc: 'alloc — the allocator across threads',
};

const COLOR = { met: '#2e7d32', missed: '#c62828', noTarget: '#78909c', target: '#000000', baseline: '#90caf9', baselineBorder: '#1565c0' };
/** One colour per series (percentile, lock kind), in order; `BASELINE_SERIES` is the same hue, lighter. */
const SERIES = ['#1565c0', '#ef6c00', '#6a1b9a', '#2e7d32', '#c62828', '#00838f', '#ad1457', '#5d4037'];
const BASELINE_SERIES = ['#90caf9', '#ffcc80', '#ce93d8', '#a5d6a7', '#ef9a9a', '#80deea', '#f48fb1', '#bcaaa4'];
/** Heights in CSS pixels: a horizontal bar's slot, each further bar in a group, axes and legend. */
const BAR_SLOT_PX = 34;
const GROUPED_BAR_PX = 12;
const LABEL_LINE_PX = 14;
const CHART_FRAME_PX = 70;
const LINE_CHART_PX = 320;

type Config = ChartConfiguration<'bar' | 'line', (number | null)[], string | string[]>;
type Charts = [id: string, config: Config][];
/** A table cell: its text, and a class for the met / missed and better / worse colours. */
type Cell = string | { text: string; cls: string };

/** The run the report shows, as the run file records it. */
export type RunHeader = Pick<BenchRun, 'date' | 'node' | 'cpu' | 'cores' | 'seed' | 'quick' | 'load'>;

export interface ReportOptions {
  /** Where and how the run ran, shown at the top; absent when the report is rebuilt from a results directory. */
  run?: RunHeader;
  /** An earlier run to compare with, and how to name it (its file and date). */
  baseline?: { results: BenchResults; label: string };
  /** Suites that failed in this run, with what happened: shown as failed, not as their older results. */
  failed?: Partial<Record<Suite, string>>;
}

/** What a suite contributes: its HTML, the charts its canvases show, its targets' outcomes and its rows' changes. */
interface Section {
  html: string;
  charts: Charts;
  met: boolean[];
  changes: (Change | undefined)[];
}

/** Escapes text for HTML content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Renders the report for `results`; a suite without results shows one line saying it was not run
 * (or that it failed). Reads Chart.js's UMD build from node_modules to inline it. Returns the whole
 * HTML document.
 */
export function renderReport(results: BenchResults, options: ReportOptions = {}): string {
  const sections = SUITES.map((suite) => suiteSection(suite, results, options));
  const met = sections.flatMap((s) => s.met);
  const missed = met.filter((m) => !m).length;
  const charts = Object.fromEntries(sections.flatMap((s) => s.charts));
  const failed = SUITES.filter((s) => options.failed?.[s] !== undefined);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fencelab benchmarks</title>
<style>${STYLE}</style>
</head>
<body>
<h1>fencelab benchmarks</h1>
${options.run ? `<p class="meta">${escapeHtml(runLine(options.run))}</p>\n` : ''}<p class="summary">Targets and goals: <span class="met">${met.length - missed} met</span>, <span class="${missed ? 'missed' : 'met'}">${missed} missed</span>. Ratios are task ÷ baseline, both measured in the same run.</p>
${failed.length ? `<p class="summary missed">Failed in this run: ${escapeHtml(failed.map((s) => `${s} (${options.failed![s]})`).join(', '))}.</p>\n` : ''}${options.baseline ? baselineSummary(options.baseline.label, sections.flatMap((s) => s.changes)) : ''}
${sections.map((s) => s.html).join('\n')}
<script>${inlineScript(chartJsSource())}</script>
<script type="application/json" id="${CHART_DATA_ID}">${scriptJson(charts)}</script>
<script>
for (const [id, config] of Object.entries(JSON.parse(document.getElementById('${CHART_DATA_ID}').textContent))) new Chart(document.getElementById(id), config);
</script>
</body>
</html>
`;
}

/** Writes the report for `results` to `file`; returns `file`. */
export function writeReport(file: string, results: BenchResults, options: ReportOptions = {}): string {
  writeFileSync(file, renderReport(results, options));
  return file;
}

function runLine(run: RunHeader): string {
  return [
    `run ${run.date}`,
    `Node ${run.node}`,
    run.cpu,
    `${run.cores} cores`,
    ...(run.load !== undefined ? [`load average ${run.load.toFixed(1)} at the start`] : []),
    `seed ${run.seed}`,
    ...(run.quick ? ['quick (fewer rounds, noisier)'] : []),
  ].join(' · ');
}

function baselineSummary(label: string, changes: (Change | undefined)[]): string {
  const n = (v: Change['verdict']) => changes.filter((c) => c?.verdict === v).length;
  const fresh = changes.filter((c) => c === undefined).length;
  return `<p class="summary baseline-summary">Compared with the baseline run ${escapeHtml(label)}: <span class="better">${n('better')} better</span>, <span class="worse">${n('worse')} worse</span>, <span class="same">${n('same')} within ±${NOISE * 100}%</span>${fresh ? `, ${fresh} not in it` : ''}. Each row is compared by its ratio to its same-run baseline (by its own value when it has none); light bars and dashed lines in the charts are the baseline run.</p>`;
}

/* ───────────── suites ───────────── */

/** A suite's renderer: this run's results, and the baseline run's results of the same suite when there is a baseline. */
type Render<S extends Suite> = (r: SuiteResults[S], base: Baseline<S> | undefined) => Section;

/** The baseline run's results of one suite, and its rows' figures by key. */
interface Baseline<S extends Suite> {
  results: SuiteResults[S] | undefined;
  figures: BaselineFigures;
}

const RENDER: { [S in Suite]: Render<S> } = {
  core: coreSection,
  alloc: allocSection,
  wake: wakeSection,
  chain: chainSection,
  contention: contentionSection,
};

function suiteSection<S extends Suite>(suite: S, results: BenchResults, options: ReportOptions): Section {
  const failure = options.failed?.[suite];
  if (failure !== undefined)
    return { html: `<p class="missing missed">${escapeHtml(suite)}: failed in this run (${escapeHtml(failure)}); no results</p>`, charts: [], met: [], changes: [] };
  const r = results[suite];
  if (r === undefined) return { html: `<p class="missing">${escapeHtml(suite)}: not run (no ${escapeHtml(suite)}.json)</p>`, charts: [], met: [], changes: [] };
  let base: Baseline<S> | undefined;
  if (options.baseline) {
    const b = options.baseline.results[suite];
    base = { results: b, figures: indexFigures(b === undefined ? [] : suiteFigures(suite, b)) };
  }
  return (RENDER[suite] as Render<S>)(r, base);
}

/** Change of `f` against the baseline (undefined without one or when the baseline run lacks the row). */
function changeFor(f: Figure, base: Baseline<Suite> | undefined): Change | undefined {
  return base === undefined ? undefined : changeOf(f, base.figures);
}

/** A chart label's extra line with the change, when there is a baseline. */
function changeLine(f: Figure, base: Baseline<Suite> | undefined): string[] {
  if (base === undefined) return [];
  const c = changeOf(f, base.figures);
  return [c === undefined ? 'not in the baseline run' : `${formatChange(c)} (was ${formatFigure(c.before, c.unit)})`];
}

function coreSection(r: CoreResults, base: Baseline<'core'> | undefined): Section {
  const ratioRows = r.rows.filter((x) => x.ratio !== undefined);
  const rateRows = r.rows.filter((x) => x.targetMinOpsPerSec !== undefined);
  const baseRow = rowsByFigure(base?.results?.rows);
  const ratios = barChart(
    ratioRows.map((x) => ({
      label: [x.name, `÷ ${x.baseline}`, ...changeLine(rowFigure(x), base)],
      value: x.ratio!,
      before: base ? (baseRow.get(rowFigure(x).key)?.ratio ?? null) : undefined,
      target: x.targetMaxRatio,
      met: x.met,
    })),
    'ratio (×), lower is faster',
    'linear',
  );
  const charts: Charts = [['chart-core-ratios', ratios]];
  const labelLines = base ? 3 : 2;
  const parts = [chartBlock('chart-core-ratios', barsHeight(ratioRows.length, base ? 2 : 1, labelLines), `Each task as a ratio to its baseline. ${barLegend(base)}`)];
  if (rateRows.length > 0) {
    const rates = barChart(
      rateRows.map((x) => ({
        label: lines(x.name, changeLine(rowFigure(x), base)),
        value: x.opsPerSec / 1e6,
        before: base ? nullable(baseRow.get(rowFigure(x).key)?.opsPerSec, (v) => v / 1e6) : undefined,
        target: x.targetMinOpsPerSec! / 1e6,
        met: x.met,
      })),
      'M operations/s, higher is better',
      'linear',
    );
    charts.push(['chart-core-rates', rates]);
    parts.push(chartBlock('chart-core-rates', barsHeight(rateRows.length, base ? 2 : 1, labelLines - 1), `Throughput against its target. ${barLegend(base)}`));
  }
  return { html: section('core', r, '', [...parts, rowTable(r.rows, base)]), charts, met: outcomes(r.rows), changes: base ? r.rows.map((x) => changeFor(rowFigure(x), base)) : [] };
}

function chainSection(r: ChainResults, base: Baseline<'chain'> | undefined): Section {
  const baseline = r.rows.find((x) => x.baseline)?.baseline;
  const baseRow = rowsByFigure(base?.results?.rows);
  const chart = barChart(
    r.rows.map((x) => ({
      label: lines(x.name, changeLine(rowFigure(x), base)),
      value: x.nsPerOp,
      before: base ? (baseRow.get(rowFigure(x).key)?.nsPerOp ?? null) : undefined,
      met: x.met,
    })),
    'ns per operation (log scale)',
    'logarithmic',
  );
  const caption = `Costs per link appended, walked, collected or re-armed, next to whole calls; ratios to ${baseline ?? 'the baseline'} in the table${base ? ' (the change is of that ratio)' : ''}. ${barLegend(base)}`;
  return {
    html: section('chain', r, `${r.chainLength} links`, [chartBlock('chart-chain', barsHeight(r.rows.length, base ? 2 : 1, base ? 2 : 1), caption), rowTable(r.rows, base)]),
    charts: [['chart-chain', chart]],
    met: outcomes(r.rows),
    changes: base ? r.rows.map((x) => changeFor(rowFigure(x), base)) : [],
  };
}

function wakeSection(r: WakeResults, base: Baseline<'wake'> | undefined): Section {
  const us = (ns: number) => ns / 1000;
  const percentiles = ['p50', 'p90', 'p99'] as const;
  const before = new Map((base?.results?.variants ?? []).map((v) => [v.name, v] as const));
  const datasets: Config['data']['datasets'] = [];
  percentiles.forEach((p, i) => {
    datasets.push({ type: 'bar', label: p, data: r.variants.map((v) => us(v.latencyNs[p])), backgroundColor: SERIES[i] });
    if (base)
      datasets.push({
        type: 'bar',
        label: `${p}, baseline run`,
        data: r.variants.map((v) => nullable(before.get(v.name)?.latencyNs[p], us)),
        backgroundColor: BASELINE_SERIES[i],
      });
  });
  const chart: Config = {
    type: 'bar',
    data: { labels: r.variants.map((v) => lines(v.name, changeLine(variantFigure(v), base))), datasets },
    options: {
      ...COMMON_OPTIONS,
      indexAxis: 'y',
      scales: {
        x: {
          type: 'logarithmic',
          ...axisFloor('logarithmic', r.variants.map((v) => us(v.latencyNs.p50))),
          title: { display: true, text: 'µs from signal() to the waiter running (log scale)' },
        },
        y: { ticks: { autoSkip: false } },
      },
    },
  };
  const ratio = (x: number | undefined) => (x === undefined ? '' : `${x.toFixed(2)}×`);
  const table = htmlTable(
    ['variant', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'min µs', 'max µs', 'p50 ratio', 'p99 ratio', 'off-path rounds', ...changeHead(base)],
    r.variants.map((v) => [
      v.name,
      ...[v.latencyNs.p50, v.latencyNs.p90, v.latencyNs.p99, v.latencyNs.mean, v.latencyNs.min, v.latencyNs.max].map((ns) => us(ns).toFixed(2)),
      ratio(v.ratioP50),
      ratio(v.ratioP99),
      String(v.offPath),
      ...changeCells(variantFigure(v), base),
    ]),
  );
  const details = `${r.rounds} rounds per variant, interleaved; seed ${r.seed}`;
  const caption = `Fence waits next to the raw Atomics waits and postMessage they are measured against (ratios: fence ÷ the raw wait of the same kind).${base ? ' Light bars: the baseline run.' : ''}`;
  return {
    html: section('wake', r, details, [
      chartBlock('chart-wake', barsHeight(r.variants.length, percentiles.length * (base ? 2 : 1), base ? 2 : 1), caption),
      table,
      goalTable(r.goals, base),
    ]),
    charts: [['chart-wake', chart]],
    met: r.goals.map((g) => g.met),
    changes: base ? [...r.variants.map((v) => changeFor(variantFigure(v), base)), ...r.goals.map((g) => changeFor(goalFigure(g), base))] : [],
  };
}

function contentionSection(r: ContentionResults, base: Baseline<'contention'> | undefined): Section {
  const cs = (c: ContentionCell) => c.csNs ?? 0;
  const grid = r.results.filter((c) => cs(c) === 0);
  const threads = [...new Set(grid.map((c) => c.threads))].sort((a, b) => a - b);
  const kinds = [...new Set(r.results.map((c) => c.kind))];
  const find = (cells: ContentionCell[] | undefined, kind: string, t: number, ns = 0) => cells?.find((c) => c.kind === kind && c.threads === t && cs(c) === ns);
  const baseCells = base?.results?.results;
  const charts: Charts = [];
  const parts: string[] = [];

  // Throughput and fairness against the worker count, one line per lock.
  const perKind = (value: (c: ContentionCell) => number | undefined) =>
    lineDatasets(
      kinds,
      (k) => threads.map((t) => nullable(find(r.results, k, t), (c) => value(c) ?? NaN)),
      base ? (k) => threads.map((t) => nullable(find(baseCells, k, t), (c) => value(c) ?? NaN)) : undefined,
    );
  charts.push(['chart-contention', lineChart(threads.map(String), perKind((c) => c.mOpsPerSec), 'workers', 'M lock acquisitions/s (all workers)')]);
  parts.push(
    chartBlock(
      'chart-contention',
      LINE_CHART_PX + (base ? 30 : 0),
      `Throughput of each lock as workers are added (${r.cores ?? '?'} cores: beyond that, workers take turns on them); vs raw in the table = its throughput ÷ a bare test-and-set's with the same workers.${base ? ' Dashed lines: the baseline run.' : ''}`,
    ),
  );
  if (grid.some((c) => c.jain !== undefined)) {
    charts.push(['chart-contention-fairness', lineChart(threads.map(String), perKind((c) => c.jain), 'workers', "Jain's fairness index (1 = equal shares)", { min: 0, max: 1 })]);
    parts.push(
      chartBlock(
        'chart-contention-fairness',
        LINE_CHART_PX + (base ? 30 : 0),
        `How evenly the workers shared the lock: Jain's index of their acquisitions, (Σx)² ÷ (n·Σx²) — 1 when all took the same number, 1/n when one took them all.${base ? ' Dashed lines: the baseline run.' : ''}`,
      ),
    );
  }

  // The grid's table here, the sweep's after its charts.
  const cellTable = (cells: ContentionCell[]) =>
    htmlTable(
      ['lock', 'workers', 'in lock', 'M ops/s', 'vs raw', 'Jain', 'min/max', 'exact', ...changeHead(base)],
      cells.map((c) => [
        c.kind,
        String(c.threads),
        formatCs(cs(c)),
        significant(c.mOpsPerSec),
        c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
        c.jain === undefined ? '—' : c.jain.toFixed(2),
        c.fairness.toFixed(2),
        c.counterOk ? 'yes' : { text: 'NO', cls: 'missed' },
        ...changeCells(cellFigure(c), base),
      ]),
    );
  parts.push(cellTable(grid));
  // Throughput against the critical section's length, one chart per worker count of the sweep.
  const lengths = [...new Set(r.results.map(cs))].sort((a, b) => a - b);
  const sweepThreads = [...new Set(r.results.filter((c) => cs(c) > 0).map((c) => c.threads))].sort((a, b) => a - b);
  for (const t of sweepThreads) {
    const id = `chart-contention-sweep-${t}`;
    const datasets = lineDatasets(
      kinds,
      (k) => lengths.map((ns) => nullable(find(r.results, k, t, ns), (c) => c.mOpsPerSec)),
      base ? (k) => lengths.map((ns) => nullable(find(baseCells, k, t, ns), (c) => c.mOpsPerSec)) : undefined,
    );
    charts.push([id, lineChart(lengths.map(formatCs), datasets, 'busy work inside the lock', `M acquisitions/s, ${t} workers (log scale)`, undefined, 'logarithmic')]);
    parts.push(
      chartBlock(
        id,
        LINE_CHART_PX + (base ? 30 : 0),
        `${t} workers holding the lock for about 0, 100 ns, 1 µs and 10 µs of busy work each time (${r.nsPerIter ? `${r.nsPerIter.toFixed(2)} ns per loop iteration, calibrated` : 'a calibrated loop'}). The longer the section, the more a lock that sleeps instead of spinning saves the core for the holder.${base ? ' Dashed lines: the baseline run.' : ''}`,
      ),
    );
  }

  const sweep = r.results.filter((c) => cs(c) > 0);
  if (sweep.length > 0) parts.push(cellTable(sweep));

  const workload = r.workload ?? [];
  if (workload.length > 0) {
    const wThreads = [...new Set(workload.map((w) => w.threads))].sort((a, b) => a - b);
    const variants = [...new Set(workload.map((w) => w.variant))];
    const at = (rows: FenceWorkloadRow[] | undefined, v: string, t: number) => rows?.find((w) => w.variant === v && w.threads === t);
    const datasets: Config['data']['datasets'] = [];
    variants.forEach((v, i) => {
      datasets.push({ type: 'bar', label: v, data: wThreads.map((t) => nullable(at(workload, v, t), (w) => w.kFencesPerSec)), backgroundColor: SERIES[i % SERIES.length] });
      if (base)
        datasets.push({
          type: 'bar',
          label: `${v}, baseline run`,
          data: wThreads.map((t) => nullable(at(base.results?.workload, v, t), (w) => w.kFencesPerSec)),
          backgroundColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
        });
    });
    charts.push([
      'chart-contention-workload',
      {
        type: 'bar',
        data: { labels: wThreads.map((t) => `${t} workers (1 exporter, ${t - 1} importer${t === 2 ? '' : 's'})`), datasets },
        options: { ...COMMON_OPTIONS, scales: { y: { beginAtZero: true, title: { display: true, text: 'thousand fences/s through the pipeline' } } } },
      },
    ]);
    parts.push(
      chartBlock(
        'chart-contention-workload',
        LINE_CHART_PX,
        `The fence workload: an exporter creates fences, takes a reference per importer and signals each a few fences later; every importer takes every fence, adds a callback, reads its status and puts it, and runs the callbacks the signals queue to it. Every fence borrowing one timeline lock puts all of that on one lock word; inline locks spread it over the fences.${base ? ' Light bars: the baseline run.' : ''}`,
      ),
      htmlTable(
        ['locking', 'workers', 'k fences/s', 'vs shared lock', 'callbacks', 'status reads', ...changeHead(base)],
        workload.map((w) => [
          w.variant,
          String(w.threads),
          significant(w.kFencesPerSec),
          w.ratio === undefined ? '—' : `${w.ratio.toFixed(2)}×`,
          String(w.callbacks),
          String(w.statusReads),
          ...changeCells(workloadFigure(w), base),
        ]),
        [0],
      ),
    );
  }
  const goals = r.goals ?? [];
  parts.push(goalTable(goals, base));
  return {
    html: section('contention', r, `${r.ms} ms per cell`, parts),
    charts,
    met: goals.map((g) => g.met),
    changes: base
      ? [...r.results.map((c) => changeFor(cellFigure(c), base)), ...workload.map((w) => changeFor(workloadFigure(w), base)), ...goals.map((g) => changeFor(goalFigure(g), base))]
      : [],
  };
}

function allocSection(r: AllocResults, base: Baseline<'alloc'> | undefined): Section {
  const groups = [...new Set(r.cells.map((c) => `${c.threads}|${c.live}`))];
  const impls = [...new Set(r.cells.map((c) => c.impl))];
  const at = (cells: AllocCell[] | undefined, impl: string, group: string) => cells?.find((c) => `${c.threads}|${c.live}` === group && c.impl === impl);
  const label = (group: string) => {
    const [t, live] = group.split('|').map(Number);
    return `${t} worker${t === 1 ? '' : 's'}, ${live === 0 ? 'empty heap' : `${live.toLocaleString('en-US')} live blocks each`}`;
  };
  const datasets: Config['data']['datasets'] = [];
  impls.forEach((impl, i) => {
    datasets.push({ type: 'bar', label: impl, data: groups.map((g) => nullable(at(r.cells, impl, g), (c) => c.mOpsPerSec)), backgroundColor: SERIES[i % SERIES.length] });
    if (base)
      datasets.push({
        type: 'bar',
        label: `${impl}, baseline run`,
        data: groups.map((g) => nullable(at(base.results?.cells, impl, g), (c) => c.mOpsPerSec)),
        backgroundColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
      });
  });
  const chart: Config = {
    type: 'bar',
    data: { labels: groups.map(label), datasets },
    options: { ...COMMON_OPTIONS, scales: { y: { beginAtZero: true, title: { display: true, text: 'M alloc+free pairs/s (all workers)' } } } },
  };
  const table = htmlTable(
    ['allocator', 'workers', 'live', 'M pairs/s', 'ns/pair', 'ratio', ...changeHead(base)],
    r.cells.map((c) => [
      c.impl,
      String(c.threads),
      String(c.live),
      significant(c.mOpsPerSec),
      c.nsPerOp.toFixed(1),
      c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
      ...changeCells(allocFigure(c), base),
    ]),
  );
  const caption = `Each worker allocates and frees one 64-byte block at a time. @thi.ng/malloc is single-threaded, so each worker has a pool of its own (nothing shared); the global-lock free list takes one lock on every call; the arena's allocator works in per-thread caches. ns/pair is per worker; ratio = that ÷ @thi.ng/malloc's with the same workers and live blocks (lower is faster). Fastest of ${r.reps} repetition${r.reps === 1 ? '' : 's'} per cell.${base ? ' Light bars: the baseline run.' : ''}`;
  return {
    html: section('alloc', r, `${r.ms} ms × ${r.reps} per cell`, [chartBlock('chart-alloc', LINE_CHART_PX, caption), table, goalTable(r.goals, base)]),
    charts: [['chart-alloc', chart]],
    met: r.goals.map((g) => g.met),
    changes: base ? [...r.cells.map((c) => changeFor(allocFigure(c), base)), ...r.goals.map((g) => changeFor(goalFigure(g), base))] : [],
  };
}

/**
 * One line per name (`values(name)` in label order, null where missing); with `before`, a dashed,
 * lighter line of the baseline run for each. The fence's locks are drawn thicker.
 */
function lineDatasets(names: string[], values: (name: string) => (number | null)[], before?: (name: string) => (number | null)[]): Config['data']['datasets'] {
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
    names.forEach((name, i) =>
      datasets.push({
        type: 'line',
        label: `${name}, baseline run`,
        data: before(name).map(finite),
        borderColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
        backgroundColor: BASELINE_SERIES[i % BASELINE_SERIES.length],
        borderDash: [6, 4],
        borderWidth: width(name),
      }),
    );
  return datasets;
}

/** A line chart over `labels`; the legend's entries drawn as short lines (dashed for the baseline run). */
function lineChart(
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

function finite(v: number | null): number | null {
  return v === null || !Number.isFinite(v) ? null : v;
}

/* ───────────── building blocks ───────────── */

const COMMON_OPTIONS = { responsive: true, maintainAspectRatio: false, animation: false } as const;

interface Bar {
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
function barChart(bars: Bar[], axis: string, scale: 'linear' | 'logarithmic'): Config {
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

function barLegend(base: Baseline<Suite> | undefined): string {
  return `Bar green: target met, red: missed, grey: no target; black tick: the target.${base ? ' Light blue bar under each: the baseline run.' : ''}`;
}

/**
 * Height of a horizontal bar chart with `categories` slots of `perCategory` bars each, whose
 * labels have `labelLines` lines.
 */
function barsHeight(categories: number, perCategory = 1, labelLines = 1): number {
  const slot = Math.max(BAR_SLOT_PX + (perCategory - 1) * GROUPED_BAR_PX, labelLines * LABEL_LINE_PX + 8);
  return CHART_FRAME_PX + categories * slot;
}

/**
 * Where the value axis starts: zero on a linear axis; on a log axis the power of ten below the
 * smallest positive value, so that every bar, which starts at the axis, shows some length (with no
 * positive value, Chart.js picks).
 */
function axisFloor(scale: 'linear' | 'logarithmic', values: number[]): { beginAtZero: true } | { min?: number } {
  if (scale === 'linear') return { beginAtZero: true };
  const low = Math.min(...values.filter((v) => v > 0));
  return Number.isFinite(low) ? { min: 10 ** Math.floor(Math.log10(low)) } : {};
}

function chartBlock(id: string, heightPx: number, caption: string): string {
  return `<figure><div class="chart" style="height:${heightPx}px"><canvas id="${escapeHtml(id)}"></canvas></div><figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

function section(suite: Suite, run: RunInfo, details: string, parts: string[]): string {
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

function changeHead(base: Baseline<Suite> | undefined): string[] {
  return base ? ['baseline run', 'change'] : [];
}

/** The baseline run's figure and the change, coloured by verdict; nothing without a baseline. */
function changeCells(f: Figure, base: Baseline<Suite> | undefined): Cell[] {
  if (base === undefined) return [];
  const c = changeOf(f, base.figures);
  if (c === undefined) return ['–', { text: 'not in the baseline run', cls: 'same' }];
  return [formatFigure(c.before, c.unit), { text: formatChange(c), cls: c.verdict }];
}

function rowTable(rows: Row[], base: Baseline<Suite> | undefined): string {
  return htmlTable(
    ['task', 'ns/op', 'ratio', 'baseline', 'target', 'met', ...changeHead(base)],
    rows.map((x) => [
      x.name,
      x.nsPerOp.toFixed(1),
      x.ratio === undefined ? '' : `${x.ratio.toFixed(2)}×`,
      x.baseline ?? '',
      x.target ?? '',
      metCell(x.met),
      ...changeCells(rowFigure(x), base),
    ]),
    [3],
  );
}

function goalTable(goals: Goal[], base: Baseline<Suite> | undefined): string {
  if (goals.length === 0) return '';
  const unit = (g: Goal) => (g.unit === '×' ? '×' : ' µs');
  return htmlTable(
    ['goal', 'measured', 'target', 'met', ...changeHead(base)],
    goals.map((g) => [g.name, `${g.measured.toFixed(2)}${unit(g)}`, `${g.op} ${g.target}${unit(g)}`, metCell(g.met), ...changeCells(goalFigure(g), base)]),
  );
}

/** A table; the columns in `text` (besides the first) hold names: left-aligned, and they may wrap. */
function htmlTable(head: string[], rows: Cell[][], text: number[] = []): string {
  const td = (c: Cell, i: number) => {
    const cls = [...(typeof c === 'string' ? [] : [c.cls]), ...(text.includes(i) ? ['text'] : [])].join(' ');
    return `<td${cls ? ` class="${escapeHtml(cls)}"` : ''}>${escapeHtml(typeof c === 'string' ? c : c.text)}</td>`;
  };
  const th = (h: string, i: number) => `<th${text.includes(i) ? ' class="text"' : ''}>${escapeHtml(h)}</th>`;
  return `<table>\n<thead><tr>${head.map(th).join('')}</tr></thead>\n<tbody>\n${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
}

function metCell(met: boolean | undefined): Cell {
  return met === undefined ? '' : met ? { text: 'met', cls: 'met' } : { text: 'MISSED', cls: 'missed' };
}

function outcomes(rows: Row[]): boolean[] {
  return rows.flatMap((x) => (x.met === undefined ? [] : [x.met]));
}

/** The rows of a baseline run, by their figure's key (a task can appear twice with two baselines). */
function rowsByFigure(rows: Row[] | undefined): Map<string, Row> {
  return new Map((rows ?? []).map((x) => [rowFigure(x).key, x] as const));
}

/** A chart label: one line, or several when more lines follow it. */
function lines(first: string, more: string[]): string | string[] {
  return more.length === 0 ? first : [first, ...more];
}

function nullable<T>(v: T | undefined, f: (v: T) => number): number | null {
  return v === undefined ? null : f(v);
}

/** Three significant digits without exponent noise: 47.8, 0.00035. */
function significant(n: number): string {
  return String(Number(n.toPrecision(3)));
}

/* ───────────── inlining ───────────── */

/** Chart.js's UMD build, which defines the global `Chart`. */
/**
 * Where Chart.js's UMD build (which defines the global `Chart`) is, or null when Chart.js is not
 * installed: it is an optional peer dependency, since only this report uses it and only a clone of
 * the repository runs the benchmarks whose results it shows.
 */
export function chartJsPath(): string | null {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('chart.js');
  } catch {
    return null;
  }
  // The package exports only its entry points; the UMD build sits next to the CommonJS one.
  return join(dirname(entry), 'chart.umd.js');
}

function chartJsSource(): string {
  const file = chartJsPath();
  if (file === null) throw new Error('the benchmark report inlines Chart.js, which is not installed (npm install chart.js)');
  return readFileSync(file, 'utf8');
}

/** Script text that cannot end its `<script>` element early (`</script` inside a string or comment). */
function inlineScript(js: string): string {
  return js.replace(/<\/script/gi, '<\\/script');
}

/** JSON for a `<script>` element: every `<` escaped, so no string in it can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #212121; }
h1 { margin-bottom: 0.2em; }
section { margin: 2.5em 0; }
.meta, figcaption, .missing { color: #616161; }
.chart { position: relative; }
figure { margin: 1em 0; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.25em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
/* Figures never wrap; the first column (names) takes what is left. */
td:not(:first-child) { white-space: nowrap; }
th.text, td.text { text-align: left; white-space: normal; }
.met, .better { color: ${COLOR.met}; }
.missed, .worse { color: ${COLOR.missed}; font-weight: bold; }
.same { color: #757575; }
.missing.missed { color: ${COLOR.missed}; }
`;

/**
 * The benchmark report: one self-contained HTML page with charts and tables for every suite whose
 * results are in bench/results/ (DESIGN §7). Chart.js is inlined, so the page works offline and from
 * a CI artefact; the charts' data sits in one JSON element, drawn by a few lines of script.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ChartConfiguration } from 'chart.js';
import {
  RESULTS_DIR,
  SUITES,
  readResults,
  type BenchResults,
  type ChainResults,
  type ContentionResults,
  type CoreResults,
  type Goal,
  type Row,
  type RunInfo,
  type Suite,
  type SuiteResults,
  type WakeResults,
} from './results.js';

/** The report's file name, next to the results it shows. */
export const REPORT_FILE = 'report.html';
/** id of the `<script type="application/json">` element that maps each canvas id to its Chart.js config. */
export const CHART_DATA_ID = 'fencelab-charts';

const TITLES: Record<Suite, string> = {
  core: 'core — single-thread costs against same-run baselines',
  wake: 'wake — signal → wake latency across threads',
  chain: 'chain — fence chain operations',
  contention: 'contention — lock throughput across workers',
};

const COLOR = { met: '#2e7d32', missed: '#c62828', noTarget: '#78909c', target: '#000000' };
/** One colour per series (percentile, lock kind), in order. */
const SERIES = ['#1565c0', '#ef6c00', '#6a1b9a', '#2e7d32', '#c62828', '#00838f'];
/** Heights in CSS pixels: a horizontal bar's slot, each further bar in a group, axes and legend. */
const BAR_SLOT_PX = 34;
const GROUPED_BAR_PX = 12;
const CHART_FRAME_PX = 70;
const LINE_CHART_PX = 320;

type Config = ChartConfiguration<'bar' | 'line', (number | null)[], string | string[]>;
type Charts = [id: string, config: Config][];
/** A table cell: its text, and a class for the met / missed colours. */
type Cell = string | { text: string; cls: string };

/** What a suite contributes: its HTML, the charts its canvases show, and its targets' outcomes. */
interface Section {
  html: string;
  charts: Charts;
  met: boolean[];
}

/** Escapes text for HTML content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Renders the report for `results`; a suite without results shows one line saying it was not run.
 * Reads Chart.js's UMD build from node_modules to inline it. Returns the whole HTML document.
 */
export function renderReport(results: BenchResults): string {
  const sections = SUITES.map((suite) => suiteSection(suite, results));
  const met = sections.flatMap((s) => s.met);
  const missed = met.filter((m) => !m).length;
  const charts = Object.fromEntries(sections.flatMap((s) => s.charts));
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
<p class="summary">Targets and goals: <span class="met">${met.length - missed} met</span>, <span class="${missed ? 'missed' : 'met'}">${missed} missed</span>. Ratios are task ÷ baseline, both measured in the same run.</p>
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

/**
 * Reads the results in `dir` (default bench/results/) and writes `<dir>/report.html` from them.
 * Returns the report's path. Throws what {@link readResults} throws for a damaged results file.
 */
export function writeReport(dir: string = RESULTS_DIR, results: BenchResults = readResults(dir)): string {
  const file = join(dir, REPORT_FILE);
  writeFileSync(file, renderReport(results));
  return file;
}

/* ───────────── suites ───────────── */

const RENDER: { [S in Suite]: (r: SuiteResults[S]) => Section } = {
  core: coreSection,
  wake: wakeSection,
  chain: chainSection,
  contention: contentionSection,
};

function suiteSection<S extends Suite>(suite: S, results: BenchResults): Section {
  const r = results[suite];
  if (r === undefined) return { html: `<p class="missing">${escapeHtml(suite)}: not run (no ${escapeHtml(suite)}.json)</p>`, charts: [], met: [] };
  return RENDER[suite](r);
}

function coreSection(r: CoreResults): Section {
  const ratioRows = r.rows.filter((x) => x.ratio !== undefined);
  const rateRows = r.rows.filter((x) => x.targetMinOpsPerSec !== undefined);
  const ratios = barChart(
    ratioRows.map((x) => ({ label: [x.name, `÷ ${x.baseline}`], value: x.ratio!, target: x.targetMaxRatio, met: x.met })),
    'ratio (×), lower is faster',
    'linear',
  );
  const charts: Charts = [['chart-core-ratios', ratios]];
  const parts = [chartBlock('chart-core-ratios', barsHeight(ratioRows.length), `Each task as a ratio to its baseline. ${BAR_LEGEND}`)];
  if (rateRows.length > 0) {
    const rates = barChart(
      rateRows.map((x) => ({ label: x.name, value: x.opsPerSec / 1e6, target: x.targetMinOpsPerSec! / 1e6, met: x.met })),
      'M operations/s, higher is better',
      'linear',
    );
    charts.push(['chart-core-rates', rates]);
    parts.push(chartBlock('chart-core-rates', barsHeight(rateRows.length), `Throughput against its target. ${BAR_LEGEND}`));
  }
  return { html: section('core', r, '', [...parts, rowTable(r.rows)]), charts, met: outcomes(r.rows) };
}

function chainSection(r: ChainResults): Section {
  const base = r.rows.find((x) => x.baseline)?.baseline;
  const chart = barChart(
    r.rows.map((x) => ({ label: x.name, value: x.nsPerOp, met: x.met })),
    'ns per operation (log scale)',
    'logarithmic',
  );
  const caption = `Costs per link appended, walked, collected or re-armed, next to whole calls; ratios to ${base ?? 'the baseline'} in the table.`;
  return {
    html: section('chain', r, `${r.chainLength} links`, [chartBlock('chart-chain', barsHeight(r.rows.length), caption), rowTable(r.rows)]),
    charts: [['chart-chain', chart]],
    met: outcomes(r.rows),
  };
}

function wakeSection(r: WakeResults): Section {
  const us = (ns: number) => ns / 1000;
  const percentiles = ['p50', 'p90', 'p99'] as const;
  const chart: Config = {
    type: 'bar',
    data: {
      labels: r.variants.map((v) => v.name),
      datasets: percentiles.map((p, i) => ({ label: p, data: r.variants.map((v) => us(v.latencyNs[p])), backgroundColor: SERIES[i] })),
    },
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
  const table = htmlTable(
    ['variant', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'min µs', 'max µs', 'off-path rounds'],
    r.variants.map((v) => [v.name, ...[v.latencyNs.p50, v.latencyNs.p90, v.latencyNs.p99, v.latencyNs.mean, v.latencyNs.min, v.latencyNs.max].map((ns) => us(ns).toFixed(2)), String(v.offPath)]),
  );
  const details = `${r.rounds} rounds per variant, interleaved; seed ${r.seed}`;
  return {
    html: section('wake', r, details, [
      chartBlock('chart-wake', barsHeight(r.variants.length, percentiles.length), 'Fence waits next to the raw Atomics waits and postMessage they are measured against.'),
      table,
      goalTable(r.goals),
    ]),
    charts: [['chart-wake', chart]],
    met: r.goals.map((g) => g.met),
  };
}

function contentionSection(r: ContentionResults): Section {
  const threads = [...new Set(r.results.map((c) => c.threads))].sort((a, b) => a - b);
  const kinds = [...new Set(r.results.map((c) => c.kind))];
  const cell = (kind: string, t: number) => r.results.find((c) => c.kind === kind && c.threads === t);
  const chart: Config = {
    type: 'line',
    data: {
      labels: threads.map(String),
      datasets: kinds.map((k, i) => ({
        label: k,
        data: threads.map((t) => cell(k, t)?.mOpsPerSec ?? null),
        borderColor: SERIES[i % SERIES.length],
        backgroundColor: SERIES[i % SERIES.length],
      })),
    },
    options: {
      ...COMMON_OPTIONS,
      scales: { x: { title: { display: true, text: 'workers' } }, y: { beginAtZero: true, title: { display: true, text: 'M lock acquisitions/s (all workers)' } } },
    },
  };
  const table = htmlTable(
    ['lock', 'workers', 'M ops/s', 'vs raw', 'fairness', 'exact'],
    r.results.map((c) => {
      const raw = cell('raw', c.threads);
      const vsRaw = c.kind === 'raw' || !raw ? '—' : `${(c.mOpsPerSec / raw.mOpsPerSec).toFixed(2)}×`;
      return [c.kind, String(c.threads), significant(c.mOpsPerSec), vsRaw, c.fairness.toFixed(2), c.counterOk ? 'yes' : { text: 'NO', cls: 'missed' }];
    }),
  );
  return {
    html: section('contention', r, `${r.ms} ms per cell`, [
      chartBlock('chart-contention', LINE_CHART_PX, 'Throughput of each lock kind as workers are added; fairness (slowest ÷ fastest worker) in the table.'),
      table,
      goalTable(r.goals ?? []),
    ]),
    charts: [['chart-contention', chart]],
    met: (r.goals ?? []).map((g) => g.met),
  };
}

/* ───────────── building blocks ───────────── */

const COMMON_OPTIONS = { responsive: true, maintainAspectRatio: false, animation: false } as const;

interface Bar {
  label: string | string[];
  value: number;
  target?: number;
  met?: boolean;
}

/**
 * Horizontal bars coloured by their target's outcome, with each target drawn as a tick across its
 * bar (a line dataset without a line, whose points are rotated line markers).
 */
function barChart(bars: Bar[], axis: string, scale: 'linear' | 'logarithmic'): Config {
  const datasets: Config['data']['datasets'] = [
    {
      type: 'bar',
      label: 'measured',
      data: bars.map((b) => b.value),
      backgroundColor: bars.map((b) => (b.met === undefined ? COLOR.noTarget : b.met ? COLOR.met : COLOR.missed)),
    },
  ];
  if (bars.some((b) => b.target !== undefined))
    datasets.push({
      type: 'line',
      label: 'target',
      data: bars.map((b) => b.target ?? null),
      showLine: false,
      pointStyle: 'line',
      pointRotation: 90,
      pointRadius: 12,
      pointHoverRadius: 14,
      borderWidth: 3,
      borderColor: COLOR.target,
      // Datasets of lower order are drawn later: the ticks go over the bars they cross.
      order: -1,
    });
  return {
    type: 'bar',
    data: { labels: bars.map((b) => b.label), datasets },
    options: {
      ...COMMON_OPTIONS,
      indexAxis: 'y',
      // The bars' colours and the ticks are explained in the caption; a legend would show one colour.
      plugins: { legend: { display: false } },
      scales: {
        x: { type: scale, ...axisFloor(scale, bars.map((b) => b.value)), title: { display: true, text: axis } },
        y: { ticks: { autoSkip: false } },
      },
    },
  };
}

const BAR_LEGEND = 'Bar green: target met, red: missed, grey: no target; black tick: the target.';

/** Height of a horizontal bar chart with `categories` slots of `perCategory` bars each. */
function barsHeight(categories: number, perCategory = 1): number {
  return CHART_FRAME_PX + categories * (BAR_SLOT_PX + (perCategory - 1) * GROUPED_BAR_PX);
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
  const meta = [`run ${run.date ?? '–'}`, `Node ${run.node ?? '–'}`, `${run.cores ?? '–'} cores`, ...(details ? [details] : [])].join(' · ');
  return `<section id="${suite}">\n<h2>${escapeHtml(TITLES[suite])}</h2>\n<p class="meta">${escapeHtml(meta)}</p>\n${parts.filter(Boolean).join('\n')}\n</section>`;
}

function rowTable(rows: Row[]): string {
  return htmlTable(
    ['task', 'ns/op', 'ratio', 'baseline', 'target', 'met'],
    rows.map((x) => [x.name, x.nsPerOp.toFixed(1), x.ratio === undefined ? '' : `${x.ratio.toFixed(2)}×`, x.baseline ?? '', x.target ?? '', metCell(x.met)]),
  );
}

function goalTable(goals: Goal[]): string {
  if (goals.length === 0) return '';
  const unit = (g: Goal) => (g.unit === '×' ? '×' : ' µs');
  return htmlTable(
    ['goal', 'measured', 'target', 'met'],
    goals.map((g) => [g.name, `${g.measured.toFixed(2)}${unit(g)}`, `${g.op} ${g.target}${unit(g)}`, metCell(g.met)]),
  );
}

function htmlTable(head: string[], rows: Cell[][]): string {
  const td = (c: Cell) => (typeof c === 'string' ? `<td>${escapeHtml(c)}</td>` : `<td class="${escapeHtml(c.cls)}">${escapeHtml(c.text)}</td>`);
  return `<table>\n<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>\n<tbody>\n${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
}

function metCell(met: boolean | undefined): Cell {
  return met === undefined ? '' : met ? { text: 'met', cls: 'met' } : { text: 'MISSED', cls: 'missed' };
}

function outcomes(rows: Row[]): boolean[] {
  return rows.flatMap((x) => (x.met === undefined ? [] : [x.met]));
}

/** Three significant digits without exponent noise: 47.8, 0.00035. */
function significant(n: number): string {
  return String(Number(n.toPrecision(3)));
}

/* ───────────── inlining ───────────── */

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
.met { color: ${COLOR.met}; }
.missed { color: ${COLOR.missed}; font-weight: bold; }
`;

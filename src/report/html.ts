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
import { NOISE, indexFigures, suiteFigures, type Change } from './compare.js';
import { SUITES, type BenchResults, type BenchRun, type Suite, type SuiteResults } from './schema.js';
import { COLOR, Section, escapeHtml, Baseline } from './blocks.js';
import { coreSection, chainSection, wakeSection, contentionSection, allocSection, piscinaSection } from './sections.js';
import type { ChromeTrace } from '../trace/chrome.js';
import { GENERATOR_META, renderTimelineSection, TIMELINE_STYLE } from '../trace/viewer.js';

/** The report's file name when it sits next to the results it shows (bench/results/). */
export const REPORT_FILE = 'report.html';
/** id of the `<script type="application/json">` element that maps each canvas id to its Chart.js config. */
export const CHART_DATA_ID = 'fencelab-charts';

/** The run the report shows, as the run file records it. */
export type RunHeader = Pick<BenchRun, 'date' | 'node' | 'cpu' | 'cores' | 'seed' | 'quick' | 'load'>;

export interface ReportOptions {
  /** Where and how the run ran, shown at the top; absent when the report is rebuilt from a results directory. */
  run?: RunHeader;
  /** An earlier run to compare with, and how to name it (its file and date). */
  baseline?: { results: BenchResults; label: string };
  /** Suites that failed in this run, with what happened: shown as failed, not as their older results. */
  failed?: Partial<Record<Suite, string>>;
  /** A short traced run to show as a timeline at the end, and its file's name (next to the report). */
  trace?: { trace: ChromeTrace; file: string };
}

/** File name of the traced sample run the report shows, next to the report. */
export const TRACE_SAMPLE_FILE = 'trace.json';


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
${GENERATOR_META}
<title>fencelab benchmarks</title>
<style>${STYLE}${options.trace ? TIMELINE_STYLE : ''}</style>
</head>
<body>
<h1>fencelab benchmarks</h1>
${options.run ? `<p class="meta">${escapeHtml(runLine(options.run))}</p>\n` : ''}<p class="summary">Targets and goals: <span class="met">${met.length - missed} met</span>, <span class="${missed ? 'missed' : 'met'}">${missed} missed</span>. Ratios are task ÷ baseline, both measured in the same run.</p>
${failed.length ? `<p class="summary missed">Failed in this run: ${escapeHtml(failed.map((s) => `${s} (${options.failed![s]})`).join(', '))}.</p>\n` : ''}${options.baseline ? baselineSummary(options.baseline.label, sections.flatMap((s) => s.changes)) : ''}
${sections.map((s) => s.html).join('\n')}
${options.trace ? traceSection(options.trace.trace, options.trace.file) : ''}
<script>${inlineScript(chartJsSource())}</script>
<script type="application/json" id="${CHART_DATA_ID}">${scriptJson(charts)}</script>
<script>
// A log axis labels only 1, 2 and 5 of each decade: Chart.js labels more near the top of the
// axis, where they overlap (a function cannot travel in the charts' JSON, so it is added here).
const logTick = (v) => { const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9); return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6) ? Number(v).toLocaleString('en-US') : ''; };
for (const [id, config] of Object.entries(JSON.parse(document.getElementById('${CHART_DATA_ID}').textContent))) {
  for (const axis of Object.values(config.options?.scales ?? {})) if (axis.type === 'logarithmic') axis.ticks = { ...axis.ticks, callback: logTick };
  new Chart(document.getElementById(id), config);
}
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

/** The traced sample: what it is, then its timeline (drawn by the viewer's own script). */
function traceSection(trace: ChromeTrace, file: string): string {
  const descriptionHtml = `What the threads did in a short traced run (<code>fencelab stress --ops 150 --exporters 1 --importers 1 --trace ${escapeHtml(file)}</code>): each signal and the waiter it woke or the callback it queued (arrows), waits, lock contention, each fence's life on its context's track. Tracing costs what the core table's “tracing on” rows say.`;
  return renderTimelineSection(trace, { id: 'fencelab-trace-sample', title: 'trace — a traced run, drawn', traceFile: file, descriptionHtml });
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
const RENDER: { [S in Suite]: Render<S> } = {
  core: coreSection,
  alloc: allocSection,
  wake: wakeSection,
  chain: chainSection,
  contention: contentionSection,
  piscina: piscinaSection,
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


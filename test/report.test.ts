/**
 * The benchmark report, from small sample results (no benchmark runs here): every suite's chart
 * data and table rows are in the page, text is escaped, nothing is fetched from a network, a suite
 * without results says it was not run, a failed one that it failed; a baseline run's figures and
 * each row's change in the page and the text tables; run files read back; and `fencelab report`
 * on a results directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { NOISE, changeOf, indexFigures, rowFigure, suiteFigures } from '../src/report/compare.js';
import { escapeHtml } from '../src/report/blocks.js';
import { CHART_DATA_ID, REPORT_FILE, renderReport } from '../src/report/html.js';
import { checkSuiteResults, readResults, readRun, type SuiteResults } from '../src/report/schema.js';
import { renderText } from '../src/report/text.js';
import { HOSTILE, RUN, SAMPLE, runFile } from './support/bench-samples.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

interface ChartData {
  labels: (string | string[])[];
  datasets: { label: string; data: (number | null)[]; backgroundColor?: string | string[] }[];
}

/** The Chart.js configs of the page, by canvas id, as the page's script reads them. */
function charts(html: string): Record<string, { type: string; data: ChartData }> {
  const m = new RegExp(`<script type="application/json" id="${CHART_DATA_ID}">([^<]*)</script>`).exec(html);
  expect(m, 'chart data element').not.toBeNull();
  return JSON.parse(m![1]);
}

describe('renderReport', () => {
  const html = renderReport(SAMPLE);
  const c = charts(html);

  it('charts core ratios against their targets, and throughput against its target', () => {
    const ratios = c['chart-core-ratios'].data;
    expect(ratios.labels).toEqual([
      ['fence lock+unlock inline', '÷ raw TAS exchange+store'],
      [HOSTILE, '÷ fence lock+unlock inline'],
      ['SpinLock ticket lock+unlock', '÷ raw TAS exchange+store'],
    ]);
    const [bars, targets] = ratios.datasets;
    expect(bars.data).toEqual([1.1, 2.5, 3.25]);
    const [met, missed, none] = bars.backgroundColor as string[];
    expect(new Set([met, missed, none]).size).toBe(3);
    expect(targets.data).toEqual([1.2, 2, null]);
    const rates = c['chart-core-rates'].data;
    expect(rates.labels).toEqual(['fence create+signal+put']);
    expect(rates.datasets.map((d) => d.data)).toEqual([[8], [5]]);
  });

  it('charts wake percentiles in µs, chain costs per operation and contention per worker count', () => {
    const wake = c['chart-wake'].data;
    expect(wake.labels).toEqual(SAMPLE.wake.variants.map((v) => v.name));
    expect(wake.datasets.map((d) => [d.label, d.data])).toEqual([
      ['p50', [10, 11]],
      ['p90', [20, 22]],
      ['p99', [40, 44]],
    ]);
    expect(c['chart-chain'].data.datasets[0].data).toEqual([130, 260]);
    const contention = c['chart-contention'];
    expect(contention.type).toBe('line');
    expect(contention.data.labels).toEqual(['1', '2', '4']);
    expect(contention.data.datasets.map((d) => [d.label, d.data])).toEqual([
      ['raw', [40, 20, 10]],
      ['futex', [30, 15, 15]],
    ]);
  });

  it('charts contention fairness per worker count, throughput against the critical section, and the fence workload', () => {
    expect(c['chart-contention-fairness'].data.datasets.map((d) => [d.label, d.data])).toEqual([
      ['raw', [1, 0.5, 0.25]],
      ['futex', [0.95, 0.95, 0.95]],
    ]);
    const sweep = c['chart-contention-sweep-2'].data;
    expect(sweep.labels).toEqual(['0', '100 ns', '1 µs']);
    expect(sweep.datasets.map((d) => [d.label, d.data])).toEqual([
      ['raw', [20, 10, 1]],
      ['futex', [15, 20, 2]],
    ]);
    expect(Object.keys(c).filter((id) => id.startsWith('chart-contention-sweep'))).toEqual(['chart-contention-sweep-2']);
    const workload = c['chart-contention-workload'].data;
    expect(workload.labels).toEqual(['2 workers (1 exporter, 1 importer)', '4 workers (1 exporter, 3 importers)']);
    expect(workload.datasets.map((d) => [d.label, d.data])).toEqual([
      ['one timeline lock, borrowed by every fence', [50, 25]],
      ['each fence its own inline lock', [100, 100]],
    ]);
  });

  it('charts the allocators per worker count and live set', () => {
    const alloc = c['chart-alloc'].data;
    expect(alloc.labels).toEqual(['1 worker, empty heap', '2 workers, empty heap']);
    expect(alloc.datasets.map((d) => [d.label, d.data])).toEqual([
      ['arena allocBlock+freeBlock', [80, 160]],
      ['@thi.ng/malloc (a pool per thread)', [72, 144]],
      ['global-lock free list', [30, 15]],
    ]);
  });

  it('has a table row for every row, variant, cell and goal, with met / MISSED, and the run metadata', () => {
    const cells = (text: string) => `<td>${escapeHtml(text)}</td>`;
    for (const r of [...SAMPLE.core.rows, ...SAMPLE.chain.rows]) expect(html).toContain(`<tr>${cells(r.name)}<td>${r.nsPerOp.toFixed(1)}</td>`);
    expect(html).toContain(`${cells('fence lock+unlock inline')}<td>20.0</td><td>1.10×</td><td class="text">raw TAS exchange+store</td>${cells('≤ 1.2×')}<td class="met">met</td>`);
    expect(html).toContain('<td>2.50×</td><td class="text">fence lock+unlock inline</td><td>≤ 2×</td><td class="missed">MISSED</td>');
    for (const v of [...SAMPLE.wake.variants, ...SAMPLE.piscina.variants]) expect(html).toContain(cells(v.name));
    expect(html).toContain('<tr><td>out-fence wait() (spin, then Atomics.wait)</td><td>after 1000 µs idle</td><td>10.0</td>');
    expect(html).toContain('<tr><td>futex</td><td>4</td><td>0</td><td>15</td><td>1.50×</td><td>0.95</td><td>0.90</td><td>yes</td></tr>');
    expect(html).toContain('<tr><td>futex</td><td>2</td><td>1 µs</td><td>2</td><td>2.00×</td><td>0.99</td><td>0.95</td><td>yes</td></tr>');
    expect(html).toContain('<tr><td class="text">each fence its own inline lock</td><td>4</td><td>100</td><td>4.00×</td><td>1800</td><td>2000</td></tr>');
    expect(html).toContain('<tr><td>global-lock free list</td><td>2</td><td>0</td><td>15</td><td>133.2</td><td>9.60×</td></tr>');
    // The allocator's scaling rounds: medians, the IQR of the rounds' scalings, on-CPU shares (— where unread).
    expect(html).toContain('<tr><td class="text">arena allocBlock+freeBlock</td><td>0</td><td>5</td><td>80.00</td><td>160.00</td><td>2.00×</td><td>1.90–2.05</td><td>99 %</td><td>97 %</td><td>100 %</td><td>0.98×</td><td>0.95–1.01</td></tr>');
    expect(html).toContain('<td>1.80–2.10</td><td>—</td><td>—</td><td>100 %</td><td>—</td><td>—</td></tr>');
    for (const g of [...SAMPLE.wake.goals, ...SAMPLE.contention.goals!, ...SAMPLE.alloc.goals, ...SAMPLE.piscina.goals]) expect(html).toContain(cells(g.name));
    expect(html).toContain('run 2026-01-02T03:04:05.000Z · Node v20.99.0 · Test CPU @ 1 GHz · 3 cores');
    expect(html).toContain('6 met</span>, <span class="missed">1 missed');
  });

  it('escapes text in the HTML and keeps it intact in the chart data', () => {
    expect(html).toContain('&lt;b&gt;inline &amp; &quot;sanitized&quot;&lt;/b&gt;');
    expect(html).not.toContain(HOSTILE);
    expect(c['chart-core-ratios'].data.labels[1]).toEqual([HOSTILE, '÷ fence lock+unlock inline']);
  });

  it('is self-contained: Chart.js inlined, no script, stylesheet or image from a URL', () => {
    expect(html).not.toMatch(/<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=/i);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
    expect(scripts[0]).toMatch(/^\/\*![\s*]*Chart\.js v4/);
    expect(scripts[0].length).toBeGreaterThan(100_000);
    expect(scripts[1]).toContain(`getElementById('${CHART_DATA_ID}')`);
    for (const id of Object.keys(c)) expect(html).toContain(`<canvas id="${id}"></canvas>`);
  });

  it('leaves out a suite without results, with a line saying it was not run', () => {
    const only = renderReport({ chain: SAMPLE.chain });
    expect(Object.keys(charts(only))).toEqual(['chart-chain']);
    for (const suite of ['core', 'alloc', 'wake', 'contention', 'piscina']) expect(only).toContain(`<p class="missing">${suite}: not run (no ${suite}.json)</p>`);
    expect(only).not.toContain('<section id="core"');
    expect(only).toContain('<section id="chain"');
  });
});

/** SAMPLE with each headline figure changed: core's first ratio 10 % lower (better), wake's fence ratio 20 % higher (worse). */
function earlier(): SuiteResults {
  const base = structuredClone(SAMPLE);
  base.core.rows[0].ratio = 1.1 / 0.9; // this run's 1.1 is 10 % lower: better
  base.core.rows[2].ratio = 3.2; // within noise of 3.25
  base.core.rows[3].nsPerOp = 100; // this run's 125 ns is 25 % more: worse
  base.wake.variants[1].ratioP50 = 1.1 / 1.2; // this run's 1.1 is 20 % higher: worse
  base.chain.rows = base.chain.rows.slice(0, 1); // the GC walk row is new in this run
  return base;
}

describe('comparing with a baseline run', () => {
  it('takes each row\'s ratio to its same-run baseline, or its own value, and judges the direction', () => {
    const before = indexFigures(suiteFigures('core', earlier().core));
    const [inline, , ticket, lifecycle] = SAMPLE.core.rows.map((r) => changeOf(rowFigure(r), before));
    expect(inline).toMatchObject({ before: 1.1 / 0.9, after: 1.1, unit: '×', verdict: 'better' });
    expect(inline!.relative).toBeCloseTo(-0.1, 10);
    expect(ticket!.verdict).toBe('same');
    expect(Math.abs(ticket!.relative)).toBeLessThan(NOISE);
    expect(lifecycle).toMatchObject({ before: 100, after: 125, unit: 'ns', verdict: 'worse' });
    // Higher is better for throughput ratios and ≥ goals.
    const cells = indexFigures(suiteFigures('contention', { ...SAMPLE.contention, results: SAMPLE.contention.results.map((c) => ({ ...c, ratio: c.ratio && c.ratio / 2 })) }));
    const futex4 = suiteFigures('contention', SAMPLE.contention).find((f) => f.key === 'futex, 4 workers ÷ raw')!;
    expect(changeOf(futex4, cells)).toMatchObject({ verdict: 'better', relative: 1 });
    expect(changeOf({ ...futex4, key: 'no such row' }, cells)).toBeUndefined();
    // A critical-section cell and a workload row are rows of their own; an allocator's ratio is a time (lower is better).
    const keys = suiteFigures('contention', SAMPLE.contention).map((f) => f.key);
    expect(keys).toContain('futex, 2 workers, 1000 ns in the lock ÷ raw');
    expect(keys).toContain('fence workload: each fence its own inline lock, 4 workers ÷ one timeline lock, borrowed by every fence');
    const alloc = suiteFigures('alloc', SAMPLE.alloc);
    const slower = indexFigures(suiteFigures('alloc', { ...SAMPLE.alloc, cells: SAMPLE.alloc.cells.map((c) => ({ ...c, ratio: c.ratio && c.ratio * 2 })) }));
    expect(changeOf(alloc.find((f) => f.key === 'global-lock free list, 2 workers, 0 live ÷ @thi.ng/malloc (a pool per thread)')!, slower)).toMatchObject({ verdict: 'better', relative: -0.5 });
  });

  it('reads a contention file written before the sweep: its cells are the grid, with ratios from the raw cells', () => {
    const old = {
      ...RUN,
      ms: 50,
      results: [
        { kind: 'raw', threads: 2, mOpsPerSec: 20, fairness: 1, counterOk: true },
        { kind: 'futex', threads: 2, mOpsPerSec: 30, fairness: 0.9, counterOk: true },
      ],
    };
    const read = checkSuiteResults('contention', structuredClone(old), 'old.json');
    expect(read.results[1]).toMatchObject({ baseline: 'raw', ratio: 1.5 });
    expect(suiteFigures('contention', read).map((f) => f.key)).toEqual(['raw, 2 workers', 'futex, 2 workers ÷ raw']);
    const c = charts(renderReport({ contention: read }));
    expect(Object.keys(c)).toEqual(['chart-contention']);
  });

  it('prints a row measured in paired rounds with the interquartile range of its rounds, in the text and the page', () => {
    const row = { name: 'fence lock+unlock inline (tracing off)', nsPerOp: 20, opsPerSec: 5e7, baseline: 'fence lock+unlock inline (a build without tracepoints)' };
    const paired = { ...row, ratio: 1.004, ratioQuartiles: [0.981, 1.027] as [number, number], ratioRounds: 2000, ratioByProcess: [0.99, 1.01], target: '≤ 1.02×', targetMaxRatio: 1.02, met: true };
    const core = { ...SAMPLE.core, rows: [paired, { ...row, ratio: 1.004 }] };
    const [pairedLine, plainLine] = renderText('core', core).split('\n').filter((l) => l.startsWith('fence lock+unlock inline (tracing off)'));
    expect(pairedLine).toMatch(/ 1\.00× \(IQR 0\.98–1\.03\) +≤ 1\.02× +met/);
    expect(plainLine).toMatch(/ 1\.00× *$/);
    expect(renderReport({ core })).toContain('<td>1.00× (IQR 0.98–1.03)</td>');
  });

  it('prints every row with its figure in the baseline run and the change', () => {
    const base = earlier();
    const core = renderText('core', SAMPLE.core, indexFigures(suiteFigures('core', base.core)));
    expect(core).toMatch(/fence lock\+unlock inline .* 1\.10× .* 1\.22× +−10\.0% better/);
    expect(core).toMatch(/fence create\+signal\+put .* 100\.0 ns +\+25\.0% worse/);
    expect(core).toMatch(/SpinLock ticket lock\+unlock .* 3\.20× +\+1\.6% same/);
    const chain = renderText('chain', SAMPLE.chain, indexFigures(suiteFigures('chain', base.chain)));
    expect(chain).toMatch(/chain GC walk \(all signaled\), per link .* – +new row/);
    const wake = renderText('wake', SAMPLE.wake, indexFigures(suiteFigures('wake', base.wake)));
    expect(wake).toMatch(/fence\.wait\(\), spinMicros 0 .* 0\.92× +\+20\.0% worse/);
    for (const text of [
      core,
      chain,
      wake,
      renderText('contention', SAMPLE.contention, indexFigures(suiteFigures('contention', base.contention))),
      renderText('alloc', SAMPLE.alloc, indexFigures(suiteFigures('alloc', base.alloc))),
    ])
      expect(text.split('\n')[1]).toMatch(/before +change$/);
    expect(renderText('core', SAMPLE.core)).not.toMatch(/before +change/);
  });

  it('puts the baseline run\'s figure and the change in every table row, and charts both runs', () => {
    const html = renderReport(SAMPLE, { baseline: { results: earlier(), label: 'old.json (run 2025-12-01)' } });
    const c = charts(html);
    expect(html).toContain('<th>baseline run</th><th>change</th>');
    expect(html).toContain('<td>1.22×</td><td class="better">−10.0% better</td>');
    expect(html).toContain('<td>100.0 ns</td><td class="worse">+25.0% worse</td>');
    expect(html).toContain('<td>–</td><td class="same">not in the baseline run</td>');
    expect(html).toMatch(/Compared with the baseline run old\.json \(run 2025-12-01\): <span class="better">\d+ better<\/span>, <span class="worse">\d+ worse<\/span>/);
    const ratios = c['chart-core-ratios'].data;
    expect(ratios.datasets.map((d) => d.label)).toEqual(['this run', 'baseline run', 'target']);
    expect(ratios.datasets[1].data).toEqual([1.1 / 0.9, 2.5, 3.2]);
    expect(ratios.labels[0]).toEqual(['fence lock+unlock inline', '÷ raw TAS exchange+store', '−10.0% better (was 1.22×)']);
    expect(c['chart-core-rates'].data.datasets[1].data).toEqual([8]);
    expect(c['chart-chain'].data.datasets[1].data).toEqual([130, null]);
    expect(c['chart-wake'].data.datasets.map((d) => d.label)).toEqual(['p50', 'p50, baseline run', 'p90', 'p90, baseline run', 'p99', 'p99, baseline run']);
    expect(c['chart-contention'].data.datasets.map((d) => d.label)).toEqual(['raw', 'futex', 'raw, baseline run', 'futex, baseline run']);
    expect(c['chart-contention-sweep-2'].data.datasets.map((d) => d.label)).toEqual(['raw', 'futex', 'raw, baseline run', 'futex, baseline run']);
    expect(c['chart-contention-workload'].data.datasets.map((d) => d.label)).toEqual([
      'one timeline lock, borrowed by every fence',
      'one timeline lock, borrowed by every fence, baseline run',
      'each fence its own inline lock',
      'each fence its own inline lock, baseline run',
    ]);
    expect(c['chart-alloc'].data.datasets[1]).toMatchObject({ label: 'arena allocBlock+freeBlock, baseline run', data: [80, 160] });
    // A baseline run without a suite's newer figures adds no empty baseline series.
    const older = earlier();
    delete (older as Partial<SuiteResults>).alloc;
    older.contention.results = older.contention.results.map(({ jain: _, ...c }) => c);
    const d = charts(renderReport(SAMPLE, { baseline: { results: older, label: 'older.json' } }));
    expect(d['chart-alloc'].data.datasets.map((x) => x.label)).toEqual(SAMPLE.alloc.cells.slice(0, 3).map((x) => x.impl));
    expect(d['chart-contention-fairness'].data.datasets.map((x) => x.label)).toEqual(['raw', 'futex']);
    expect(d['chart-contention'].data.datasets).toHaveLength(4);
  });

  it('shows a suite that failed in this run as failed, not with its older results', () => {
    const html = renderReport({ core: SAMPLE.core }, { failed: { contention: 'exit code 13' } });
    expect(html).toContain('Failed in this run: contention (exit code 13).');
    expect(html).toContain('<p class="missing missed">contention: failed in this run (exit code 13); no results</p>');
    expect(html).not.toContain('<section id="contention"');
  });
});

describe('readResults and fencelab report', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A temporary results directory holding `files` (strings as they are, anything else as JSON). */
  function resultsDir(files: Record<string, unknown>): string {
    const dir = mkdtempSync(join(tmpdir(), 'fencelab-report-'));
    dirs.push(dir);
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), typeof data === 'string' ? data : JSON.stringify(data));
    return dir;
  }

  function report(args: string[]) {
    const r = spawnSync(process.execPath, [MAIN, 'report', ...args], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('reads the suites present, ignores other files, and takes an older file\'s `when` as its date', () => {
    const { date, ...noDate } = SAMPLE.chain;
    const d = resultsDir({ 'core.json': SAMPLE.core, 'chain.json': { ...noDate, when: date }, 'notes.json': { rows: 1 } });
    const results = readResults(d);
    expect(Object.keys(results).sort()).toEqual(['chain', 'core']);
    expect(results.chain!.date).toBe(date);
    expect(readResults(join(d, 'missing'))).toEqual({});
  });

  it('reads a run file back, and names a file that is not one', () => {
    const run = runFile({ chain: SAMPLE.chain }, { wake: 'exit code 1' });
    const d = resultsDir({ 'run.json': run, 'chain.json': SAMPLE.chain, 'other.json': { format: 'something' }, 'v2.json': { ...run, version: 2 } });
    expect(readRun(join(d, 'run.json'))).toEqual(run);
    expect(() => readRun(join(d, 'chain.json'))).toThrow(/chain\.json: not a fencelab bench run file \(one suite's results/);
    expect(() => readRun(join(d, 'other.json'))).toThrow(/other\.json: not a fencelab bench run file \(no "format"/);
    expect(() => readRun(join(d, 'v2.json'))).toThrow(/run file version 2/);
    expect(() => readRun(join(d, 'missing.json'))).toThrow(/missing\.json: cannot be read \(ENOENT\)/);
    const bad = resultsDir({ 'run.json': { ...run, suites: { core: { rows: 'no' } } } });
    expect(() => readRun(join(bad, 'run.json'))).toThrow(/suites\.core: not core results/);
  });

  it('names a results file that is not JSON or lacks its suite\'s data', () => {
    expect(() => readResults(resultsDir({ 'wake.json': '{ not json' }))).toThrow(/wake\.json: not JSON/);
    expect(() => readResults(resultsDir({ 'contention.json': { rows: [] } }))).toThrow(/contention\.json: not contention results \(no "results" array\)/);
  });

  it('writes report.html from the JSON in --dir, without running anything, and names the suites not run', () => {
    const d = resultsDir({ 'core.json': SAMPLE.core, 'contention.json': SAMPLE.contention });
    const r = report(['--dir', d]);
    expect(r.code, r.stderr).toBe(0);
    const file = join(d, REPORT_FILE);
    expect(r.stdout).toContain(`report: ${file}`);
    expect(r.stdout).toContain('not run (no JSON): alloc, wake, chain');
    expect(existsSync(join(d, 'wake.json'))).toBe(false);
    const c = charts(readFileSync(file, 'utf8'));
    expect(Object.keys(c)).toEqual([
      'chart-core-ratios',
      'chart-core-rates',
      'chart-contention',
      'chart-contention-fairness',
      'chart-contention-sweep-2',
      'chart-contention-workload',
    ]);
  });

  it('exits 2 when there are no results, and 1 with the file name when one is damaged', () => {
    const none = resultsDir({});
    const empty = report(['--dir', none]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/no benchmark results in .* \(run fencelab bench first\)/);
    expect(existsSync(join(none, REPORT_FILE))).toBe(false);
    const blank = report(['--dir', '']);
    expect(blank.code).toBe(2);
    expect(blank.stderr).toMatch(/--dir needs a directory, got an empty string/);
    const damaged = report(['--dir', resultsDir({ 'core.json': '[]' })]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/core\.json: not core results/);
  });
});

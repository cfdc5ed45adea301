/**
 * The HTML benchmark report, from small sample results (no benchmark runs here): every suite's
 * chart data and table rows are in the page, text is escaped, nothing is fetched from a network,
 * a suite without results says it was not run; and `fencelab report` on a results directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CHART_DATA_ID, REPORT_FILE, escapeHtml, renderReport } from '../src/cli/report.js';
import { readResults, type SuiteResults } from '../src/cli/results.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const RUN = { date: '2026-01-02T03:04:05.000Z', node: 'v20.99.0', cores: 3 };
const HOSTILE = '<b>inline & "sanitized"</b>';

const latency = (p50: number) => ({ n: 100, p50, p90: p50 * 2, p99: p50 * 4, mean: p50 * 1.5, min: p50 / 2, max: p50 * 10 });

const SAMPLE: SuiteResults = {
  core: {
    ...RUN,
    rows: [
      { name: 'fence lock+unlock inline', nsPerOp: 20, opsPerSec: 5e7, baseline: 'raw TAS exchange+store', ratio: 1.1, target: '≤ 1.2×', targetMaxRatio: 1.2, met: true },
      { name: HOSTILE, nsPerOp: 40, opsPerSec: 2.5e7, baseline: 'fence lock+unlock inline', ratio: 2.5, target: '≤ 2×', targetMaxRatio: 2, met: false },
      { name: 'SpinLock ticket lock+unlock', nsPerOp: 60, opsPerSec: 1.67e7, baseline: 'raw TAS exchange+store', ratio: 3.25 },
      { name: 'fence create+signal+put', nsPerOp: 125, opsPerSec: 8e6, target: '≥ 5.0 M/s', targetMinOpsPerSec: 5e6, met: true },
    ],
  },
  wake: {
    ...RUN,
    rounds: 100,
    warmup: 10,
    seed: 7,
    delaysUs: { sleep: [20, 60], spin: [4, 6] },
    spinMicros: 30,
    mainSpin: false,
    elapsedMs: 1000,
    variants: [
      { name: 'raw Atomics.wait ← Atomics.notify (sleeping)', latencyNs: latency(10_000), offPath: 0 },
      { name: 'fence.wait(), spinMicros 0 ← signal() (sleeping)', latencyNs: latency(11_000), offPath: 2 },
    ],
    goals: [{ name: 'sleeping waiter p50: fence / raw', measured: 1.1, unit: '×', op: '≤', target: 1.15, met: true }],
  },
  chain: {
    ...RUN,
    chainLength: 4096,
    rows: [
      { name: 'fence create+signal+put', nsPerOp: 130, opsPerSec: 7.7e6 },
      { name: 'chain GC walk (all signaled), per link', nsPerOp: 260, opsPerSec: 3.8e6, baseline: 'fence create+signal+put', ratio: 2 },
    ],
  },
  contention: {
    ...RUN,
    ms: 50,
    results: [1, 2, 4].flatMap((threads) => [
      { kind: 'raw', threads, mOpsPerSec: 40 / threads, fairness: 1, counterOk: true },
      { kind: 'futex', threads, mOpsPerSec: 30 / Math.min(threads, 2), fairness: 0.9, counterOk: true },
    ]),
    goals: [{ name: 'futex throughput, 4 threads / 2 threads (no collapse)', measured: 1, unit: '×', op: '≥', target: 0.5, met: true }],
  },
};

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

  it('has a table row for every row, variant, cell and goal, with met / MISSED, and the run metadata', () => {
    const cells = (text: string) => `<td>${escapeHtml(text)}</td>`;
    for (const r of [...SAMPLE.core.rows, ...SAMPLE.chain.rows]) expect(html).toContain(`<tr>${cells(r.name)}<td>${r.nsPerOp.toFixed(1)}</td>`);
    expect(html).toContain(`${cells('fence lock+unlock inline')}<td>20.0</td><td>1.10×</td>${cells('raw TAS exchange+store')}${cells('≤ 1.2×')}<td class="met">met</td>`);
    expect(html).toContain('<td>2.50×</td><td>fence lock+unlock inline</td><td>≤ 2×</td><td class="missed">MISSED</td>');
    for (const v of SAMPLE.wake.variants) expect(html).toContain(cells(v.name));
    expect(html).toContain('<tr><td>futex</td><td>4</td><td>15</td><td>1.50×</td><td>0.90</td><td>yes</td></tr>');
    for (const g of [...SAMPLE.wake.goals, ...SAMPLE.contention.goals!]) expect(html).toContain(cells(g.name));
    expect(html).toContain('run 2026-01-02T03:04:05.000Z · Node v20.99.0 · 3 cores');
    expect(html).toContain('4 met</span>, <span class="missed">1 missed');
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
    for (const suite of ['core', 'wake', 'contention']) expect(only).toContain(`<p class="missing">${suite}: not run (no ${suite}.json)</p>`);
    expect(only).not.toContain('<section id="core"');
    expect(only).toContain('<section id="chain"');
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
    expect(r.stdout).toContain('not run (no JSON): wake, chain');
    expect(existsSync(join(d, 'wake.json'))).toBe(false);
    const c = charts(readFileSync(file, 'utf8'));
    expect(Object.keys(c)).toEqual(['chart-core-ratios', 'chart-core-rates', 'chart-contention']);
  });

  it('exits 2 when there are no results, and 1 with the file name when one is damaged', () => {
    const none = resultsDir({});
    const empty = report(['--dir', none]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/no benchmark results in .* \(run fencelab bench first\)/);
    expect(existsSync(join(none, REPORT_FILE))).toBe(false);
    const damaged = report(['--dir', resultsDir({ 'core.json': '[]' })]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/core\.json: not core results/);
  });
});

/**
 * `fencelab bench`: every suite really runs (--quick, as CI can afford) and produces all its rows,
 * each with its same-run baseline and ratio, into one run file with where and how it ran; a second
 * run against that file shows every row's change; a failing suite does not stop the others, the
 * run file or the report; bad flags are exit code 2 before anything runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench, type SuiteRunner } from '../src/cli/bench.js';
import { suitesOption } from '../src/cli/options.js';
import { LOCK_KINDS } from '../src/index.js';
import { DEFAULT_SEED, RUN_FORMAT, SUITES, readRun, type BenchRun, type Row, type Suite } from '../src/report/schema.js';
import { SAMPLE } from './support/bench-samples.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const DIST_BENCH = fileURLToPath(new URL('../dist/bench/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fencelab-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/*
 * Bounds for a loaded machine (two busy loops on both cores: the full --quick run took 177 s, a
 * refused flag 5 s): each child about 3× that, each test its children plus a margin.
 */
/** A command that refuses its flags before running anything. */
const SHORT_MS = 60_000;
/** bench --quick, every suite. */
const ALL_SUITES_MS = 540_000;
/** bench --quick, one suite. */
const ONE_SUITE_MS = 300_000;
const MARGIN_MS = 60_000;

function run(args: string[], timeoutMs = SHORT_MS) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The rows every run must produce, quick or not (a renamed or dropped row is a change to review). */
const CORE_ROWS: [string, string?][] = [
  ['SpinLock tas lock+unlock', 'raw TAS exchange+store'],
  ['SpinLock ttas lock+unlock', 'raw TAS exchange+store'],
  ['SpinLock ticket lock+unlock', 'raw TAS exchange+store'],
  ['SpinLock futex lock+unlock', 'raw TAS exchange+store'],
  ['fence lock+unlock inline', 'raw TAS exchange+store'],
  ['fence lock+unlock inline', 'fence lock+unlock borrowed'],
  ['fence withLock(fn) inline', 'raw TAS exchange+store around fn (try/finally)'],
  ['fence lock+unlock inline (sanitize)', 'fence lock+unlock inline'],
  ['fence lock+unlock borrowed (sanitize)', 'fence lock+unlock borrowed'],
  ['fence create+signal+put'],
  ['fence create+signal+put (sanitize)', 'fence create+signal+put'],
  ['fence createTracked+signal+putTracked', 'fence create+signal+put'],
  ['fence share+receive+putTracked', 'fence create+signal+put'],
  ['fence create+signal+put (tracing off)', 'fence create+signal+put (a build without tracepoints)'],
  ['fence lock+unlock inline (tracing off)', 'fence lock+unlock inline (a build without tracepoints)'],
  ['fence create+signal+put (tracing on)', 'fence create+signal+put'],
  ['fence create+signal+put (tracing every tracepoint)', 'fence create+signal+put'],
  ['fence lock+unlock inline (tracing on)', 'fence lock+unlock inline'],
  ['arena allocBlock+freeBlock 64 B', '@thi.ng/malloc alloc+free 64 B'],
  ['arena alloc+free 64 B (public, zeroed)', '@thi.ng/malloc alloc+free 64 B'],
  ['arena allocBlock+freeBlock 64 B, 1000 live', '@thi.ng/malloc alloc+free 64 B, 1000 live'],
];
const CHAIN_BASE = 'fence create+signal+put';
const CHAIN_ROWS: [string, string?][] = [
  [CHAIN_BASE],
  ['chain append (leaf + link, released), per link', CHAIN_BASE],
  ['chain findSeqno (4,096 links, random seqno)', CHAIN_BASE],
  ['chain findSeqno, per link walked', CHAIN_BASE],
  ['chain GC walk (all signaled), per link', CHAIN_BASE],
  ['armed chain signaled backward (signal + re-arm), per link', CHAIN_BASE],
];
const WAKE_VARIANTS: [string, string?][] = [
  ['raw Atomics.wait ← Atomics.notify (sleeping)'],
  ['fence.wait(), spinMicros 0 ← signal() (sleeping)', 'raw Atomics.wait ← Atomics.notify (sleeping)'],
  ['raw Atomics.load spin ← store (~5 µs op)'],
  ['fence.wait(), spin 30 µs ← signal() (~5 µs op)', 'raw Atomics.load spin ← store (~5 µs op)'],
  ['postMessage round trip (echo worker)'],
  ['postMessage one way (main → echo worker)'],
  ['raw Atomics.waitAsync (main) ← notify (worker)'],
  ['fence.waitAsync() (main) ← signal() (worker)', 'raw Atomics.waitAsync (main) ← notify (worker)'],
];

const positive = (x: number | undefined) => typeof x === 'number' && Number.isFinite(x) && x > 0;

function expectRows(rows: Row[], expected: [string, string?][]): void {
  expect(rows.map((r) => [r.name, r.baseline])).toEqual(expected.map(([name, baseline]) => [name, baseline]));
  for (const r of rows) {
    expect(positive(r.nsPerOp) && positive(r.opsPerSec), r.name).toBe(true);
    expect(r.baseline === undefined ? r.ratio === undefined : positive(r.ratio), `${r.name}: ratio ${r.ratio}`).toBe(true);
    // A row of paired rounds: its ratio is their median, so it lies between their quartiles.
    if (r.ratioQuartiles !== undefined) {
      const [q1, q3] = r.ratioQuartiles;
      expect(positive(q1) && q1 <= r.ratio! && r.ratio! <= q3, `${r.name}: ${q1} ≤ ${r.ratio} ≤ ${q3}`).toBe(true);
      expect(r.ratioRounds! > 0 && r.ratioByProcess!.length > 0 && r.ratioByProcess!.every(positive), r.name).toBe(true);
    }
  }
}

describe('fencelab bench --quick', () => {
  const first = join(dir, 'first.json');

  it('runs every suite, each with all its rows, their same-run baselines and ratios, into one run file and the report', () => {
    const html = join(dir, 'first.html');
    const r = run(['bench', '--quick', '--json', first, '--html', html], ALL_SUITES_MS);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    expect(r.stdout).toMatch(/bench: 6 of 6 suites ran in [\d.]+ s\n/);
    const data: BenchRun = readRun(first);
    expect(data).toMatchObject({ format: RUN_FORMAT, version: 1, node: process.version, cores: availableParallelism(), seed: DEFAULT_SEED, quick: true, failed: {} });
    expect(data.cpu.length).toBeGreaterThan(0);
    expect(Number.isFinite(Date.parse(data.date))).toBe(true);
    expect(Object.keys(data.suites)).toEqual([...SUITES]);
    for (const suite of SUITES) expect(data.suites[suite]!.quick, suite).toBe(true);

    expectRows(data.suites.core!.rows, CORE_ROWS);
    // Every ratio with a target, and the every-tracepoint row, is measured in paired rounds and
    // carries its spread; the SpinLock and tracked rows (no ratio target) are timed one after the other.
    const core = data.suites.core!.rows;
    expect(core.filter((r) => r.ratioQuartiles !== undefined)).toEqual(core.filter((r) => r.targetMaxRatio !== undefined || r.name.endsWith('(tracing every tracepoint)')));
    expect(core.filter((r) => r.ratioQuartiles !== undefined)).toHaveLength(14);
    expectRows(data.suites.chain!.rows, CHAIN_ROWS);
    const wake = data.suites.wake!;
    expect(wake.seed).toBe(DEFAULT_SEED);
    expect(wake.variants.map((v) => [v.name, v.baseline])).toEqual(WAKE_VARIANTS.map(([name, baseline]) => [name, baseline]));
    for (const v of wake.variants) {
      expect(positive(v.latencyNs.p50) && v.latencyNs.n === wake.rounds, v.name).toBe(true);
      expect(v.baseline === undefined ? v.ratioP50 === undefined : positive(v.ratioP50) && positive(v.ratioP99), v.name).toBe(true);
    }
    expect(wake.goals).toHaveLength(6);
    const contention = data.suites.contention!;
    const kinds = ['raw', ...LOCK_KINDS, 'fence inline', 'fence borrowed'];
    const cell = (t: number, cs: number) => kinds.map((k) => [k, t, cs, k === 'raw' ? undefined : 'raw']);
    expect(contention.results.map((c) => [c.kind, c.threads, c.csNs, c.baseline])).toEqual([
      ...[1, 2, 4, 8].flatMap((t) => cell(t, 0)),
      ...[100, 1000, 10_000].flatMap((cs) => [2, 4].flatMap((t) => cell(t, cs))),
    ]);
    for (const c of contention.results) {
      // The suite fails on a lost update; a cell that ran says so.
      expect(c.counterOk, `${c.kind} × ${c.threads}`).toBe(true);
      expect(c.jain! > 0 && c.jain! <= 1 + 1e-9, `${c.kind} × ${c.threads}: Jain ${c.jain}`).toBe(true);
      // A starved lock may make few acquisitions in a short cell, but its ratio is never missing.
      if (c.kind === 'raw') expect(positive(c.mOpsPerSec)).toBe(true);
      else expect(Number.isFinite(c.ratio) && c.ratio! >= 0, `${c.kind} × ${c.threads}`).toBe(true);
    }
    const shared = 'one timeline lock, borrowed by every fence';
    expect(contention.workload!.map((w) => [w.variant, w.threads, w.baseline])).toEqual(
      [2, 4, 8].flatMap((t) => [
        [shared, t, undefined],
        ['each fence its own inline lock', t, shared],
      ]),
    );
    for (const w of contention.workload!) expect(positive(w.kFencesPerSec) && w.callbacks >= 0 && positive(w.statusReads), w.variant).toBe(true);
    expect(contention.goals).toHaveLength(3);
    const alloc = data.suites.alloc!;
    const impls = ['arena alloc+free (public, zeroed)', 'arena allocBlock+freeBlock', '@thi.ng/malloc (a pool per thread)', 'global-lock free list'];
    expect(alloc.cells.map((c) => [c.impl, c.threads, c.live, c.baseline])).toEqual(
      [0, 1000].flatMap((live) => [1, 2].flatMap((t) => impls.map((i) => [i, t, live, i === impls[2] ? undefined : impls[2]]))),
    );
    for (const c of alloc.cells) expect(positive(c.mOpsPerSec) && positive(c.nsPerOp) && (c.baseline === undefined || positive(c.ratio)), c.impl).toBe(true);
    // Every allocator and live set in paired rounds of 1 and 2 workers: the scaling is the median of the rounds' own, inside their quartiles.
    expect(positive(alloc.rounds)).toBe(true);
    expect(alloc.scalingRounds!.map((r) => [r.impl, r.live, r.rounds])).toEqual([0, 1000].flatMap((live) => impls.map((i) => [i, live, alloc.rounds])));
    for (const r of alloc.scalingRounds!) {
      const [q1, q3] = r.scalingQuartiles;
      expect(r.mOpsPerSec.every(positive) && positive(q1) && q1 <= r.scaling && r.scaling <= q3, `${r.impl}, ${r.live} live: ${q1} ≤ ${r.scaling} ≤ ${q3}`).toBe(true);
      // Shares of a window: the workers' overlap may be 0 on a loaded machine, never outside [0, 1].
      expect(Number.isFinite(r.overlap) && r.overlap >= 0 && r.overlap <= 1, `${r.impl}: overlap ${r.overlap}`).toBe(true);
      if (r.onCpu !== undefined) expect(r.onCpu.every((x) => Number.isFinite(x) && x >= 0), `${r.impl}: on CPU ${r.onCpu}`).toBe(true);
      if (r.cpuScaling !== undefined) expect(positive(r.cpuScalingQuartiles![0]) && r.cpuScalingQuartiles![0] <= r.cpuScaling && r.cpuScaling <= r.cpuScalingQuartiles![1], `${r.impl}: per CPU s ${r.cpuScaling}`).toBe(true);
    }
    expect(alloc.goals).toHaveLength(2);
    expect(alloc.goals[0].measured).toBe(alloc.scalingRounds!.find((r) => r.impl === impls[1] && r.live === 0)!.scaling);
    const piscina = data.suites.piscina!;
    const fenceChain = '1000-task chain, fence-driven (per task)';
    const awaitChain = '1000-task chain, main awaits each pool.run (per task)';
    expectRows(piscina.chain, [[awaitChain], [fenceChain, awaitChain]]);
    const sides = ['await pool.run', 'out-fence wait() (spin, then Atomics.wait)', 'out-fence waitAsync()', 'out-fence spin, then waitAsync()'];
    expect(piscina.variants.map((v) => [v.schedule, v.name, v.baseline])).toEqual(
      ['back to back', 'back to back, from idle', 'after 1000 µs idle'].flatMap((s) => sides.map((n, i) => [s, n, i === 0 ? undefined : sides[0]])),
    );
    for (const v of piscina.variants) {
      expect(positive(v.latencyNs.p50) && v.latencyNs.n >= piscina.tasks, v.name).toBe(true);
      expect(v.baseline === undefined ? v.ratioP50 === undefined : positive(v.ratioP50) && positive(v.ratioP99), v.name).toBe(true);
    }
    expect(piscina.goals).toHaveLength(2);

    const page = readFileSync(html, 'utf8');
    for (const suite of SUITES) expect(page).toContain(`<section id="${suite}">`);
    expect(page).not.toContain('failed in this run');
  }, ALL_SUITES_MS + MARGIN_MS);

  it('with --baseline, shows every row\'s change against that run in the printed tables and the report', () => {
    const html = join(dir, 'second.html');
    const json = join(dir, 'second.json');
    const r = run(['bench', '--quick', '--suite', 'chain', '--baseline', first, '--json', json, '--html', html], ONE_SUITE_MS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^task +ns\/op .* before +change$/m);
    for (const [name] of CHAIN_ROWS) expect(r.stdout).toMatch(new RegExp(`${name.replace(/[()+.]/g, '\\$&')} .* [+−]\\d+\\.\\d% (better|worse|same)\\n`));
    expect(Object.keys(readRun(json).suites)).toEqual(['chain']);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(`Compared with the baseline run ${first}`);
    expect(page).toContain('<th>baseline run</th><th>change</th>');
    expect(page).toContain('"label":"baseline run"');
  }, ONE_SUITE_MS + MARGIN_MS);
});

describe('runBench', () => {
  it('runs every suite once, in order, writes the run file and the report even when one fails, and names it', () => {
    const json = join(dir, 'failing.json');
    const html = join(dir, 'failing.html');
    const calls: [Suite, string[]][] = [];
    const runner: SuiteRunner = (suite, args) => {
      calls.push([suite, args]);
      if (suite === 'wake') return 'exit code 13';
      const out = args[args.indexOf('--out') + 1];
      writeFileSync(out, suite === 'chain' ? '{ "rows": 1 }' : JSON.stringify(SAMPLE[suite]));
      return undefined;
    };
    const log: string[] = [];
    const outcome = runBench({ suites: ['contention', 'wake', 'core', 'chain', 'core'], quick: true, seed: 5, json, html }, runner, (l) => log.push(l));
    expect(calls.map(([s]) => s)).toEqual(['core', 'wake', 'chain', 'contention']);
    for (const [, args] of calls) expect(args).toEqual(expect.arrayContaining(['--quick', '--seed', '5', '--out']));
    expect(outcome.failed.map(([s, why]) => [s, why.replace(/:.*/, '')])).toEqual([
      ['wake', 'exit code 13'],
      ['chain', 'its results cannot be read'],
    ]);
    const data = readRun(json);
    expect(Object.keys(data.suites)).toEqual(['core', 'contention']);
    expect(data.suites.core).toEqual(SAMPLE.core);
    expect(Object.keys(data.failed)).toEqual(['wake', 'chain']);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('Failed in this run: wake (exit code 13), chain (its results cannot be read');
    expect(page).toContain('<section id="core">');
    expect(page).toContain('<section id="contention">');
    expect(log.at(-1)).toMatch(/^bench: 2 of 4 suites ran in [\d.]+ s; FAILED: wake, chain$/);
  });
});

describe('fencelab bench flags', () => {
  it('takes --suite repeated or as a comma list', () => {
    expect(suitesOption('wake', suitesOption('core, chain', undefined))).toEqual(['core', 'chain', 'wake']);
    expect(suitesOption('all', undefined)).toEqual([...SUITES]);
  });

  it('rejects bad flags with exit code 2 and a clear message, before running anything', () => {
    const suiteFile = join(dir, 'chain-only.json');
    writeFileSync(suiteFile, JSON.stringify(SAMPLE.chain));
    const cases: [string[], RegExp][] = [
      [['bench', '--suite', 'core,nope'], /unknown suite "nope"\. Allowed choices are core, alloc, wake, chain, contention, piscina, all/],
      [['bench', '--suite'], /argument missing/],
      [['bench', '--baseline', join(dir, 'missing.json')], /missing\.json: cannot be read \(ENOENT\)/],
      [['bench', '--baseline', suiteFile], /chain-only\.json: not a fencelab bench run file \(one suite's results/],
      [['bench', '--seed', 'x'], /--seed must be an integer/],
      [['bench', '--json', dir], /is a directory, not a file/],
      [['bench', '--html', ''], /--html needs a file name/],
      [['bench', '--quick', 'extra'], /too many arguments/],
      [['bench', '--bogus'], /unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout, args.join(' ')).not.toContain('=== bench');
    }
  }, 5 * SHORT_MS);

  it('each suite refuses an unknown option with exit code 2', () => {
    const r = spawnSync(process.execPath, [join(DIST_BENCH, 'chain.bench.js'), '--bogus'], { encoding: 'utf8', timeout: SHORT_MS });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/chain bench: Unknown option '--bogus'/);
    expect(existsSync(join(DIST_BENCH, 'chain.bench.js'))).toBe(true);
  });
});

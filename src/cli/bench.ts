/**
 * `fencelab bench`: runs the benchmark suites, gathers their results into the results directory or
 * one run file, and writes the HTML report.
 *
 * Each suite runs as its own process, from its compiled file dist/bench/<suite>.bench.js, found by
 * path next to this module's compiled file: a process boundary, not an import, so the command and
 * bench/ do not depend on each other (both depend on src/report/, which depends on neither). The
 * suites' command line (--quick, --seed, --out, --baseline, --gathered) is described in bench/util.ts. A suite
 * that fails does not stop the others: every suite runs, the results of those that succeeded are
 * written with the report, and the failures are returned for the exit code.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPORT_FILE, TRACE_SAMPLE_FILE, writeReport } from '../report/html.js';
import type { ChromeTrace } from '../trace/chrome.js';
import { timelinePath } from './tracefile.js';
import {
  RESULTS_DIR,
  RUN_FORMAT,
  RUN_VERSION,
  SUITES,
  readResults,
  readSuiteFile,
  type BenchResults,
  type BenchRun,
  type Suite,
} from '../report/schema.js';

export interface BenchOptions {
  /** The suites to run, in any order, repeats allowed (they run once each, in the order of SUITES). */
  suites: readonly Suite[];
  quick: boolean;
  seed: number;
  /** Run file to write; without it each suite's results go to bench/results/<suite>.json. */
  json?: string;
  /** Report to write; default bench/results/report.html. */
  html?: string;
  /** An earlier run file (already read and checked), to show each row's change against. */
  baseline?: { file: string; run: BenchRun };
  /** Also record a short traced run next to the report and show its timeline there. */
  trace?: boolean;
  /** Suites' own options (see {@link SUITE_OPTIONS}), passed to every suite as they are. */
  suiteOptions?: readonly string[];
}

/** An option some suites take of their own (bench/<suite>.bench.ts), which `fencelab bench` forwards. */
export interface SuiteOption {
  /** The option as the suites take it, e.g. `--goal-rounds`. */
  name: string;
  /** Takes a value (a positive integer); else a flag. */
  value: boolean;
  /** The suites that take it, with what it sets in each. */
  suites: Partial<Record<Suite, string>>;
}

/** The suites' own options, as their programs take them (their headers say more). */
export const SUITE_OPTIONS: readonly SuiteOption[] = [
  { name: '--ms', value: true, suites: { alloc: 'ms per slice (60, quick 25)', contention: 'ms per cell (200, quick 40)' } },
  { name: '--rounds', value: true, suites: { alloc: 'paired rounds (15, quick 3)', wake: 'rounds per variant (20000, quick 200)', piscina: 'rounds (6, quick 2)' } },
  { name: '--reps', value: true, suites: { contention: 'repetitions of each cell (3, quick 1)' } },
  { name: '--goal-rounds', value: true, suites: { contention: 'rounds of the goal comparison (9, quick 3)' } },
  { name: '--tasks', value: true, suites: { piscina: 'tasks per variant and schedule (2400, quick 120)' } },
  { name: '--linger', value: true, suites: { piscina: 'µs idle workers linger' } },
  { name: '--main-spin', value: false, suites: { wake: 'the parent spins instead of waiting' } },
  { name: '--samples', value: false, suites: { wake: 'also dump the latency samples' } },
];

/**
 * The suites' own options `given` (name → value, true for a flag) as the suites' arguments.
 * Throws an Error naming the option and the suites that take it when a selected suite does not.
 */
export function suiteOptionArgs(given: ReadonlyMap<string, number | true>, suites: readonly Suite[]): string[] {
  const args: string[] = [];
  for (const [name, value] of given) {
    const takers = Object.keys(SUITE_OPTIONS.find((x) => x.name === name)?.suites ?? {}) as Suite[];
    const others = [...new Set(suites)].filter((s) => !takers.includes(s));
    if (others.length > 0)
      throw new Error(`${name} is an option of the ${takers.join(', ')} suite${takers.length > 1 ? 's' : ''} only, not of ${others.join(', ')}: select only ${takers.length > 1 ? 'those' : 'it'} (--suite ${takers.join(',')})`);
    args.push(name, ...(value === true ? [] : [String(value)]));
  }
  return args;
}

/** Runs one suite's process with `args`; returns undefined when it succeeded, else what went wrong. */
export type SuiteRunner = (suite: Suite, args: string[], timeoutMs: number) => string | undefined;

export interface BenchOutcome {
  run: BenchRun;
  /** The run file written, with --json. */
  jsonFile?: string;
  reportFile: string;
  /** The suites that failed, with what happened, in the order they ran. */
  failed: [Suite, string][];
}

/** How long a suite may run before it is killed and counted as failed (a hang must not hang the command). */
export const SUITE_TIMEOUT_MS = { full: 15 * 60_000, quick: 3 * 60_000 };

/** The compiled file of `suite` (in a clone; the npm package ships no suites). */
export function suiteFile(suite: Suite): string {
  return fileURLToPath(new URL(`../../bench/${suite}.bench.js`, import.meta.url));
}

/** Runs a suite from its compiled file, its output going to this process's stdout and stderr. */
export const spawnSuite: SuiteRunner = (suite, args, timeoutMs) => {
  const file = suiteFile(suite);
  const r = spawnSync(process.execPath, [file, ...args], { stdio: 'inherit', timeout: timeoutMs, killSignal: 'SIGKILL' });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') return `timed out after ${Math.round(timeoutMs / 1000)} s`;
  if (r.error) return r.error.message;
  if (r.signal) return `signal ${r.signal}`;
  return r.status === 0 ? undefined : `exit code ${r.status}`;
};

/**
 * Runs `o.suites` one after another, then writes the run file (with --json) and the report.
 * The report shows this run's suites; without --json also the latest results of the suites not run
 * this time that are in bench/results/. A failed suite is shown as failed, never with older results.
 * Throws only when a file cannot be written.
 */
export function runBench(o: BenchOptions, runSuite: SuiteRunner = spawnSuite, log: (line: string) => void = console.log): BenchOutcome {
  const started = new Date();
  const load = loadavg()[0];
  const t0 = performance.now();
  const suites = SUITES.filter((s) => o.suites.includes(s));
  const { results, failed } = runSuites(o, suites, runSuite, log);

  const run: BenchRun = {
    format: RUN_FORMAT,
    version: RUN_VERSION,
    date: started.toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    seed: o.seed,
    quick: o.quick,
    load,
    suites: results,
    failed: Object.fromEntries(failed),
  };
  log('');
  let jsonFile: string | undefined;
  if (o.json !== undefined) {
    mkdirSync(dirname(o.json), { recursive: true });
    writeFileSync(o.json, JSON.stringify(run, null, 2));
    jsonFile = o.json;
    log(`json: ${jsonFile}`);
  }
  const shown = o.json === undefined ? withOlderResults(results, failed, log) : results;
  const reportFile = o.html ?? join(RESULTS_DIR, REPORT_FILE);
  mkdirSync(dirname(reportFile), { recursive: true });
  const trace = o.trace ? traceSample(reportFile, log) : undefined;
  writeReport(reportFile, shown, {
    run,
    trace,
    failed: run.failed,
    baseline: o.baseline ? { results: o.baseline.run.suites, label: `${o.baseline.file} (run ${o.baseline.run.date}${o.baseline.run.quick ? ', quick' : ''})` } : undefined,
  });
  log(`report: ${reportFile}`);
  const notRun = SUITES.filter((s) => shown[s] === undefined && run.failed[s] === undefined);
  if (notRun.length > 0) log(`not in the report (not run): ${notRun.join(', ')}`);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  log(`bench: ${suites.length - failed.length} of ${suites.length} suites ran in ${seconds} s${failed.length ? `; FAILED: ${failed.map(([s]) => s).join(', ')}` : ''}`);
  return { run, jsonFile, reportFile, failed };
}

/** Runs `suites` one after the other, each in its own process. Returns their results and the suites that failed, with why. */
function runSuites(o: BenchOptions, suites: Suite[], runSuite: SuiteRunner, log: (line: string) => void): { results: BenchResults; failed: [Suite, string][] } {
  const outDir = o.json === undefined ? RESULTS_DIR : mkdtempSync(join(tmpdir(), 'fencelab-bench-'));
  const results: BenchResults = {};
  const failed: [Suite, string][] = [];
  try {
    suites.forEach((suite, i) => {
      log(`\n=== bench ${suite} (${i + 1} of ${suites.length}${o.quick ? ', quick' : ''}) ===`);
      const out = join(outDir, `${suite}.json`);
      const args = ['--out', out, '--gathered', '--seed', String(o.seed), ...(o.quick ? ['--quick'] : []), ...(o.baseline ? ['--baseline', o.baseline.file] : []), ...(o.suiteOptions ?? [])];
      const ts = performance.now();
      let why = runSuite(suite, args, o.quick ? SUITE_TIMEOUT_MS.quick : SUITE_TIMEOUT_MS.full);
      log(`(${suite}: ${why === undefined ? 'done' : 'FAILED'} in ${((performance.now() - ts) / 1000).toFixed(1)} s)`);
      if (why === undefined) {
        try {
          (results as Record<Suite, unknown>)[suite] = readSuiteFile(suite, out);
        } catch (e) {
          why = `its results cannot be read: ${e instanceof Error ? e.message : String(e)}`;
        }
      }
      if (why !== undefined) failed.push([suite, why]);
      else if (o.json === undefined) log(`results: ${out}`);
    });
  } finally {
    if (o.json !== undefined) rmSync(outDir, { recursive: true, force: true });
  }
  return { results, failed };
}

/** The page shows every suite's latest results, not only this run's (as the results directory holds them). */
function withOlderResults(results: BenchResults, failed: [Suite, string][], log: (line: string) => void): BenchResults {
  try {
    const shown: BenchResults = { ...readResults(RESULTS_DIR), ...results };
    for (const [suite] of failed) delete shown[suite];
    return shown;
  } catch (e) {
    log(`(older results left out of the report: ${e instanceof Error ? e.message : String(e)})`);
    return results;
  }
}

/**
 * The traced sample's file for `reportFile`: trace.json in the results directory (where `report`
 * finds it), else named after the report (`before.html` → `before.trace.json`), so that writing a
 * report elsewhere never overwrites a trace.json of the user's.
 */
export function traceSamplePath(reportFile: string): string {
  if (resolve(reportFile) === resolve(RESULTS_DIR, REPORT_FILE)) return join(RESULTS_DIR, TRACE_SAMPLE_FILE);
  return join(dirname(reportFile), `${basename(reportFile).replace(/\.html?$/i, '')}.trace.json`);
}

/** Records the report's traced sample next to `reportFile`. Returns it, or undefined (said why in the log). */
function traceSample(reportFile: string, log: (line: string) => void): { trace: ChromeTrace; file: string } | undefined {
  const file = traceSamplePath(reportFile);
  const why = recordTraceSample(file);
  if (why !== undefined) {
    log(`(no traced sample in the report: ${why})`);
    return undefined;
  }
  log(`trace sample: ${file} and its timeline ${timelinePath(file)}`);
  return { trace: readTraceSample(file), file: basename(file) };
}

/**
 * Records the report's traced sample: a short stress run (one exporter, one importer, callbacks and
 * cancels, no kills) with --trace, in its own process like the suites. Returns what went wrong, or
 * undefined.
 */
function recordTraceSample(file: string): string | undefined {
  // --force: the bench command checked `file` and its page before it ran (with its own --force or without).
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = ['stress', '--ops', '150', '--exporters', '1', '--importers', '1', '--kill-rate', '0', '--seed', 'trace-sample', '--json', '--trace', file, '--force'];
  const r = spawnSync(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  if (r.error) return r.error.message;
  return r.status === 0 ? undefined : `exit code ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-1)[0]}`;
}

/** Reads a trace sample file written by {@link recordTraceSample}. Throws when it is not a Chrome trace. */
export function readTraceSample(file: string): ChromeTrace {
  const t = JSON.parse(readFileSync(file, 'utf8')) as ChromeTrace;
  if (!Array.isArray(t?.traceEvents)) throw new Error(`${file} is not a Chrome trace`);
  return t;
}

/**
 * What the suites share: their command line, tinybench tasks that run an inner loop (so a ~20 ns
 * operation is not drowned by the harness's per-call cost), rows as ratios against baselines
 * measured in the same run, goals, workers started without losing their events, and the end of a
 * suite (results written as JSON in the format of src/report/schema.ts, tables printed by
 * src/report/text.ts).
 *
 * A suite is a program, and `fencelab bench` runs each one as a child process by its compiled path
 * (dist/bench/<suite>.bench.js): a process boundary, not an import, so bench/ and src/cli/ do not
 * depend on each other; both depend on src/report/. Every suite takes:
 *
 *   --quick            fewer rounds and shorter times, the same rows (a check that it runs, and a first look)
 *   --seed N           the seed of its seeded choices (default 0x5eed)
 *   --out FILE         where its results go (default bench/results/<suite>.json)
 *   --baseline FILE    a run file (fencelab bench --json): its tables show each row's change against it
 *   --gathered         run by fencelab bench, which gathers FILE into its own output (and may delete it):
 *                      the suite does not print FILE's path
 *
 * and measures, prints its tables, writes FILE and exits 0; on any failure it writes no results,
 * says why on stderr and exits non-zero. Unknown options exit 2.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Bench } from 'tinybench';
import { indexFigures, suiteFigures } from '../src/report/compare.js';
import { DEFAULT_SEED, RESULTS_DIR, readRun, type Goal, type Row, type RunInfo, type Suite, type SuiteResults } from '../src/report/schema.js';
import { renderText } from '../src/report/text.js';

export type { Goal, Row };

/** A suite's command line (see the header), with its own options' values. */
export interface SuiteArgs {
  quick: boolean;
  seed: number;
  out: string;
  baseline?: string;
  /** Run by `fencelab bench`, which says where the results went: `out` is not printed. */
  gathered: boolean;
  /** The suite's own options, as `parseArgs` returns them. */
  own: Record<string, string | boolean | undefined>;
}

/**
 * Parses the suite's command line: the options every suite takes plus `own`. On a bad option it
 * prints why and exits 2.
 */
export function suiteArgs(suite: Suite, own: NonNullable<ParseArgsConfig['options']> = {}): SuiteArgs {
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        seed: { type: 'string' },
        out: { type: 'string' },
        baseline: { type: 'string' },
        gathered: { type: 'boolean', default: false },
        ...own,
      },
    });
    const seedText = values.seed as string | undefined;
    const seed = seedText === undefined ? DEFAULT_SEED : Number(seedText);
    if (!Number.isSafeInteger(seed) || seed < 0 || !/^\d+$/.test(seedText ?? '0')) throw new Error(`--seed must be a non-negative integer, got "${seedText}"`);
    return {
      quick: values.quick as boolean,
      seed,
      out: resolve((values.out as string | undefined) ?? join(RESULTS_DIR, `${suite}.json`)),
      baseline: values.baseline as string | undefined,
      gathered: values.gathered as boolean,
      own: values as SuiteArgs['own'],
    };
  } catch (e) {
    const ownUsage = Object.entries(own).map(([name, o]) => (o.type === 'boolean' ? `[--${name}]` : `[--${name} N]`));
    console.error(`${suite} bench: ${e instanceof Error ? e.message : String(e)}`);
    console.error(`usage: node dist/bench/${suite}.bench.js [--quick] [--seed N] [--out FILE] [--baseline FILE] ${ownUsage.join(' ')}`.trimEnd());
    process.exit(2);
  }
}

/** A positive integer option of the suite's own, or `dflt`; exits 2 on anything else. */
export function positiveInt(args: SuiteArgs, name: string, dflt: number): number {
  const text = args.own[name];
  if (text === undefined) return dflt;
  const n = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0) {
    console.error(`--${name} needs a positive integer, got "${String(text)}"`);
    process.exit(2);
  }
  return n;
}

/**
 * How long tinybench runs each task: at least `timeMs` and `iterations` calls (and `warmupMs` and
 * `warmupIterations` calls before), whichever takes longer.
 */
export interface Timing {
  timeMs: number;
  warmupMs: number;
  iterations: number;
  warmupIterations: number;
}

/** Runs each `[name, fn]` where fn performs `inner` operations; returns ns per operation. */
export async function measure(tasks: [string, () => void][], inner: number, timing: Timing): Promise<Map<string, number>> {
  const bench = new Bench({ time: timing.timeMs, warmup: true, warmupTime: timing.warmupMs, iterations: timing.iterations, warmupIterations: timing.warmupIterations });
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

/**
 * tinybench time per task: the full run's, and --quick's (60 and 20 ms: a seventh, for noisier
 * figures of the same rows; on a loaded machine a quick run is a check that every row is there,
 * and its time is mostly these times added up over every task of every suite). The full run keeps tinybench's minimum calls (64, 16 to warm up); --quick takes 8 and 2: a
 * task whose call lasts milliseconds (a chain walk of 64 finds) made the minimum, not the time,
 * what a quick run spent (~1.5 s of its chain suite for one task).
 */
export function timing(quick: boolean): Timing {
  return quick ? { timeMs: 60, warmupMs: 20, iterations: 8, warmupIterations: 2 } : { timeMs: 400, warmupMs: 100, iterations: 64, warmupIterations: 16 };
}

/** Builds a row, with a ratio against `baseline` when given and a `≤ x` / `≥ x` target check. */
export function row(results: Map<string, number>, name: string, baseline?: string, target?: { max?: number; minOpsPerSec?: number }): Row {
  const ns = results.get(name);
  if (ns === undefined) throw new Error(`no measurement named "${name}"`);
  const r: Row = { name, nsPerOp: ns, opsPerSec: 1e9 / ns };
  if (baseline) {
    const base = results.get(baseline);
    if (base === undefined) throw new Error(`no measurement named "${baseline}" (the baseline of "${name}")`);
    r.baseline = baseline;
    r.ratio = ns / base;
  }
  if (target?.max !== undefined && r.ratio !== undefined) {
    r.target = `≤ ${Number(target.max.toFixed(2))}×`;
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

/** Jain's fairness index of `xs` ((Σx)² / (n·Σx²)): 1 when all are equal, 1/n when one has everything, 0 when all are 0. */
export function jainIndex(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 0 : (sum * sum) / (xs.length * squares);
}

/** A goal on a derived figure, checked: `measured op target`. */
export function goal(name: string, measured: number, unit: Goal['unit'], op: Goal['op'], target: number): Goal {
  return { name, measured, unit, op, target, met: op === '≤' ? measured <= target : measured >= target };
}

/** Where, when and how this run happened, for the results file. */
export function runInfo(args: SuiteArgs): Required<RunInfo> {
  return { date: new Date().toISOString(), node: process.version, cores: availableParallelism(), cpu: cpus()[0]?.model.trim() ?? 'unknown', quick: args.quick, load: loadavg()[0] };
}

/**
 * Ends a suite: writes `data` to `--out`, then prints its tables, with each row's change against the
 * `--baseline` run when one was given. Throws when the baseline cannot be read (the results are
 * written by then).
 */
export function finishSuite<S extends Suite>(suite: S, args: SuiteArgs, data: SuiteResults[S]): void {
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, JSON.stringify(data, null, 2));
  let note = '';
  let figures;
  if (args.baseline !== undefined) {
    const before = readRun(args.baseline).suites[suite];
    if (before === undefined) note = `\n(the baseline run ${args.baseline} has no ${suite} results: nothing to compare)`;
    else {
      figures = indexFigures(suiteFigures(suite, before));
      note = `\n(before, change: each row's ratio to its same-run baseline, or its own value when it has none, against the baseline run ${args.baseline} of ${before.date ?? 'unknown date'})`;
    }
  }
  console.log(`\n${renderText(suite, data, figures)}${note}`);
  if (!args.gathered) console.log(`\nresults: ${args.out}`);
}

/** A worker with every event the suite needs already being listened for. */
export interface StartedWorker<T> {
  worker: Worker;
  /** Settles when the worker is running. */
  online: Promise<void>;
  /** The worker's first message; rejects when it fails or exits before posting one. */
  first: Promise<T>;
  /** Its exit code, whenever it exits. */
  exited: Promise<number>;
  /** Set as soon as the worker failed (an uncaught error, or an exit before its first message). */
  failure: Error | undefined;
}

/**
 * Starts a worker on `url`, with `argv` after its process.argv's first two. Every listener is attached here, before the caller can do anything that
 * makes the worker post or exit: an event that fired before its listener existed is lost, and
 * awaiting it afterwards never settles (the process then ends with exit code 13, an unsettled
 * top-level await). Callers await `first` and `exited` when they need them, never a fresh `once()`.
 */
export function startWorker<T>(url: URL, workerData: unknown, argv?: string[]): StartedWorker<T> {
  const worker = new Worker(url, { workerData, argv });
  const w = { worker, failure: undefined } as StartedWorker<T>;
  w.online = new Promise<void>((res) => worker.once('online', () => res()));
  w.exited = new Promise<number>((res) => worker.once('exit', res));
  let posted = false;
  w.first = new Promise<T>((res, rej) => {
    worker.once('message', (m: T) => {
      posted = true;
      res(m);
    });
    worker.once('error', (e) => {
      w.failure ??= e;
      rej(e);
    });
    // Node delivers what a worker posted before it emits the worker's 'exit'.
    worker.once('exit', (code) => {
      if (posted) return;
      const e = new Error(`worker exited with code ${code} before it posted a message`);
      w.failure ??= e;
      rej(e);
    });
  });
  // Awaited later, or not at all (the suite may end on another failure first): never an unhandled rejection.
  w.first.catch(() => {});
  return w;
}

/**
 * The benchmark results format: what each suite in bench/ writes to bench/results/<suite>.json
 * and what the HTML report reads back. The writers are typed against these interfaces (see
 * `writeResults` in bench/util.ts), so a suite cannot drop a field the report charts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUITES = ['core', 'wake', 'chain', 'contention'] as const;
export type Suite = (typeof SUITES)[number];

/** bench/results/ at the package root, whether this module runs from dist/ or from the sources. */
export const RESULTS_DIR = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(join('dist', 'src')) ? join(here, '..', '..', '..') : join(here, '..', '..');
  return join(root, 'bench', 'results');
})();

/**
 * Where and when a suite ran. Optional because result files written before the report existed
 * lack some of them; every suite writes all three now (`runInfo()` in bench/util.ts).
 */
export interface RunInfo {
  /** ISO 8601. */
  date?: string;
  node?: string;
  /** `os.availableParallelism()` of the machine that ran the suite. */
  cores?: number;
}

/** One measured task, optionally as a ratio to a baseline measured in the same run. */
export interface Row {
  name: string;
  nsPerOp: number;
  opsPerSec: number;
  baseline?: string;
  /** nsPerOp / the baseline's nsPerOp. */
  ratio?: number;
  /** The target as printed: `≤ 1.2×` or `≥ 5.0 M/s`. */
  target?: string;
  /** The bound of a `≤ x×` target, in the unit of `ratio`. */
  targetMaxRatio?: number;
  /** The bound of a `≥ x M/s` target, in the unit of `opsPerSec`. */
  targetMinOpsPerSec?: number;
  met?: boolean;
}

/** A goal checked on a derived figure (a ratio of percentiles, a latency, a throughput ratio). */
export interface Goal {
  name: string;
  measured: number;
  unit: '×' | 'µs';
  op: '≤' | '≥';
  target: number;
  met: boolean;
}

/** Latency percentiles of one wake variant, in ns. */
export interface LatencyStat {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export interface CoreResults extends RunInfo {
  rows: Row[];
}

export interface ChainResults extends RunInfo {
  chainLength: number;
  rows: Row[];
}

export interface WakeVariant {
  name: string;
  latencyNs: LatencyStat;
  /** Time inside signal()/notify() on the signaling thread (main-thread signalers only). */
  signalCostNs?: LatencyStat;
  /** Rounds where the waiter did not take the intended path (slept when it should spin, …). */
  offPath: number;
  /** Every sample in round order, with `--samples` only. */
  samplesNs?: number[];
}

export interface WakeResults extends RunInfo {
  rounds: number;
  warmup: number;
  seed: number;
  delaysUs: { sleep: [number, number]; spin: [number, number] };
  spinMicros: number;
  mainSpin: boolean;
  elapsedMs: number;
  variants: WakeVariant[];
  goals: Goal[];
}

/** One cell of the contention grid: a lock kind at a worker count. */
export interface ContentionCell {
  kind: string;
  threads: number;
  mOpsPerSec: number;
  /** Slowest thread's acquisitions / fastest thread's. */
  fairness: number;
  /** Every increment made under the lock was kept. */
  counterOk: boolean;
}

export interface ContentionResults extends RunInfo {
  /** Duration of each cell. */
  ms: number;
  results: ContentionCell[];
  goals?: Goal[];
}

export interface SuiteResults {
  core: CoreResults;
  wake: WakeResults;
  chain: ChainResults;
  contention: ContentionResults;
}

/** The suites whose JSON was found; a suite that was not run is absent. */
export type BenchResults = Partial<SuiteResults>;

/** The array each suite's file must hold: enough to tell a result file from some other JSON. */
const REQUIRED_ARRAY: Record<Suite, string> = { core: 'rows', wake: 'variants', chain: 'rows', contention: 'results' };

/**
 * Reads `<dir>/<suite>.json` for every suite that has one; other files are ignored. Throws an
 * `Error` naming the file when one is not JSON or lacks its suite's data. A missing or empty `dir`
 * yields `{}`.
 */
export function readResults(dir: string): BenchResults {
  const out: Record<string, unknown> = {};
  for (const suite of SUITES) {
    const file = join(dir, `${suite}.json`);
    if (!existsSync(file)) continue;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!Array.isArray(data?.[REQUIRED_ARRAY[suite]])) throw new Error(`${file}: not ${suite} results (no "${REQUIRED_ARRAY[suite]}" array)`);
    // Files written before the suites shared runInfo() named the run's date `when`.
    if (data.date === undefined && typeof data.when === 'string') data.date = data.when;
    out[suite] = data;
  }
  return out as BenchResults;
}

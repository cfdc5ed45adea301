/**
 * The benchmark results format, shared by the suites in bench/ (which write it) and the `fencelab`
 * command (which runs the suites, gathers their results and renders them). Nothing here depends on
 * either side: a suite's process writes one suite's results as JSON, the command reads them back,
 * so data flows one way, bench/ → JSON → this module's readers and renderers.
 *
 * Two files hold results:
 * - a suite file, `<suite>.json`: one suite's results, by default in bench/results/;
 * - a run file (`fencelab bench --json FILE`): every suite of one run, with where and how it ran;
 *   `--baseline FILE` reads one back to show each figure's change.
 * The suites' writers are typed against these interfaces, so a suite cannot drop a field the report
 * charts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUITES = ['core', 'alloc', 'wake', 'chain', 'contention', 'piscina'] as const;
export type Suite = (typeof SUITES)[number];

/** bench/results/ at the package root, whether this module runs from dist/ or from the sources. */
export const RESULTS_DIR = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(join('dist', 'src')) ? join(here, '..', '..', '..') : join(here, '..', '..');
  return join(root, 'bench', 'results');
})();

/**
 * Where and how a suite ran. Optional because result files written by older versions lack some of
 * them; every suite writes all of them now (`runInfo()` in bench/util.ts).
 */
export interface RunInfo {
  /** ISO 8601. */
  date?: string;
  node?: string;
  /** `os.availableParallelism()` of the machine that ran the suite. */
  cores?: number;
  /** Model name of the machine's first CPU. */
  cpu?: string;
  /** Run with `--quick`: fewer rounds and shorter times, the same rows, noisier figures. */
  quick?: boolean;
  /** The machine's 1-minute load average when the suite started (other processes compete for its cores). */
  load?: number;
}

/** One measured task, optionally as a ratio to a baseline measured in the same run. */
export interface Row {
  name: string;
  nsPerOp: number;
  opsPerSec: number;
  baseline?: string;
  /**
   * nsPerOp / the baseline's nsPerOp; for a row measured in paired rounds (one with
   * {@link Row.ratioQuartiles}), the median of the rounds' ratios instead.
   */
  ratio?: number;
  /** Paired rounds only: the lower and upper quartile of the rounds' ratios (the ratio's spread). */
  ratioQuartiles?: [number, number];
  /** Paired rounds only: how many rounds the ratio is the median of. */
  ratioRounds?: number;
  /** Paired rounds only: each process's median ratio, in run order (how far one process's figure can be off). */
  ratioByProcess?: number[];
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
  /** The variant of the same run this one is measured against (a raw Atomics wait of the same kind). */
  baseline?: string;
  /** latencyNs.p50 / the baseline's p50. */
  ratioP50?: number;
  /** latencyNs.p99 / the baseline's p99. */
  ratioP99?: number;
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

/** One cell of the contention grid: a lock at a worker count, with a critical section of some length. */
export interface ContentionCell {
  /** The lock: `raw` (a bare test-and-set), a SpinLock kind, `fence inline` or `fence borrowed`. */
  kind: string;
  threads: number;
  /** Busy work inside the lock, ns (0: none). Files written before the sweep have none: 0. */
  csNs?: number;
  mOpsPerSec: number;
  /** The cell of the same run this one is measured against: the bare test-and-set at the same worker count. */
  baseline?: string;
  /** mOpsPerSec / the baseline's (higher is better: the share of the bare test-and-set's throughput kept). */
  ratio?: number;
  /** Slowest thread's acquisitions / fastest thread's. */
  fairness: number;
  /** Jain's fairness index of the threads' acquisitions: 1 all equal, 1/n one thread took all. */
  jain?: number;
  /** Every increment made under the lock was kept. */
  counterOk: boolean;
}

/**
 * One lock of the first contention goal's comparison (the fence's inline lock against every plain
 * lock, 2 workers): its figures over rounds in which every one of them ran once, in rotated order.
 */
export interface ContentionRoundsRow {
  kind: string;
  threads: number;
  /** Rounds it ran in, one cell each. */
  rounds: number;
  /** Median over the rounds (M acquisitions/s of all workers). */
  mOpsPerSec: number;
  /** Lower and upper quartile over the rounds. */
  quartiles: [number, number];
  /** Medians over the rounds of slowest ÷ fastest worker and of Jain's index. */
  fairness: number;
  jain: number;
  /** A plain lock: the fence's median ÷ this one's. */
  fenceRatio?: number;
  /** A plain lock: the quartiles of the rounds' own ratios (fence ÷ this lock in the same round). */
  fenceRatioQuartiles?: [number, number];
}

/** The fence workload at one worker count: an exporter signaling, importers adding callbacks and reading status. */
export interface FenceWorkloadRow {
  /** How the fences lock: one timeline lock they all borrow, or each its inline lock. */
  variant: string;
  /** Exporter + importers. */
  threads: number;
  /** Fences created, seen by every importer, signaled and released, per ms (thousands per second). */
  kFencesPerSec: number;
  /** The row of the same worker count this one is measured against (the shared-lock variant). */
  baseline?: string;
  /** kFencesPerSec / the baseline's (higher is better). */
  ratio?: number;
  /** Callbacks the importers added and ran, status() reads. */
  callbacks: number;
  statusReads: number;
}

export interface ContentionResults extends RunInfo {
  /** Duration of each repetition of a cell. */
  ms: number;
  /** Repetitions per cell; each cell keeps its fastest (absent in older files: 1). */
  reps?: number;
  /** ns per iteration of the critical section's busy loop (the fastest worker's calibration). */
  nsPerIter?: number;
  /** The grid (csNs 0) and the critical-section sweep (csNs > 0). */
  results: ContentionCell[];
  /** The first goal's comparison in interleaved rounds; absent in files written before it. */
  goalRounds?: ContentionRoundsRow[];
  /** The fence workload; absent in files written before it. */
  workload?: FenceWorkloadRow[];
  goals?: Goal[];
}

/** One allocator at a worker count and live-set size: alloc+free pairs of one 64-byte block. */
export interface AllocCell {
  impl: string;
  threads: number;
  /** Blocks each worker kept allocated during the cell. */
  live: number;
  /** Pairs per second of all workers, millions. */
  mOpsPerSec: number;
  /** Wall ns per pair per worker (threads / pairs per ns). */
  nsPerOp: number;
  /** The cell of the same workers and live blocks this one is measured against (@thi.ng/malloc). */
  baseline?: string;
  /** nsPerOp / the baseline's (lower is faster). */
  ratio?: number;
}

/** What a second worker adds to one allocator and live-set size, over paired rounds of 1, 2, 2, 1 (or 2, 1, 1, 2) worker slices. */
export interface AllocRoundsRow {
  impl: string;
  live: number;
  rounds: number;
  mOpsPerSec: [number, number]; // medians over the slices, M pairs/s of all workers: 1 worker, 2 workers
  /** Median of the rounds' scalings (2-worker pairs/s ÷ 1-worker), and their lower and upper quartile. */
  scaling: number;
  scalingQuartiles: [number, number];
  onCpu?: [number, number]; // median share of its window a worker was on a CPU (with 2, the lower one's): 1 worker, 2 workers
  overlap: number; // median over the 2-worker slices of the overlap of the workers' windows (both ran ÷ either ran)
  /** The scaling in pairs per CPU second (1: a second worker costs the work nothing), and its quartiles. */
  cpuScaling?: number;
  cpuScalingQuartiles?: [number, number];
}

export interface AllocResults extends RunInfo {
  /** Duration of each slice (older files: of each repetition of a cell). */
  ms: number;
  /** Paired rounds; absent in older files, which have `reps` (each cell its fastest repetition). */
  rounds?: number;
  reps?: number;
  /** Each cell: the median of its slices (older files: its fastest repetition). */
  cells: AllocCell[];
  /** Per allocator and live-set size, over the rounds; absent in older files. */
  scalingRounds?: AllocRoundsRow[];
  goals: Goal[];
}

/** One way of seeing a piscina task done, under one schedule: submit → the main thread sees it done. */
export interface PiscinaVariant {
  /** How the main thread learns of the completion (`await pool.run`, an out-fence wait). */
  name: string;
  /** `back to back` (a pull loop lingers on the queue; timed after `warmMs`), `…, from idle` or `after N µs idle`. */
  schedule: string;
  latencyNs: LatencyStat;
  /** The variant of the same schedule this one is measured against (`await pool.run`). */
  baseline?: string;
  /** latencyNs.p50 / the baseline's p50 (lower is faster). */
  ratioP50?: number;
  /** latencyNs.p99 / the baseline's p99. */
  ratioP99?: number;
}

export interface PiscinaResults extends RunInfo {
  /** The pool's worker threads. */
  threads: number;
  chainLength: number;
  /** Interleaved rounds of each measurement. */
  rounds: number;
  /** Tasks per latency variant and schedule. */
  tasks: number;
  /** The idle gap of the last schedule, µs; the untimed stream before a steady round, ms (older files: none). */
  gapUs: number;
  warmMs?: number;
  /** How long the main thread's fence wait spins before it sleeps (Fence.spinMicros). */
  spinMicros: number;
  /** The dependency chain: ns per task, fence-driven against the main thread awaiting each task. */
  chain: Row[];
  variants: PiscinaVariant[];
  goals: Goal[];
  /** Pull loops the pool started (piscina tasks) and the fence tasks they ran. */
  counters: { kicks: number; ran: number };
}

export interface SuiteResults {
  core: CoreResults;
  alloc: AllocResults;
  wake: WakeResults;
  chain: ChainResults;
  contention: ContentionResults;
  piscina: PiscinaResults;
}

/** The suites whose results were found; a suite that was not run is absent. */
export type BenchResults = Partial<SuiteResults>;

/** The seed of a run's seeded choices (the wake suite's delay schedule) when `--seed` is not given. */
export const DEFAULT_SEED = 0x5eed;

/** The `format` field of a run file. */
export const RUN_FORMAT = 'fencelab-bench-run';
export const RUN_VERSION = 1;

/** A run file (`fencelab bench --json FILE`): every suite of one run, and where and how it ran. */
export interface BenchRun {
  format: typeof RUN_FORMAT;
  version: typeof RUN_VERSION;
  /** When the run started, ISO 8601. */
  date: string;
  node: string;
  cpu: string;
  cores: number;
  /** The seed of every seeded choice of the run (`--seed`). */
  seed: number;
  quick: boolean;
  /** The machine's 1-minute load average when the run started; absent in older run files. */
  load?: number;
  /** The results of the suites that ran and succeeded. */
  suites: BenchResults;
  /** The suites that ran and failed, with what happened (`exit code 13`, `timed out after 120 s`). */
  failed: Partial<Record<Suite, string>>;
}

/** The array each suite's results must hold: enough to tell them from some other JSON. */
const REQUIRED_ARRAY: Record<Suite, string> = { core: 'rows', alloc: 'cells', wake: 'variants', chain: 'rows', contention: 'results', piscina: 'chain' };

/** Checks that `data` looks like `suite`'s results (or throws an `Error` starting with `where`) and updates old fields. */
export function checkSuiteResults<S extends Suite>(suite: S, data: unknown, where: string): SuiteResults[S] {
  const d = data as Record<string, unknown> | null;
  if (d === null || typeof d !== 'object' || !Array.isArray(d[REQUIRED_ARRAY[suite]]))
    throw new Error(`${where}: not ${suite} results (no "${REQUIRED_ARRAY[suite]}" array)`);
  // Files written before the suites shared runInfo() named the run's date `when`.
  if (d.date === undefined && typeof d.when === 'string') d.date = d.when;
  // Contention files written before cells carried their ratio: the same ratio, from the raw cell.
  if (suite === 'contention') {
    const cells = (d.results as unknown[]).filter((c): c is ContentionCell => c !== null && typeof c === 'object');
    for (const c of cells) {
      const raw = cells.find((x) => x.kind === 'raw' && x.threads === c.threads && (x.csNs ?? 0) === (c.csNs ?? 0));
      if (c.kind !== 'raw' && c.ratio === undefined && raw !== undefined && raw.mOpsPerSec > 0) {
        c.baseline = 'raw';
        c.ratio = c.mOpsPerSec / raw.mOpsPerSec;
      }
    }
  }
  return d as unknown as SuiteResults[S];
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Reads one suite file. Throws an `Error` naming the file when it is missing, not JSON or not `suite`'s results. */
export function readSuiteFile<S extends Suite>(suite: S, file: string): SuiteResults[S] {
  return checkSuiteResults(suite, readJson(file), file);
}

/**
 * Reads `<dir>/<suite>.json` for every suite that has one; other files are ignored. Throws an
 * `Error` naming the file when one is not JSON or lacks its suite's data. A missing or empty `dir`
 * yields `{}`.
 */
export function readResults(dir: string): BenchResults {
  const out: BenchResults = {};
  for (const suite of SUITES) {
    const file = join(dir, `${suite}.json`);
    if (existsSync(file)) (out as Record<Suite, unknown>)[suite] = readSuiteFile(suite, file);
  }
  return out;
}

/**
 * Reads a run file. Throws an `Error` naming the file when it is missing, not JSON, not a run file
 * (a suite file is named as such) or holds a suite's results in the wrong shape.
 */
export function readRun(file: string): BenchRun {
  const d = readJson(file) as Record<string, unknown> | null;
  if (d === null || typeof d !== 'object' || d.format !== RUN_FORMAT) {
    const suiteFile = d !== null && typeof d === 'object' && SUITES.some((s) => Array.isArray(d[REQUIRED_ARRAY[s]]));
    throw new Error(`${file}: not a fencelab bench run file (${suiteFile ? 'one suite\'s results: pass a file written by fencelab bench --json' : `no "format": "${RUN_FORMAT}"`})`);
  }
  if (d.version !== RUN_VERSION) throw new Error(`${file}: run file version ${String(d.version)}, this fencelab reads version ${RUN_VERSION}`);
  const suites = d.suites as Record<string, unknown> | null;
  if (suites === null || typeof suites !== 'object') throw new Error(`${file}: no "suites" object`);
  for (const suite of SUITES) if (suites[suite] !== undefined) checkSuiteResults(suite, suites[suite], `${file}: suites.${suite}`);
  return { ...(d as unknown as BenchRun), failed: (d.failed as BenchRun['failed']) ?? {} };
}

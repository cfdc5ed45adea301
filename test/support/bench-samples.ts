/**
 * Small benchmark results in every suite's shape (no benchmark runs): what the report and the
 * bench command's tests render, compare and write.
 */
import type { BenchRun, SuiteResults } from '../../src/report/schema.js';

export const RUN = { date: '2026-01-02T03:04:05.000Z', node: 'v20.99.0', cores: 3, cpu: 'Test CPU @ 1 GHz' };
export const HOSTILE = '<b>inline & "sanitized"</b>';

const latency = (p50: number) => ({ n: 100, p50, p90: p50 * 2, p99: p50 * 4, mean: p50 * 1.5, min: p50 / 2, max: p50 * 10 });

export const SAMPLE: SuiteResults = {
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
      {
        name: 'fence.wait(), spinMicros 0 ← signal() (sleeping)',
        latencyNs: latency(11_000),
        baseline: 'raw Atomics.wait ← Atomics.notify (sleeping)',
        ratioP50: 1.1,
        ratioP99: 1.1,
        offPath: 2,
      },
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
  alloc: {
    ...RUN,
    ms: 50,
    rounds: 5,
    cells: [1, 2].flatMap((threads) => [
      { impl: 'arena allocBlock+freeBlock', threads, live: 0, mOpsPerSec: 80 * threads, nsPerOp: 12.5, baseline: '@thi.ng/malloc (a pool per thread)', ratio: 0.9 },
      { impl: '@thi.ng/malloc (a pool per thread)', threads, live: 0, mOpsPerSec: 72 * threads, nsPerOp: 13.9 },
      { impl: 'global-lock free list', threads, live: 0, mOpsPerSec: 30 / threads, nsPerOp: 33.3 * threads * threads, baseline: '@thi.ng/malloc (a pool per thread)', ratio: 2.4 * threads * threads },
    ]),
    scalingRounds: [
      { impl: 'arena allocBlock+freeBlock', live: 0, rounds: 5, mOpsPerSec: [80, 160], scaling: 2, scalingQuartiles: [1.9, 2.05], onCpu: [0.99, 0.97], overlap: 0.999, cpuScaling: 0.98, cpuScalingQuartiles: [0.95, 1.01] },
      { impl: '@thi.ng/malloc (a pool per thread)', live: 0, rounds: 5, mOpsPerSec: [72, 144], scaling: 2, scalingQuartiles: [1.8, 2.1], overlap: 0.998 },
    ],
    goals: [{ name: 'arena allocBlock+freeBlock, 2 workers ÷ 1 worker (pairs/s of all workers)', measured: 2, unit: '×', op: '≥', target: 1.6, met: true }],
  },
  contention: {
    ...RUN,
    ms: 50,
    reps: 1,
    nsPerIter: 2,
    results: [
      ...[1, 2, 4].flatMap((threads) => [
        { kind: 'raw', threads, csNs: 0, mOpsPerSec: 40 / threads, jain: 1 / threads, fairness: 1, counterOk: true },
        { kind: 'futex', threads, csNs: 0, mOpsPerSec: 30 / Math.min(threads, 2), baseline: 'raw', ratio: 30 / Math.min(threads, 2) / (40 / threads), jain: 0.95, fairness: 0.9, counterOk: true },
      ]),
      ...[100, 1000].flatMap((csNs) => [
        { kind: 'raw', threads: 2, csNs, mOpsPerSec: 1000 / csNs, jain: 0.6, fairness: 0.2, counterOk: true },
        { kind: 'futex', threads: 2, csNs, mOpsPerSec: 2000 / csNs, baseline: 'raw', ratio: 2, jain: 0.99, fairness: 0.95, counterOk: true },
      ]),
    ],
    workload: [2, 4].flatMap((threads) => [
      { variant: 'one timeline lock, borrowed by every fence', threads, kFencesPerSec: 100 / threads, callbacks: 900, statusReads: 1000 },
      { variant: 'each fence its own inline lock', threads, kFencesPerSec: 100, baseline: 'one timeline lock, borrowed by every fence', ratio: threads, callbacks: 1800, statusReads: 2000 },
    ]),
    goals: [{ name: 'futex throughput, 4 threads / 2 threads (no collapse)', measured: 1, unit: '×', op: '≥', target: 0.5, met: true }],
  },
  piscina: {
    ...RUN,
    threads: 2,
    chainLength: 1000,
    rounds: 2,
    tasks: 100,
    gapUs: 1000,
    spinMicros: 30,
    chain: [
      { name: '1000-task chain, main awaits each pool.run (per task)', nsPerOp: 30_000, opsPerSec: 33_333 },
      { name: '1000-task chain, fence-driven (per task)', nsPerOp: 10_000, opsPerSec: 100_000, baseline: '1000-task chain, main awaits each pool.run (per task)', ratio: 1 / 3, target: '≤ 0.67×', targetMaxRatio: 2 / 3, met: true },
    ],
    variants: ['back to back', 'after 1000 µs idle'].flatMap((schedule) => [
      { name: 'await pool.run', schedule, latencyNs: latency(30_000) },
      { name: 'out-fence wait() (spin, then Atomics.wait)', schedule, latencyNs: latency(10_000), baseline: 'await pool.run', ratioP50: 1 / 3, ratioP99: 1 / 3 },
    ]),
    goals: [{ name: 'chain: fence-driven speed-up over awaiting each pool.run (wall time)', measured: 3, unit: '×', op: '≥', target: 1.5, met: true }],
    counters: { kicks: 3, ran: 400 },
  },
};

/** A run file holding `suites`. */
export function runFile(suites: Partial<SuiteResults>, failed: BenchRun['failed'] = {}): BenchRun {
  return { format: 'fencelab-bench-run', version: 1, date: RUN.date, node: RUN.node, cpu: RUN.cpu, cores: RUN.cores, seed: 7, quick: true, suites, failed };
}

/**
 * Paired measurement of two tasks whose ratio must resolve a percent or two (the tracing-off rows,
 * target ≤ 1.02×) on a shared, noisy machine.
 *
 * One round times four short slices in the order A, B, B, A (the next round B, A, A, B: pairOrder) and gives
 * one ratio, (A₁ + A₂) / (B₁ + B₂): a change of speed that is linear across the round (another
 * process starting, the CPU's clock moving) lands on both sides equally. The figure is the median
 * of many rounds' ratios, with their interquartile range as its spread: a slice that a GC, a
 * preemption or a page fault hit makes one round's ratio an outlier in either direction, which
 * the median ignores, where a best-of or a mean would carry it. Slices are timed in process CPU
 * time, so the time another process had the core is not counted (what it leaves, cold caches
 * after it, is what the median is for). The timer's own cost is measured and taken out of every
 * slice: left in, it is added to both sides and pulls the ratio towards 1.
 */

/** A task: its name and a function that runs `inner` operations. */
export type PairTask = [string, () => void];

/** What {@link measurePaired} returns. */
export interface PairedResult {
  /** Median ns per operation of each task over all its slices. */
  ns: Map<string, number>;
  /** Every round's ratio A / B, in round order. */
  ratios: number[];
}

/** {@link measurePaired}'s options. */
export interface PairedOptions {
  /** Operations one call of a task's function performs. */
  inner: number;
  /** Rounds (each four slices). */
  rounds: number;
  /** CPU time of one slice, ns (the slower task's; the faster runs the same number of calls). */
  sliceNs: number;
  /** Wall time both tasks run alternately before measuring, ms (to optimized code, and past its early GCs). */
  warmupMs: number;
}

/**
 * A copy of `factory` with code of its own: its source compiled again, so that the functions it
 * makes share no type feedback (inline caches, inlining decisions) with those of another copy.
 * `factory` must refer to nothing outside itself: its source is compiled alone, at top level.
 */
export function ownCode<F extends (...args: never[]) => unknown>(factory: F): F {
  return new Function(`return (${factory.toString()});`)() as F;
}

/** Process CPU time in ns (user + system, microsecond resolution). */
function cpuNs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

/** The `q` quantile (0..1) of `xs`, interpolated between the two nearest ranks. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) throw new Error('quantile of no values');
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

/**
 * The sides (0 = A, 1 = B) of one paired round's four slices, in the order they run: A, B, B, A in
 * even rounds, B, A, A, B in odd ones. Each side's two slices sit symmetrically around the round's
 * middle, so a speed that drifts linearly across the round adds the same to both sides' sums, and
 * neither side always runs first (right after whatever ran before the round).
 */
export function pairOrder(round: number): readonly [0 | 1, 0 | 1, 0 | 1, 0 | 1] {
  return round % 2 === 0 ? [0, 1, 1, 0] : [1, 0, 0, 1];
}

/**
 * The order in which round `round` runs `n` interleaved measurements (indices 0..n−1): rotated by
 * one each round and run backwards every other round, so that what ran just before a measurement
 * (a cell that left a worker preempted, a line in another core's cache) is not always the same one.
 */
export function rotatedOrder(round: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => (round % 2 === 0 ? k + round : n - 1 - k + round) % n);
}

/** Median and quartiles of `xs`: a figure over rounds and its spread. */
export function spread(xs: readonly number[]): { median: number; quartiles: [number, number] } {
  return { median: quantile(xs, 0.5), quartiles: [quantile(xs, 0.25), quantile(xs, 0.75)] };
}

/** The median ns of one empty slice: the two cpuNs() calls around it, taken out of every slice. */
function timerCost(): number {
  const xs: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = cpuNs();
    xs.push(cpuNs() - t0);
  }
  return quantile(xs, 0.5);
}

/** One slice: `calls` calls of `fn`, CPU ns less the timer's cost. */
function slice(fn: () => void, calls: number, overhead: number): number {
  const t0 = cpuNs();
  for (let k = 0; k < calls; k++) fn();
  return cpuNs() - t0 - overhead;
}

/** Calls of the slower task's function that take about `sliceNs` of CPU time. */
function callsPerSlice(a: () => void, b: () => void, sliceNs: number): number {
  let slowest = 0;
  for (const fn of [a, b]) {
    let calls = 1;
    let ns = 0;
    // Grow until a measurement is long enough for the timer's microsecond resolution.
    while ((ns = slice(fn, calls, 0)) < 200_000) calls *= 2;
    slowest = Math.max(slowest, ns / calls);
  }
  return Math.max(1, Math.round(sliceNs / slowest));
}

/**
 * Measures task `a` against task `b` in paired rounds (see the header). Both must be loaded,
 * warmed and ready to run; they run in this process, alternately.
 */
export function measurePaired(a: PairTask, b: PairTask, o: PairedOptions): PairedResult {
  const [nameA, fa] = a;
  const [nameB, fb] = b;
  const warm = performance.now() + o.warmupMs;
  while (performance.now() < warm) {
    fa();
    fb();
  }
  const calls = callsPerSlice(fa, fb, o.sliceNs);
  const overhead = timerCost();
  const ratios: number[] = [];
  const nsA: number[] = [];
  const nsB: number[] = [];
  const perOp = calls * o.inner;
  const fns = [fa, fb];
  for (let r = 0; r < o.rounds; r++) {
    const t = [0, 0];
    for (const side of pairOrder(r)) t[side] += slice(fns[side], calls, overhead);
    const [ta, tb] = t;
    // A round whose slices read nothing (a clock that did not move) says nothing: skipped, not zero.
    if (ta > 0 && tb > 0) {
      ratios.push(ta / tb);
      nsA.push(ta / (2 * perOp));
      nsB.push(tb / (2 * perOp));
    }
  }
  if (ratios.length === 0) throw new Error(`paired measurement of ${nameA} / ${nameB}: no round was timed`);
  return { ns: new Map([[nameA, quantile(nsA, 0.5)], [nameB, quantile(nsB, 0.5)]]), ratios };
}

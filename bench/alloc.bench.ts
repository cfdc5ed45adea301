/**
 * The allocator across threads: the arena's public alloc/free (validated handles, zeroed payload)
 * and its internal allocBlock/freeBlock side by side, against @thi.ng/malloc (single-threaded: a
 * pool per worker, nothing shared — the no-sharing bound) and a global-lock free list (one list
 * behind one lock: the simplest allocator that is correct across threads). Each worker allocates
 * and frees one 64-byte block at a time as fast as it can, with 1 and 2 workers, on an empty heap
 * and with 1,000 blocks per worker kept live. Reported: pairs per second of all workers, ns per
 * pair per worker, that as a ratio to @thi.ng/malloc's with the same workers and live blocks, and
 * what a second worker adds.
 *
 * What a second worker adds is a ratio of two measurements, and this VM switches every
 * memory-heavy loop on the machine between two speeds (~15.5 or ~27 ns per arena alloc+free pair)
 * at moments of its own: a 1-worker and a 2-worker figure taken at different times can straddle a
 * switch, and their ratio moves with it. So every cell is measured in paired rounds. A round takes
 * each allocator and live-set size (a group) in turn, in an order rotated from round to round and
 * reversed every other round (rotatedOrder), and runs the group as four short slices, 1, 2, 2, 1
 * workers (the next round 2, 1, 1, 2: pairOrder, as bench/paired.ts pairs two loops). The round's
 * scaling is its two 2-worker slices' pairs/s ÷ its two 1-worker slices': measured within a few
 * hundred ms, symmetric around the round's middle, so a drift of speed lands on both sides, and a
 * switch inside the round makes that one round an outlier. The goal is the median of the rounds'
 * scalings, with their quartiles as its spread. A cell's figure in the table is the median of its
 * slices.
 *
 * A slice's workers start behind a start barrier in shared memory (Crew.run `together`) and each
 * times its own window, from the barrier to seeing STOP: a 2-worker slice's pairs/s is the sum of
 * both workers' pairs over their windows, which coincide to within a batch (the rounds' table
 * gives their worst overlap). Beside it, each worker's time on a CPU in its window
 * (/proc/thread-self/schedstat): on a 2-core machine where other processes take a core, two
 * workers share one and a second worker adds nothing — the table says so rather than the figure
 * hiding it. @thi.ng/malloc's own scaling, nothing shared, is what the machine allowed. And per
 * round, the pairs per CPU second of the 2-worker slices ÷ the 1-worker slices': what a second
 * worker costs the work itself (a lock, a shared counter, a line two threads write), whatever
 * share of the cores the machine gave — 1 when it costs nothing.
 *
 * Workers are one crew (bench/crew.ts), started once. Run: `node dist/bench/alloc.bench.js
 * [--ms 60] [--rounds 15]` (plus the options every suite takes, bench/util.ts); --quick runs 3
 * rounds of 25 ms slices.
 */
import { Arena } from '../src/index.js';
import type { AllocCell, AllocRoundsRow } from '../src/report/schema.js';
import { ALLOC_IMPLS, type AllocCellMessage, type AllocImpl, type AllocResult } from './alloc-protocol.js';
import { Crew } from './crew.js';
import { createGlobalLockList, GlobalLockList } from './global-lock-list.js';
import { pairOrder, rotatedOrder, spread } from './paired.js';
import { finishSuite, goal, positiveInt, runInfo, suiteArgs } from './util.js';

const args = suiteArgs('alloc', { ms: { type: 'string' }, rounds: { type: 'string' } });
/** One slice's time. */
const MS = positiveInt(args, 'ms', args.quick ? 25 : 60);
const ROUNDS = positiveInt(args, 'rounds', args.quick ? 3 : 15);
/** The two sides of a round (pairOrder's 0 and 1). */
const THREADS = [1, 2] as const;
const LIVE = [0, 1000];
const BASELINE: AllocImpl = '@thi.ng/malloc (a pool per thread)';
/** Goal: a second worker adds at least this much (per-thread caches share nothing on the hot path). */
const GOAL_SCALING = 1.6;
const WORKER = new URL('./alloc-worker.js', import.meta.url);
const LIST_BYTES = 4 << 20;

const arena = Arena.create({ bytes: 16 << 20 });
/**
 * The global-lock free list, one for the run as the arena is: every slice frees all it allocated
 * (checked after each), so the next starts from the same list (a fresh 4 MB buffer per slice cost
 * the parent more than the slice's set-up).
 */
const list = createGlobalLockList(LIST_BYTES);

type AllocCrew = Crew<AllocCellMessage, AllocResult>;

/** One slice: its workers' pairs/s in all, each worker's share of its window on a CPU, how far their windows overlap. */
interface Slice {
  mOpsPerSec: number;
  /** Pairs per ns the workers spent on a CPU, all of them (NaN where schedstat cannot be read). */
  perCpuNs: number;
  /** The lowest of the workers' on-CPU shares (NaN where schedstat cannot be read). */
  onCpu: number;
  /** Time all workers ran ÷ time any ran (1: the same window). */
  overlap: number;
}

async function slice(crew: AllocCrew, impl: AllocImpl, live: number, threads: number): Promise<Slice> {
  const { results } = await crew.run(Array(threads).fill({ impl, live, list }), MS, true);
  const view = new GlobalLockList(list, arena.me);
  if (view.freeCount() !== view.carved()) throw new Error(`global-lock free list: ${view.carved()} blocks carved, ${view.freeCount()} free after the cell`);
  // Pairs per ns × 1000 = millions per second.
  const mOpsPerSec = results.reduce((a, r) => a + r.count / (r.endNs - r.startNs), 0) * 1000;
  const onCpu = Math.min(...results.map((r) => (r.onCpuNs < 0 ? NaN : r.onCpuNs / (r.endNs - r.startNs))));
  // A worker that never got a core in its window (0 ns, 0 pairs) adds nothing to either sum.
  const cpuNs = results.reduce((a, r) => a + r.onCpuNs, 0);
  const perCpuNs = results.some((r) => r.onCpuNs < 0) || cpuNs === 0 ? NaN : results.reduce((a, r) => a + r.count, 0) / cpuNs;
  const first = Math.min(...results.map((r) => r.startNs));
  const last = Math.max(...results.map((r) => r.endNs));
  // 0 when they did not overlap at all (one worker got a core only after the other had stopped).
  const overlap = Math.max(0, Math.min(...results.map((r) => r.endNs)) - Math.max(...results.map((r) => r.startNs))) / (last - first);
  return { mOpsPerSec, perCpuNs, onCpu, overlap };
}

/** The slices of one allocator and live-set size, and its rounds' scalings. */
interface Group {
  impl: AllocImpl;
  live: number;
  /** Per side (1 worker, 2 workers): every slice. */
  slices: [Slice[], Slice[]];
  scalings: number[];
  /** Per round: its 2-worker slices' pairs per CPU ns ÷ its 1-worker slices' (where schedstat was read). */
  cpuScalings: number[];
}

/** Runs ROUNDS rounds over every group (see the header). */
async function measureRounds(crew: AllocCrew): Promise<Group[]> {
  const groups: Group[] = LIVE.flatMap((live) => ALLOC_IMPLS.map((impl): Group => ({ impl, live, slices: [[], []], scalings: [], cpuScalings: [] })));
  for (let round = 0; round < ROUNDS; round++)
    for (const at of rotatedOrder(round, groups.length)) {
      const g = groups[at];
      const sum = [0, 0];
      const cpu = [0, 0];
      for (const side of pairOrder(round)) {
        const s = await slice(crew, g.impl, g.live, THREADS[side]);
        g.slices[side].push(s);
        sum[side] += s.mOpsPerSec;
        cpu[side] += s.perCpuNs;
      }
      g.scalings.push(sum[1] / sum[0]);
      if (Number.isFinite(cpu[1] / cpu[0])) g.cpuScalings.push(cpu[1] / cpu[0]);
    }
  return groups;
}

/** A group's row of the rounds' table. */
function roundsRow(g: Group): AllocRoundsRow {
  const { median, quartiles } = spread(g.scalings);
  const medianOf = (xs: number[]) => spread(xs).median;
  const onCpu = (side: 0 | 1) => {
    const xs = g.slices[side].map((s) => s.onCpu).filter((x) => !Number.isNaN(x));
    return xs.length === 0 ? undefined : medianOf(xs);
  };
  const row: AllocRoundsRow = {
    impl: g.impl,
    live: g.live,
    rounds: g.scalings.length,
    mOpsPerSec: [medianOf(g.slices[0].map((s) => s.mOpsPerSec)), medianOf(g.slices[1].map((s) => s.mOpsPerSec))],
    scaling: median,
    scalingQuartiles: quartiles,
    overlap: medianOf(g.slices[1].map((s) => s.overlap)),
  };
  if (g.cpuScalings.length > 0) {
    const cpu = spread(g.cpuScalings);
    row.cpuScaling = cpu.median;
    row.cpuScalingQuartiles = cpu.quartiles;
  }
  const cpu1 = onCpu(0);
  const cpu2 = onCpu(1);
  if (cpu1 !== undefined && cpu2 !== undefined) row.onCpu = [cpu1, cpu2];
  return row;
}

async function main(): Promise<void> {
  const crew: AllocCrew = await Crew.start(WORKER, Math.max(...THREADS), { buffer: arena.buffer }, arena);
  try {
    const groups = await measureRounds(crew);
    const check = arena.check();
    if (!check.ok || check.leakedBytes !== 0) throw new Error(`alloc bench: arena check failed: ${check.problems.join('; ')}; leaked ${check.leakedBytes} bytes`);

    const rows = groups.map(roundsRow);
    // The table: each cell the median of its slices, in the order it always had (live, workers, allocator).
    const cells: AllocCell[] = LIVE.flatMap((live) =>
      THREADS.flatMap((threads, side) =>
        rows
          .filter((r) => r.live === live)
          .map((r): AllocCell => {
            const mOpsPerSec = r.mOpsPerSec[side];
            return { impl: r.impl, threads, live, mOpsPerSec, nsPerOp: (threads * 1000) / mOpsPerSec };
          }),
      ),
    );
    const get = (impl: string, threads: number, live: number) => cells.find((c) => c.impl === impl && c.threads === threads && c.live === live)!;
    for (const c of cells)
      if (c.impl !== BASELINE) {
        c.baseline = BASELINE;
        c.ratio = c.nsPerOp / get(BASELINE, c.threads, c.live).nsPerOp;
      }
    const scaling = (impl: AllocImpl) => rows.find((r) => r.impl === impl && r.live === 0)!.scaling;
    const goals = [
      goal('arena allocBlock+freeBlock, 2 workers ÷ 1 worker (pairs/s of all workers)', scaling('arena allocBlock+freeBlock'), '×', '≥', GOAL_SCALING),
      // The same goal for the allocator that shares nothing: what the machine itself allows (on a
      // loaded 2-core machine a second worker may add nothing), to read the arena's figure against.
      goal(`${BASELINE}, 2 workers ÷ 1 worker (nothing shared: what this machine allows)`, scaling(BASELINE), '×', '≥', GOAL_SCALING),
    ];
    finishSuite('alloc', args, { ...runInfo(args), ms: MS, rounds: ROUNDS, cells, scalingRounds: rows, goals });
  } finally {
    await crew.close();
  }
}

await main();

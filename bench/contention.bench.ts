/**
 * Lock contention across real workers, the workload fences are for. Three parts, all measured by
 * one crew of worker threads (bench/crew.ts) started once:
 *
 * 1. The grid: 1, 2, 4 and 8 workers taking the same lock as often as they can — a bare
 *    test-and-set (the baseline: exchange until 0, store 0; no owner, no backoff), each SpinLock
 *    kind, and a fence's lock, inline and borrowed. Under the lock each worker increments a counter
 *    that sits on a cache line of its own, with a plain read and write: after the cell the counter
 *    must equal the acquisitions the workers counted, or the suite fails (a lock that lets two
 *    holders in loses increments). Reported: acquisitions/s of all workers, that as a share of the
 *    bare test-and-set's with the same workers, and fairness — Jain's index over the workers'
 *    acquisitions ((Σx)² / (n·Σx²): 1 when all took the same share, 1/n when one took all) and
 *    slowest ÷ fastest.
 * 2. A critical-section sweep: the same locks with 2 and 4 workers, holding the lock for ~100 ns,
 *    ~1 µs and ~10 µs of busy work (a multiply-add loop calibrated in each worker).
 * 3. A fence workload: one exporter creates fences on a timeline, takes a reference per importer,
 *    publishes them, and signals each a few fences later; 1, 3 or 7 importers take every fence, add
 *    a callback, read its status and put it, and run the callbacks the signals queue to them. Once
 *    with every fence borrowing one timeline lock (as sw_sync points do), once with each fence's
 *    own inline lock. Reported: fences through the pipeline per second.
 *
 * This machine's core count is in the results: 4 and 8 workers on 2 cores measure what
 * oversubscription does to each lock (a preempted holder or next-in-line ticket stalls everyone).
 * Even 2 workers on 2 cores measure one of two things, depending on the rest of the machine: with
 * both cores free they run in parallel and the lock changes hands at almost every acquisition
 * (several cross-core cache-line transfers each; a bare test-and-set made 4–7 M/s on the 2-core VM
 * this was written on); with one core taken by other processes they are time-sliced on the other,
 * the lock changes hands about once per time slice, and the cell reads close to one worker's speed
 * (10–25 M/s there). Per-thread CPU time (/proc/self/task/<tid>/schedstat) tells the two apart.
 * Every cell runs `--reps` times, the repetitions interleaved with the other cells', and keeps its
 * fastest (with the fairness of that repetition): on a shared machine other processes can only take
 * time away. Every repetition's counter is checked.
 *
 * The first goal (the fence lock against the best plain lock, 2 workers) is not read off the grid:
 * a max over several plain kinds of each one's fastest of --reps favours the plain side by
 * selection alone (the more kinds and repetitions, the luckier the best one's best). After the
 * grid, which has warmed every lock up under contention, the fence's inline lock and every plain
 * lock (the bare test-and-set and each SpinLock kind) run again with 2 workers in `--goal-rounds`
 * rounds: each round runs each lock once, their order rotated from round to round and reversed every
 * other round, so that none always follows the same neighbour. Each lock's figure is its median over the rounds; the best
 * plain lock is the one with the highest median, and the goal is the fence's median ÷ that one's.
 * The spread printed with it: the quartiles of the rounds' own ratios (fence ÷ that lock, same
 * round).
 * Run: `node dist/bench/contention.bench.js [--ms 200] [--reps 3] [--goal-rounds 9]` (plus the
 * options every suite takes, bench/util.ts); --quick runs each cell once for 40 ms (77 cells: on a
 * loaded 2-core machine getting 8 workers scheduled costs more than the cell) and 3 goal rounds.
 */
import { availableParallelism } from 'node:os';
import { Arena, Fence, LOCK_KINDS, SpinLock } from '../src/index.js';
import type { ContentionCell, ContentionRoundsRow, FenceWorkloadRow } from '../src/report/schema.js';
import {
  CELL_BLOCK_BYTES,
  COUNTER_WORD,
  LOCK_WORD,
  RING_SLOTS,
  W_PROGRESS,
  W_PROGRESS_STRIDE,
  type CalibrateResult,
  type ContentionCellMessage,
  type ContentionResultMessage,
  type LockResult,
  type LockVariant,
  type WorkloadResult,
} from './contention-protocol.js';
import { Crew } from './crew.js';
import { quantile, rotatedOrder, spread } from './paired.js';
import { finishSuite, goal, jainIndex, positiveInt, runInfo, suiteArgs, type Goal } from './util.js';

const args = suiteArgs('contention', { ms: { type: 'string' }, reps: { type: 'string' }, 'goal-rounds': { type: 'string' } });
const MS = positiveInt(args, 'ms', args.quick ? 40 : 200);
/** Repetitions of every cell, interleaved; each cell keeps its fastest (a shared machine only takes time away). */
const REPS = positiveInt(args, 'reps', args.quick ? 1 : 3);
/** Rounds of the first goal's comparison (see the file comment); odd, so that a median is one round's figure. */
const GOAL_ROUNDS = positiveInt(args, 'goal-rounds', args.quick ? 3 : 9);
const THREADS = [1, 2, 4, 8];
const VARIANTS: LockVariant[] = ['raw', ...LOCK_KINDS, 'fence inline', 'fence borrowed'];
/** Critical sections of the sweep (the grid is its 0 ns column), and the worker counts it runs at. */
const CS_NS = [100, 1000, 10_000];
const SWEEP_THREADS = [2, 4];
const WORKLOAD_THREADS = [2, 4, 8];
const WORKLOAD_VARIANTS = [
  { name: 'one timeline lock, borrowed by every fence', shared: true },
  { name: 'each fence its own inline lock', shared: false },
] as const;
/** Goals: the fence lock against the best plain lock with 2 workers, and oversubscribed against itself. */
const GOAL_FENCE_VS_BEST = 0.9;
/** The first goal's locks: the fence's inline lock and every plain one, with this many workers. */
const GOAL_FENCE: LockVariant = 'fence inline';
const GOAL_PLAIN: LockVariant[] = ['raw', ...LOCK_KINDS];
const GOAL_THREADS = 2;
const GOAL_FENCE_KEEPS = 0.5;
const GOAL_FUTEX_KEEPS = 0.5;
const WORKER = new URL('./contention-worker.js', import.meta.url);

const arena = Arena.create({ bytes: 16 << 20 });
const context = Fence.contextAlloc(arena);
let seqno = 0;

type ContentionCrew = Crew<ContentionCellMessage, ContentionResultMessage>;

/** Busy-loop iterations for a critical section of `ns`, from the fastest worker's calibration. */
function itersFor(ns: number, nsPerIter: number): number {
  return ns === 0 ? 0 : Math.max(1, Math.round(ns / nsPerIter));
}

async function lockCell(crew: ContentionCrew, variant: LockVariant, threads: number, csNs: number, nsPerIter: number): Promise<ContentionCell> {
  const block = arena.alloc(CELL_BLOCK_BYTES);
  const payload = arena.resolve(block, -1, 'block') + 2;
  let fence: Fence | undefined;
  if (variant === 'fence inline') fence = Fence.create(arena, { context, seqno: ++seqno });
  if (variant === 'fence borrowed') fence = Fence.create(arena, { context, seqno: ++seqno, lock: SpinLock.at(arena, block, LOCK_WORD * 4) });
  const part: ContentionCellMessage = {
    type: 'lock',
    variant,
    block,
    fence: fence?.handle ?? 0,
    csIters: itersFor(csNs, nsPerIter),
    // Alone, a worker looks at STOP every 64 acquisitions (the look is an Atomics call, ~8 ns). With
    // company, at every one: a lock that stalls (a ticket lock whose next holder is preempted)
    // makes each acquisition take a time slice, and a batch of them would outlast the cell.
    batch: threads === 1 && csNs < 1000 ? 64 : 1,
  };
  const { results, elapsedMs } = await crew.run(Array(threads).fill(part), MS);
  const counts = (results as LockResult[]).map((r) => r.count);
  const total = counts.reduce((a, b) => a + b, 0);
  const counter = arena.i32[payload + COUNTER_WORD];
  fence?.put();
  arena.free(block);
  // The counter is a plain Int32 word: it wraps where the sum of the counts does under `| 0`.
  if (counter !== (total | 0))
    throw new Error(`lost updates: ${variant} with ${threads} workers${csNs ? ` and ${csNs} ns in the lock` : ''}: the counter is ${counter} after ${total} acquisitions`);
  return {
    kind: variant,
    threads,
    csNs,
    mOpsPerSec: total / elapsedMs / 1000,
    jain: jainIndex(counts),
    // No acquisition at all (a lock that starved every worker for the whole cell) is no fairness, not 0/0.
    fairness: Math.max(...counts) > 0 ? Math.min(...counts) / Math.max(...counts) : 0,
    counterOk: true,
  };
}

async function workloadCell(crew: ContentionCrew, variant: (typeof WORKLOAD_VARIANTS)[number], threads: number): Promise<FenceWorkloadRow> {
  const importers = threads - 1;
  const lock = variant.shared ? SpinLock.create(arena) : undefined;
  const words = new SharedArrayBuffer((W_PROGRESS + importers * W_PROGRESS_STRIDE) * 4);
  const ring = new SharedArrayBuffer(RING_SLOTS * 8);
  const ctx = Fence.contextAlloc(arena);
  const base = { type: 'workload', importers, context: ctx, lock: lock?.ref ?? 0, words, ring } as const;
  const parts: ContentionCellMessage[] = [
    { ...base, role: 'exporter', index: 0 },
    ...Array.from({ length: importers }, (_, index) => ({ ...base, role: 'importer' as const, index })),
  ];
  const { results, elapsedMs } = await crew.run(parts, MS);
  lock?.free();
  const [exp, ...imps] = results as WorkloadResult[];
  for (const [i, r] of imps.entries()) {
    if (r.fences !== exp.fences) throw new Error(`fence workload (${variant.name}, ${threads} workers): importer ${i} saw ${r.fences} of ${exp.fences} fences`);
    if (r.ran !== r.added) throw new Error(`fence workload (${variant.name}, ${threads} workers): importer ${i} added ${r.added} callbacks, ${r.ran} ran`);
  }
  return {
    variant: variant.name,
    threads,
    kFencesPerSec: exp.fences / elapsedMs,
    callbacks: imps.reduce((a, r) => a + r.ran, 0),
    statusReads: imps.reduce((a, r) => a + r.statusReads, 0),
  };
}

/**
 * The first goal's comparison (see the file comment): GOAL_ROUNDS rounds of one cell of each of
 * the fence's inline lock and the plain locks with GOAL_THREADS workers, their order rotated by
 * one each round and reversed every other round. Returns each lock's row: median and quartiles over its rounds, and for a plain
 * lock the fence's median ÷ its median with the quartiles of the per-round ratios.
 */
async function goalRounds(crew: ContentionCrew, nsPerIter: number): Promise<ContentionRoundsRow[]> {
  const kinds = [GOAL_FENCE, ...GOAL_PLAIN];
  const samples = kinds.map((): ContentionCell[] => []);
  for (let round = 0; round < GOAL_ROUNDS; round++)
    for (const at of rotatedOrder(round, kinds.length)) samples[at].push(await lockCell(crew, kinds[at], GOAL_THREADS, 0, nsPerIter));
  const fence = samples[0].map((c) => c.mOpsPerSec);
  const fenceMedian = quantile(fence, 0.5);
  return kinds.map((kind, i) => {
    const ops = samples[i].map((c) => c.mOpsPerSec);
    const { median, quartiles } = spread(ops);
    const row: ContentionRoundsRow = {
      kind,
      threads: GOAL_THREADS,
      rounds: ops.length,
      mOpsPerSec: median,
      quartiles,
      fairness: quantile(samples[i].map((c) => c.fairness), 0.5),
      jain: quantile(samples[i].map((c) => c.jain!), 0.5),
    };
    if (kind !== GOAL_FENCE) {
      const ratios = fence.map((f, r) => f / ops[r]);
      row.fenceRatio = fenceMedian / row.mOpsPerSec;
      row.fenceRatioQuartiles = spread(ratios).quartiles;
    }
    return row;
  });
}

async function main(): Promise<void> {
  const crew: ContentionCrew = await Crew.start(WORKER, Math.max(...THREADS, ...WORKLOAD_THREADS), { buffer: arena.buffer }, arena);
  try {
    const calibration = (await crew.run(Array(crew.size).fill({ type: 'calibrate' }), 1)).results as CalibrateResult[];
    const nsPerIter = Math.min(...calibration.map((c) => c.nsPerIter));
    // Variants interleaved within each worker count, so a noisy stretch of the run hits them all.
    const lockCells: [LockVariant, number, number][] = [
      ...THREADS.flatMap((t) => VARIANTS.map((v) => [v, t, 0] as [LockVariant, number, number])),
      ...CS_NS.flatMap((cs) => SWEEP_THREADS.flatMap((t) => VARIANTS.map((v) => [v, t, cs] as [LockVariant, number, number]))),
    ];
    const results: ContentionCell[] = [];
    const workload: FenceWorkloadRow[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      for (const [i, [v, t, cs]] of lockCells.entries()) {
        const cell = await lockCell(crew, v, t, cs, nsPerIter);
        if (rep === 0 || cell.mOpsPerSec > results[i].mOpsPerSec) results[i] = cell;
      }
      let i = 0;
      for (const threads of WORKLOAD_THREADS)
        for (const v of WORKLOAD_VARIANTS) {
          const row = await workloadCell(crew, v, threads);
          if (rep === 0 || row.kFencesPerSec > workload[i].kFencesPerSec) workload[i] = row;
          i++;
        }
    }

    const get = (k: string, t: number, cs = 0) => results.find((r) => r.kind === k && r.threads === t && r.csNs === cs)!;
    for (const cell of results)
      if (cell.kind !== 'raw') {
        cell.baseline = 'raw';
        cell.ratio = cell.mOpsPerSec / get('raw', cell.threads, cell.csNs).mOpsPerSec;
      }
    for (const row of workload) {
      const shared = workload.find((w) => w.threads === row.threads && w.variant === WORKLOAD_VARIANTS[0].name)!;
      if (row !== shared) {
        row.baseline = shared.variant;
        row.ratio = row.kFencesPerSec / shared.kFencesPerSec;
      }
    }
    // After the grid: every lock has run under contention by now, the JIT has compiled its contended path.
    const rounds = await goalRounds(crew, nsPerIter);
    const check = arena.check();
    if (!check.ok || check.leakedBytes !== 0) throw new Error(`contention bench: arena check failed: ${check.problems.join('; ')}; leaked ${check.leakedBytes} bytes`);

    // The best plain lock by median over the same rounds as the fence's: no max over lucky repetitions.
    const best = rounds.slice(1).reduce((a, b) => (b.mOpsPerSec > a.mOpsPerSec ? b : a));
    const cores = availableParallelism();
    const goals: Goal[] = [
      goal(
        // The spread is in the rounds' table (its row of `best`), not in the name: the name keys the goal in --baseline comparisons.
        `fence lock (inline), ${GOAL_THREADS} workers ÷ the best plain lock with ${GOAL_THREADS} workers (${best.kind}, medians of interleaved rounds)`,
        best.fenceRatio!,
        '×',
        '≥',
        GOAL_FENCE_VS_BEST,
      ),
      goal(`fence lock (inline), 4 workers on ${cores} cores ÷ 2 workers (no collapse)`, get('fence inline', 4).mOpsPerSec / get('fence inline', 2).mOpsPerSec, '×', '≥', GOAL_FENCE_KEEPS),
      goal('futex throughput, 4 threads / 2 threads (no collapse)', get('futex', 4).mOpsPerSec / get('futex', 2).mOpsPerSec, '×', '≥', GOAL_FUTEX_KEEPS),
    ];
    finishSuite('contention', args, { ...runInfo(args), ms: MS, reps: REPS, nsPerIter, results, goalRounds: rounds, workload, goals });
  } finally {
    await crew.close();
  }
}

await main();

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
 * Every cell runs `--reps` times (interleaved with the others, so a noisy stretch of the run does
 * not hit one cell's every repetition) and keeps its fastest repetition: on a shared machine a
 * repetition can only lose time to other processes. Workers are one crew (bench/crew.ts), started
 * once. Run: `node dist/bench/alloc.bench.js [--ms 300] [--reps 3]` (plus the options every suite
 * takes, bench/util.ts); --quick runs each cell once for 60 ms.
 */
import { Arena } from '../src/index.js';
import type { AllocCell } from '../src/report/schema.js';
import { ALLOC_IMPLS, type AllocCellMessage, type AllocImpl, type AllocResult } from './alloc-protocol.js';
import { Crew } from './crew.js';
import { createGlobalLockList, GlobalLockList } from './global-lock-list.js';
import { finishSuite, goal, positiveInt, runInfo, suiteArgs } from './util.js';

const args = suiteArgs('alloc', { ms: { type: 'string' }, reps: { type: 'string' } });
const MS = positiveInt(args, 'ms', args.quick ? 60 : 300);
const REPS = positiveInt(args, 'reps', args.quick ? 1 : 3);
const THREADS = [1, 2];
const LIVE = [0, 1000];
const BASELINE: AllocImpl = '@thi.ng/malloc (a pool per thread)';
/** Goal: a second worker adds at least this much (per-thread caches share nothing on the hot path). */
const GOAL_SCALING = 1.6;
const WORKER = new URL('./alloc-worker.js', import.meta.url);
const LIST_BYTES = 4 << 20;

const arena = Arena.create({ bytes: 16 << 20 });

async function main(): Promise<void> {
  const crew = await Crew.start<AllocCellMessage, AllocResult, { buffer: SharedArrayBuffer }>(WORKER, Math.max(...THREADS), { buffer: arena.buffer }, arena);
  try {
    const best = new Map<string, AllocCell>();
    for (let rep = 0; rep < REPS; rep++)
      for (const live of LIVE)
        for (const threads of THREADS)
          for (const impl of ALLOC_IMPLS) {
            const list = createGlobalLockList(LIST_BYTES);
            const { results, elapsedMs } = await crew.run(Array(threads).fill({ impl, live, list }), MS);
            const view = new GlobalLockList(list, arena.me);
            if (view.freeCount() !== view.carved()) throw new Error(`global-lock free list: ${view.carved()} blocks carved, ${view.freeCount()} free after the cell`);
            const pairs = results.reduce((a, r) => a + r.count, 0);
            const mOpsPerSec = pairs / elapsedMs / 1000;
            const key = `${impl}|${threads}|${live}`;
            if (mOpsPerSec > (best.get(key)?.mOpsPerSec ?? -1)) best.set(key, { impl, threads, live, mOpsPerSec, nsPerOp: (threads * 1000) / mOpsPerSec });
          }
    const check = arena.check();
    if (!check.ok || check.leakedBytes !== 0) throw new Error(`alloc bench: arena check failed: ${check.problems.join('; ')}; leaked ${check.leakedBytes} bytes`);

    const cells = [...best.values()];
    const get = (impl: AllocImpl, threads: number, live: number) => best.get(`${impl}|${threads}|${live}`)!;
    for (const c of cells)
      if (c.impl !== BASELINE) {
        c.baseline = BASELINE;
        c.ratio = c.nsPerOp / get(BASELINE, c.threads, c.live).nsPerOp;
      }
    const scaling = (impl: AllocImpl) => get(impl, 2, 0).mOpsPerSec / get(impl, 1, 0).mOpsPerSec;
    const goals = [
      goal('arena allocBlock+freeBlock, 2 workers ÷ 1 worker (pairs/s of all workers)', scaling('arena allocBlock+freeBlock'), '×', '≥', GOAL_SCALING),
      // The same goal for the allocator that shares nothing: what the machine itself allows (on a
      // loaded 2-core machine a second worker may add nothing), to read the arena's figure against.
      goal(`${BASELINE}, 2 workers ÷ 1 worker (nothing shared: what this machine allows)`, scaling(BASELINE), '×', '≥', GOAL_SCALING),
    ];
    finishSuite('alloc', args, { ...runInfo(args), ms: MS, reps: REPS, cells, goals });
  } finally {
    await crew.close();
  }
}

await main();

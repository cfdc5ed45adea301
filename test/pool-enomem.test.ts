/**
 * A pool job started without ledger room (src/runtime/finish.ts startJob → startUnrecorded): the
 * pull loop cannot record the job and the references it takes over, so the job must not run; it ends
 * with -ENOMEM instead, its dependents inherit that error (never run), and nothing hangs or leaks.
 *
 * Provoked deterministically: a fresh pool worker has no ledger yet (src/fence/ledger.ts
 * ledgerReserve allocates it on the first record, which is the first job's start), and the test
 * fills the arena — every small size class, round-robin, so each class has blocks to give back
 * later — after the jobs were created and before their gate signals. The allocator never steals
 * from another thread's cache and never splits blocks, so the worker's first ledger allocation
 * fails every time. Memory given back, the same pool runs a job again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceError, runWithFence, taskResult, type FencePool } from '../src/index.js';
import { SIZE_CLASSES, BLOCK_HEADER_BYTES } from '../src/arena/layout.js';
import { J_DEP_ERROR } from '../src/runtime/layout.js';
import { RUNS } from './fixtures/piscina-graph-cells.js';
import { expectClean, until } from './support/core.js';
import { graphPool, graphTally } from './support/graphpool.js';

const WAIT_MS = 30_000;

const pools: FencePool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy({ graceMs: 0 })));
});

/**
 * Allocates raw blocks of every size class `arena.alloc` serves, one of each in turn, until none
 * fits: the bump pointer is spent and every class's free list empty. Returns their handles.
 */
function fillArena(arena: Arena): number[] {
  const sizes = SIZE_CLASSES.filter((b) => b <= 1024).map((b) => b - BLOCK_HEADER_BYTES);
  const fill: number[] = [];
  for (let more = true; more; ) {
    more = false;
    for (const s of sizes) {
      try {
        fill.push(arena.alloc(s));
        more = true;
      } catch (e) {
        if (!(e instanceof FenceError) || e.code !== 'ENOMEM') throw e;
      }
    }
  }
  return fill;
}

describe('a pool job started without ledger room', () => {
  it('ends with -ENOMEM without running, its dependents inherit the error, the pool goes on, nothing leaks', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const n = 4;
    const { tallyBuf, tally } = graphTally(n);
    const pool = graphPool(arena, tallyBuf, pools);
    const gate = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const a = runWithFence(pool, arena, { i: 0, n }, { deps: [gate] });
    const b = runWithFence(pool, arena, { i: 1, n }, { deps: [a] });
    const c = runWithFence(pool, arena, { i: 2, n }, { deps: [b] });
    // No loop has run on this pool: its worker has no ledger, and the arena has no room for one.
    const fill = fillArena(arena);
    expect(fill.length).toBeGreaterThan(100);
    expect(() => arena.alloc(8)).toThrow(/ENOMEM/);
    gate.signal(); // a is queued here; the kick starts the worker's first pull loop
    // Polled: a waitAsync would need a callback node, and the arena is full.
    expect(await until(() => a.testSignaledFlag() && b.testSignaledFlag() && c.testSignaledFlag(), WAIT_MS), 'the three jobs ended').toBe(true);
    expect(a.status(), 'the job started without ledger room').toBe(Errno.ENOMEM);
    // The dependents ended with a's error (J_DEP_ERROR, set by a's signal: their own start would
    // fail the same way, but would not record a dependency error), and none of the three ran.
    for (const [name, f] of [['b', b], ['c', c]] as const) {
      expect(f.status(), `${name}'s status`).toBe(Errno.ENOMEM);
      expect(arena.i32[f.fw + J_DEP_ERROR], `${name} inherited a dependency's error`).toBe(Errno.ENOMEM);
    }
    expect([0, 1, 2].map((i) => Atomics.load(tally, RUNS + i)), 'runs of a, b, c').toEqual([0, 0, 0]);
    // Memory back: the same pool (its loop still alive, or a new one) runs the next job.
    for (const h of fill) arena.free(h);
    const d = runWithFence(pool, arena, { i: 3, n });
    expect(await d.waitAsync(WAIT_MS), 'a job after the memory came back ended').toBe(true);
    expect(d.status()).toBe(1);
    expect(taskResult(d)).toBe(3);
    expect(Atomics.load(tally, RUNS + 3)).toBe(1);
    for (const f of [gate, a, b, c, d]) f.put();
    await pool.destroy();
    pools.splice(0);
    expectClean(arena);
  });
});

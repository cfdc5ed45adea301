/**
 * The DISPATCH reaper's heap walk over WAITING jobs (src/runtime/jobs.ts readyStuckJobs), made to
 * run deterministically. A worker (test/fixtures/dep-signaler.ts) signals dependency D of a pool's
 * jobs while the test holds the scheduler lock: D's callback for job j1 counts D and then blocks on
 * that lock, where the test terminates the worker — j1 is left WAITING with nothing pending, the
 * state a dependency callback cut off between its count and its push leaves. The worker was also
 * the signaler of fence E, which it never signals.
 *
 * A callback cut off before it counted is emulated for j2, j3 and j4: the test takes their nodes
 * off D and F before those signal (and puts the job reference each held, which a real cut-off
 * leaves behind: the documented known limit). Then the slot is reaped, and exactly:
 *  - j1 (D counted, not queued) and j3 (D lost) are made ready by the walk: they run once, return;
 *  - j4 (its lost dependency F failed) is made ready with F's error: it never runs, ends with it;
 *  - j2 (D lost, G pending) and j6 (G pending) stay WAITING, marked RECHECK: once G signals, both
 *    run once — j2 only because its callback checks the dependencies (its count never reaches 0);
 *  - j5 (on E) ends -EOWNERDEAD when the SIGNALERS stage signals E, never running.
 * A walk that regresses leaves j1/j3/j4 or j2 hanging (bounded waits fail), or readies j6 early.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, runWithFence, taskResult, type FencePool } from '../src/index.js';
import { putFence } from '../src/fence/fence.js';
import { F_REFCOUNT } from '../src/fence/layout.js';
import { RECHECK } from '../src/runtime/jobs.js';
import * as L from '../src/runtime/layout.js';
import { lockSched, unlockSched } from '../src/runtime/queue.js';
import { RUNS } from './fixtures/piscina-graph-cells.js';
import { expectClean, TestWorker, until } from './support/core.js';
import { graphPool, graphTally } from './support/graphpool.js';

const WAIT_MS = 30_000;

const pools: FencePool[] = [];
const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
  await Promise.all(pools.splice(0).map((p) => p.destroy({ graceMs: 0 })));
});

/** Takes job `job`'s callback off its dependency `dep` (entry `d`) and puts the reference it held: a lost callback. */
function loseCallback(arena: Arena, job: Fence, d: number, dep: Fence): void {
  const e = arena.i32[job.fw + L.J_DEPS] + d * L.DEP_WORDS;
  expect(arena.i32[e + L.DEP_FW]).toBe(dep.fw);
  expect(dep.removeCallback({ fence: dep, node: arena.i32[e + L.DEP_NODE], generation: arena.i32[e + L.DEP_NODE_GEN] })).toBe(true);
  putFence(arena, job.fw);
}

describe('the DISPATCH reaper readies stuck WAITING jobs and marks the others RECHECK', () => {
  it('a dependency callback cut off in a dead signaler: every job ends exactly as its dependencies say, nothing hangs', async () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const n = 6;
    const { tallyBuf, tally } = graphTally(n);
    const pool = graphPool(arena, tallyBuf, pools);
    const ctx = Fence.contextAlloc(arena);
    const [D, G, F, E] = [1, 2, 3, 4].map((seqno) => Fence.create(arena, { context: ctx, seqno }));
    const job = (i: number, deps: Fence[]): Fence => runWithFence(pool, arena, { i: i - 1, n }, { deps });
    const j1 = job(1, [D]);
    const j2 = job(2, [D, G]);
    const j3 = job(3, [D]);
    const j4 = job(4, [F]);
    const j5 = job(5, [E]);
    const j6 = job(6, [G]);
    loseCallback(arena, j2, 0, D);
    loseCallback(arena, j3, 0, D);
    loseCallback(arena, j4, 0, F);
    F.setError(Errno.ENOSPC);
    F.signal(); // no callback left on F: j4 is not told

    const go = new Int32Array(new SharedArrayBuffer(4));
    const w = new TestWorker('dep-signaler', { buffer: arena.buffer, shared: go.buffer, signal: D.handle, adopt: E.handle });
    workers.push(w);
    const slot = (await w.next('ready')).slot as number;
    const i32 = arena.i32;
    lockSched(arena, pool.sw);
    try {
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      // j1's callback counted D; it cannot queue j1 while we hold the lock.
      expect(await until(() => Atomics.load(i32, j1.fw + L.J_PENDING) === 0, WAIT_MS), 'the worker counted D for j1').toBe(true);
      await w.worker.terminate();
    } finally {
      unlockSched(arena, pool.sw);
    }
    workers.splice(0);
    expect(D.testSignaledFlag()).toBe(true);
    const pending = (f: Fence): number => Atomics.load(i32, f.fw + L.J_PENDING);
    const state = (f: Fence): number => Atomics.load(i32, f.fw + L.J_STATE);
    // Stuck before the reap: nothing would ever queue j1, j3 or j4.
    expect([j1, j2, j3, j4, j5, j6].map(state)).toEqual(Array(6).fill(L.JS_WAITING));
    expect([j1, j2, j3, j4, j5, j6].map(pending)).toEqual([0, 2, 1, 1, 1, 1]);

    arena.reapSlot(slot);
    // The walk (synchronous in the reap): settled jobs queued, the others marked.
    for (const f of [j1, j3, j4, j5]) expect(state(f), 'made ready by the reap').not.toBe(L.JS_WAITING);
    expect(i32[j4.fw + L.J_DEP_ERROR], 'j4 carries its failed dependency\'s error').toBe(Errno.ENOSPC);
    expect(E.status(), 'the dead signaler\'s fence').toBe(Errno.EOWNERDEAD);
    expect(i32[j5.fw + L.J_DEP_ERROR]).toBe(Errno.EOWNERDEAD);
    expect([j2, j6].map(state), 'still waiting on G').toEqual([L.JS_WAITING, L.JS_WAITING]);
    expect([j2, j6].map(pending), 'marked RECHECK, counts as they were').toEqual([2 | RECHECK, 1 | RECHECK]);

    for (const f of [j1, j3, j4, j5]) expect(await f.waitAsync(WAIT_MS), 'ended after the reap').toBe(true);
    expect([j1, j3].map((f) => f.status())).toEqual([1, 1]);
    expect([j1, j3].map((f) => taskResult(f))).toEqual([0, 2]);
    expect(j4.status()).toBe(Errno.ENOSPC);
    expect(j5.status()).toBe(Errno.EOWNERDEAD);
    expect(j2.testSignaledFlag() || j6.testSignaledFlag(), 'j2 and j6 wait for G').toBe(false);
    G.signal();
    for (const f of [j2, j6]) expect(await f.waitAsync(WAIT_MS), 'ended once G signaled').toBe(true);
    expect([j2, j6].map((f) => f.status())).toEqual([1, 1]);
    expect([j2, j6].map((f) => taskResult(f))).toEqual([1, 5]);
    expect(Array.from({ length: n }, (_, k) => Atomics.load(tally, RUNS + k)), 'runs of j1…j6').toEqual([1, 1, 1, 0, 0, 1]);

    await pool.destroy();
    pools.splice(0);
    for (const f of [D, G, F, E, j2, j3, j4, j5, j6]) f.put();
    // j1's callback died holding a job reference (docs/architecture.md, "A dependency callback cut
    // off"): besides ours, that one reference is all that may be left; once dropped, nothing is.
    const j1fw = j1.fw;
    const refs = arena.i32[j1fw + F_REFCOUNT];
    expect([1, 2], 'j1: ours, and at most the dead callback\'s reference').toContain(refs);
    j1.put();
    if (refs === 2) putFence(arena, j1fw);
    expectClean(arena);
  });
});

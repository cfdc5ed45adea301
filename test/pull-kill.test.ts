/**
 * A pool's pull loop terminated between taking a job off the ready queue and starting it. The
 * job is then in no queue and in no ledger: before the taken-job record (T_PULL_TAKEN, written in
 * the unlink's run, src/runtime/queue.ts takeOrPark) it was lost and its fence never signaled
 * (seen once in ~300 rounds of destroy({ graceMs: 0 }) right after a one-task pool started). Now
 * the DISPATCH reaper puts it back at the head of its queue — it never ran — or cancels it when
 * the pool is gone; a job started without records ends with -ENODEV.
 *
 * Checked with a bare pull loop (test/fixtures/pull-kill.ts) on a real fence pool: held after its
 * take and terminated (both outcomes, deterministically), and terminated at seeded random points
 * of a run of jobs: every job's fence signals, a successful one ran exactly once, nothing leaks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, type Fence, type FencePool, runWithFence, taskResult } from '../src/index.js';
import { schedHandle } from '../src/runtime/queue.js';
import { PK_CELLS, PK_DONE, PK_GO } from './fixtures/pull-kill-cells.js';
import { RUNS } from './fixtures/piscina-graph-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { graphPool, graphTally } from './support/graphpool.js';
import { adaptJitter, type KillMsg, KillTarget, killTargets } from './support/killloop.js';

const KILLS = 50;
const JOBS = 40; // per round
const WAIT_MS = 60_000;

const pools: FencePool[] = [];
const targets = killTargets();
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
});

interface Setup {
  arena: Arena;
  pool: FencePool;
  tally: Int32Array;
  cells: Int32Array;
  rogue(jobs: number, holdAfterTake: boolean): KillTarget;
}
/** A one-thread fence pool on a fresh arena, and a maker of bare pull loops on its scheduler. */
function setup(n: number): Setup {
  const arena = Arena.create({ bytes: 8 << 20 });
  const { tallyBuf, tally } = graphTally(n);
  const pool = graphPool(arena, tallyBuf, pools);
  const shared = new SharedArrayBuffer(PK_CELLS * 4);
  const rogue = (jobs: number, holdAfterTake: boolean): KillTarget => {
    Atomics.store(new Int32Array(shared), PK_GO, 0);
    const k = new KillTarget(arena, 'pull-kill', { buffer: arena.buffer, shared, tally: tallyBuf, sched: schedHandle(arena, pool.sw), jobs, holdAfterTake });
    targets.push(k);
    return k;
  };
  return { arena, pool, tally, cells: new Int32Array(shared), rogue };
}

/** Resolves on the fixture's 'taken' message; rejects after `ms`. */
function taken(k: KillTarget, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bare pull loop took no job in ${ms} ms`)), ms);
    k.worker.on('message', (m: KillMsg) => {
      if (m.type !== 'taken') return;
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Submits one task while a bare pull loop that holds after its take is the only loop looking: the
 * push asks for no other, so the bare loop takes the job. Resolves once it has.
 */
async function takenByRogue(s: Setup): Promise<{ k: KillTarget; f: Fence }> {
  const k = s.rogue(1, true);
  const took = taken(k, WAIT_MS);
  await k.ready;
  k.go(s.cells, PK_GO);
  const f = runWithFence(s.pool, s.arena, { i: 0, n: 1 });
  await took;
  return { k, f };
}

describe('a pull loop terminated between taking a job and starting it', () => {
  it('the job goes back to its queue and runs once on the pool', async () => {
    const s = setup(1);
    const { k, f } = await takenByRogue(s);
    await k.kill(0);
    expect(await f.waitAsync(WAIT_MS), 'the requeued job ran').toBe(true);
    expect(f.status()).toBe(1);
    expect(taskResult(f)).toBe(0);
    expect(Atomics.load(s.tally, RUNS)).toBe(1);
    expect(k.errors).toEqual([]);
    f.put();
    await s.pool.destroy();
    expectClean(s.arena);
  });

  it('the pool destroyed meanwhile: the job is cancelled (-ECANCELED), never run', async () => {
    const s = setup(1);
    const { k, f } = await takenByRogue(s);
    const destroyed = s.pool.destroy({ graceMs: 0 });
    await k.kill(0);
    await destroyed;
    expect(await f.waitAsync(WAIT_MS), 'the taken job ended').toBe(true);
    expect(f.status()).toBe(Errno.ECANCELED);
    expect(Atomics.load(s.tally, RUNS)).toBe(0);
    f.put();
    expectClean(s.arena);
  });

  it(`terminated at random points of its work (${KILLS} kills): every job ends, a successful one ran once, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'pull-kill-1';
    const rand = seededInt(seed);
    const s = setup(KILLS * JOBS);
    let delay = 200;
    let ok = 0;
    let ended = 0;
    for (let round = 0; round < KILLS; round++) {
      const k = s.rogue(JOBS, false);
      await k.ready;
      const fences: Fence[] = [];
      for (let j = 0; j < JOBS; j++) fences.push(runWithFence(s.pool, s.arena, { i: round * JOBS + j, n: KILLS * JOBS }));
      await k.killDuringWork(s.cells, PK_GO, PK_DONE, rand(delay));
      delay = adaptJitter(delay, Atomics.load(s.cells, PK_DONE), JOBS);
      expect(k.errors, `round ${round} (seed ${seed})`).toEqual([]);
      for (let j = 0; j < JOBS; j++) {
        const f = fences[j];
        const i = round * JOBS + j;
        expect(await f.waitAsync(WAIT_MS), `round ${round}: job ${j} ended (seed ${seed})`).toBe(true);
        const runs = Atomics.load(s.tally, RUNS + i);
        if (f.status() === 1) {
          ok++;
          expect(runs, `round ${round}: job ${j} ran once`).toBe(1);
          expect(taskResult(f)).toBe(i);
        } else {
          // Its loop died running it (or finishing it): the reaper ended it like a GPU reset.
          ended++;
          expect(f.status(), `round ${round}: job ${j}`).toBe(Errno.ENODEV);
          expect(runs).toBeLessThanOrEqual(1);
        }
        f.put();
      }
    }
    expect(ok + ended).toBe(KILLS * JOBS);
    await s.pool.destroy();
    expectClean(s.arena);
  });
});

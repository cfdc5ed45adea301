/**
 * A thread terminated inside a job's dependency callback (CB_JOB_DEP), or inside the cancel it leads
 * to, leaves nothing behind (docs/architecture.md, "Kill safety": dependency callbacks and early
 * ends). The callback runs in the thread that signals the dependency and holds a reference on the
 * job from its arming to its end; on a destroyed scheduler it drains the queue, cancelling the job
 * in that thread, and the cancel removes the callbacks still armed on the job's other dependencies,
 * each holding a job reference too. Before the signal record named the handler (SIG_SHARED), the
 * removal was marked in the dependency entry (DEP_REMOVED), the drain's take was recorded
 * (T_PULL_TAKEN) and the link into a destroyed queue named it for draining (T_DRAIN), a thread
 * terminated there left those references — the job's fence and blocks stayed allocated — and a job
 * it had taken off the queue, or linked into it, was never signaled.
 *
 * Checked on bare schedulers (no piscina: nothing runs the jobs, the destroyed scheduler cancels
 * them) with test/fixtures/depcb-kill.ts signaling the dependencies: once held inside the
 * callback's cancel (deterministic), and at seeded random points of a cascade of cancels.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Errno, Fence } from '../src/index.js';
import { F_REFCOUNT } from '../src/fence/layout.js';
import { encode } from '../src/runtime/codec.js';
import * as L from '../src/runtime/layout.js';
import { createJob } from '../src/runtime/jobs.js';
import { schedCreate, schedDestroy, schedPut } from '../src/runtime/queue.js';
import { DK_AT, DK_CELLS, DK_DONE, DK_GO } from './fixtures/depcb-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { adaptJitter, type KillMsg, KillTarget, killTargets } from './support/killloop.js';

const KILLS = 60;
const CHAIN = 6; // jobs per round, each depending on the one before and on a fence of its own
const WAIT_MS = 10_000;

const targets = killTargets();

/** A fence of the test thread (its reference is the test's). */
function plainFence(arena: Arena): Fence {
  return Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
}

/**
 * Jobs on a fresh, destroyed scheduler: job k depends on the job before it (the first on `first`)
 * and on `own[k]`. The scheduler's own reference is put: the jobs' keep it until they finish.
 */
function jobChain(arena: Arena, first: Fence, own: Fence[]): Fence[] {
  const sw = schedCreate(arena, { pump: () => {} });
  schedDestroy(arena, sw);
  const jobs: Fence[] = [];
  for (let k = 0; k < own.length; k++) jobs.push(createJob(arena, sw, encode({ i: k }, 'payload'), [k === 0 ? first : jobs[k - 1], own[k]]));
  schedPut(arena, sw);
  return jobs;
}

/** A job's state words, for a failure message. */
function describeJob(arena: Arena, j: Fence): string {
  const i = arena.i32;
  const fw = j.fw;
  return `s${i[fw + L.J_STATE]}p${i[fw + L.J_PENDING]}e${i[fw + L.J_DEP_ERROR]}r${i[fw + F_REFCOUNT]}${j.testSignaledFlag() ? 'S' : ''}`;
}

/** Resolves on the fixture's 'held' message; rejects after `ms`. */
function held(k: KillTarget, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fixture was not held in ${ms} ms`)), ms);
    k.worker.on('message', (m: KillMsg) => {
      if (m.type !== 'held') return;
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('threads terminated inside job dependency callbacks', () => {
  it('held in the cancel its dependency callback led to: the job ends -ECANCELED, nothing leaks', async () => {
    const arena = Arena.create({ bytes: 4 << 20 });
    const cells = new Int32Array(new SharedArrayBuffer(DK_CELLS * 4));
    const dep = plainFence(arena);
    const armed = plainFence(arena);
    const [job] = jobChain(arena, dep, [armed]);
    const k = new KillTarget(arena, 'depcb-kill', { buffer: arena.buffer, shared: cells.buffer, signals: [dep.handle], errnos: [Errno.EIO], hold: job.handle });
    targets.push(k);
    const isHeld = held(k, WAIT_MS);
    await k.ready;
    k.go(cells, DK_GO);
    await isHeld;
    // Held inside the job's signal: the callback counted the failed dependency (the job is ready
    // with its error: `armed` need not signal), pushed the job, took it
    // back off the destroyed queue (recorded), cancelled it, removed the callback armed on `armed`
    // and put its reference, and signaled the job; its own job reference, the queue's and the
    // scheduler's are still the fixture's.
    expect(job.testSignaledFlag()).toBe(true);
    await k.kill(0);
    expect(k.errors).toEqual([]);
    expect(job.status()).toBe(Errno.ECANCELED);
    job.put();
    dep.put();
    armed.put();
    expectClean(arena);
  });

  it(`terminated at seeded points of a cascade of cancels (${KILLS} kills): every job ends -ECANCELED, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'depcb-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const cells = new Int32Array(new SharedArrayBuffer(DK_CELLS * 4));
    let delay = 200;
    let inside = 0;
    for (let round = 0; round < KILLS; round++) {
      const failing = plainFence(arena);
      const own = Array.from({ length: CHAIN }, () => plainFence(arena));
      const jobs = jobChain(arena, failing, own);
      const signals = [failing, ...own];
      const k = new KillTarget(arena, 'depcb-kill', {
        buffer: arena.buffer, shared: cells.buffer, signals: signals.map((f) => f.handle), errnos: signals.map((_, i) => (i === 0 ? Errno.EIO : 0)), hold: 0,
      });
      targets.push(k);
      for (let c = 0; c < DK_CELLS; c++) Atomics.store(cells, c, 0);
      await k.ready;
      await k.killDuringWork(cells, DK_GO, DK_AT, rand(delay));
      targets.splice(targets.indexOf(k), 1);
      expect(k.errors, `round ${round}`).toEqual([]);
      const done = Atomics.load(cells, DK_DONE);
      if (Atomics.load(cells, DK_AT) === 1 && done === 0) inside++;
      delay = adaptJitter(delay, done, signals.length);
      // What the fixture did not signal, the test does (the failing fence with its error first).
      signals.forEach((f, i) => {
        if (f.testSignaledFlag()) return;
        if (i === 0) f.setError(Errno.EIO);
        f.signal();
      });
      for (const j of jobs) {
        const ended = await j.waitAsync(WAIT_MS);
        expect(ended, `round ${round}: a job ended (${jobs.map((x) => describeJob(arena, x)).join(' ')}; at ${Atomics.load(cells, DK_AT)} done ${done})`).toBe(true);
        expect(j.status(), `round ${round}: cancelled (its scheduler is destroyed)`).toBe(Errno.ECANCELED);
      }
      for (const f of [...jobs, ...signals]) f.put();
      expectClean(arena);
    }
    console.log(`depcb-kill (seed ${seed}): ${KILLS} kills, ${inside} inside the cascade (the failing dependency's signal)`);
  });
});

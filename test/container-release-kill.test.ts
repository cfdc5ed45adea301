/**
 * A thread terminated inside the release of a fence array or a fence chain, with container work
 * waiting in its deferred queue. A release cut off inside ops.release used to be skipped by the
 * reaper: the children an array had not dropped yet, and the links a chain had queued, kept a
 * reference each forever; and an array's signal or a chain's re-arm waiting in the dead thread's
 * queue was lost with the reference it held (the container never signaled, never freed).
 *
 * Now both releases record their progress in the container's block (each word cleared in the run
 * of its drop; a released predecessor link hands its words over to its successor), and the reaper
 * calls them again (src/fence/release.ts resumeRelease); deferred container work is recorded in
 * the thread's ledger, whose reaper finishes it (src/containers/common.ts).
 *
 * The loop: each round, the main thread builds arrays and chains (keeping a reference on some of
 * their children and links), a worker takes them over, queues an array's signal and a chain's
 * re-arm (setup), then puts the containers' last references — one with a child's lock held (that
 * drop deferred) — and is terminated at a seeded random point. After each kill and reap, the main
 * thread signals what it holds, and every reference it kept must be its own alone (refcount 1);
 * once it put them, the arena is clean: nothing leaked, nothing freed twice.
 */
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain, SpinLock } from '../src/index.js';
import {
  CR_AT, CR_CELLS, CR_DONE, CR_GO, type CrStep, STEP_PUT, STEP_PUT_LOCKED_CHILD, STEP_SIGNAL_LOCKED, STEP_SIGNAL_UNDER_ARRAY_LOCK,
} from './fixtures/container-release-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 60;
const CHILDREN = 64; // per big array
const LINKS = 64; // per big chain
const BIG = 24; // big arrays and big chains per round: their puts outlast terminate()'s ~7 ms landing

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

/** What one round hands the worker and what the main thread keeps. */
interface Round {
  queued: CrStep[];
  steps: CrStep[];
  /** References the main thread holds: each must be back to refcount 1 after the reap. */
  kept: Fence[];
  /** Chain links the main thread holds (refcount 1 after the reap; the links and fences below them are theirs until put). */
  keptLinks: Fence[];
  /** Fences the main thread signals after the reap (their callbacks finish the queued work's containers). */
  toSignal: Fence[];
  locks: SpinLock[];
}

/** Builds one round's containers on `arena` (see the file comment). */
function buildRound(arena: Arena): Round {
  const r: Round = { queued: [], steps: [], kept: [], keptLinks: [], toSignal: [], locks: [] };
  const context = Fence.contextAlloc(arena);
  let seqno = 0;
  /** A fresh fence; kept (with a reference of the main thread's besides the one returned) when asked. */
  const fence = (keep: boolean): Fence => {
    const f = Fence.create(arena, { context, seqno: ++seqno });
    if (seqno % 2 === 0) f.signal();
    if (keep) r.kept.push(f.get());
    return f;
  };
  const arrayOf = (children: Fence[]): Fence => FenceArray.create(arena, children, { context: Fence.contextAlloc(arena), seqno: 1 });
  const bigArray = (): Fence => arrayOf(Array.from({ length: CHILDREN }, (_, i) => fence(i % 3 === 0)));
  const bigChain = (): Fence => {
    let head: Fence | null = null;
    for (let i = 0; i < LINKS; i++) {
      head = FenceChain.create(arena, head, fence(i % 3 === 0), i + 1);
      if (i % 8 === 4) r.keptLinks.push(head.get());
    }
    return head as Fence;
  };
  // Queued work: an armed array whose children the worker signals under the array's lock (its
  // signal is deferred, holding an array reference), and a chain armed on a fence the worker
  // signals under that fence's lock (the re-arm is deferred, holding a chain reference).
  const kids = [Fence.create(arena, { context, seqno: ++seqno }), Fence.create(arena, { context, seqno: ++seqno })];
  r.kept.push(...kids.map((k) => k.get()));
  r.toSignal.push(...kids);
  const armed = arrayOf(kids);
  armed.enableSignaling();
  r.queued.push({ kind: STEP_SIGNAL_UNDER_ARRAY_LOCK, container: armed.handle, aux: kids.map((k) => k.handle) });
  const lock = SpinLock.create(arena);
  r.locks.push(lock);
  const f1 = Fence.create(arena, { context, seqno: ++seqno, lock });
  const f2 = Fence.create(arena, { context, seqno: ++seqno, lock });
  const c2 = FenceChain.create(arena, FenceChain.create(arena, null, f1, 1), f2, 2);
  r.kept.push(f1.get(), f2.get());
  r.toSignal.push(f1, f2);
  c2.enableSignaling(); // armed on f2
  r.queued.push({ kind: STEP_SIGNAL_LOCKED, container: c2.handle, aux: [f2.handle] });
  // The puts the kills land among.
  const locked = Array.from({ length: 8 }, () => fence(true));
  r.steps.push({ kind: STEP_PUT_LOCKED_CHILD, container: arrayOf(locked).handle, aux: [locked[0].handle] });
  for (let i = 0; i < BIG; i++) {
    r.steps.push({ kind: STEP_PUT, container: bigArray().handle, aux: [] });
    r.steps.push({ kind: STEP_PUT, container: bigChain().handle, aux: [] });
  }
  return r;
}

describe('a thread terminated inside a container release, with container work queued', () => {
  it(`seeded kills (${KILLS}): every child and link reference dropped exactly once, queued work finished, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'container-release-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const baseline = arena.stats().used;
    let delay = 500; // µs of jitter range, adapted so that the kills land among the puts
    let inside = 0;
    for (let round = 0; round < KILLS; round++) {
      const fencesBefore = arena.stats().live.fence ?? 0;
      const r = buildRound(arena);
      const s = new Int32Array(new SharedArrayBuffer(CR_CELLS * 4));
      const k = new KillTarget(arena, 'container-release-kill', { buffer: arena.buffer, shared: s.buffer, queued: r.queued, steps: r.steps });
      running.push(k.worker);
      expect((await k.ready).queued, `round ${round}: the setup queued an array's signal and a chain's re-arm`).toBe(2);
      await k.killDuringWork(s, CR_GO, CR_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      if (s[CR_AT] !== s[CR_DONE]) inside++;
      delay = adaptJitter(delay, s[CR_DONE], r.steps.length);
      const where = `round ${round} (seed ${seed}, kill in step ${s[CR_AT]}, ${s[CR_DONE]} done)`;
      // The queued work's containers hold callbacks on these: signaled, they signal and free them.
      for (const f of r.toSignal) f.signal();
      // From each chain's head down: a link's put drops what it holds, down to the next kept link.
      for (const f of r.keptLinks.reverse()) {
        expect(f.refcount, `${where}: kept link`).toBe(1);
        f.put();
      }
      r.kept.forEach((f, i) => expect(f.refcount, `${where}: kept reference ${i}`).toBe(1));
      for (const f of r.kept) f.put();
      for (const l of r.locks) l.free();
      expect(arena.stats().live.fence ?? 0, where).toBe(fencesBefore);
      const report = arena.check();
      expect(report.problems, where).toEqual([]);
      expect(report.leakedBytes, where).toBe(0);
    }
    console.log(`container-release-kill: ${KILLS} kills (seed ${seed}), ${inside} inside a container's put`);
    expect(inside).toBeGreaterThanOrEqual(KILLS / 5);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 300_000); // ~25 s quiet, ~90 s beside two busy loops: each round starts a worker
});

/**
 * The pool scheduler's shared-memory half (kernel drm_sched): a job is a fence extended with a
 * state, a count of dependencies still pending and its encoded envelope; it enters the ready queue
 * only once every dependency fence has signaled, and pool workers take jobs from that queue. So
 * no worker ever holds an execution slot while it waits for a dependency.
 *
 * Dependencies are armed with shared fence callbacks (CB_JOB_DEP), which run in whichever thread
 * signals — the kernel's callback context: when a pool worker finishes a job, the dependents it
 * releases are queued by that worker, and the same worker's pull loop takes the next one. A chain
 * never goes through the main thread; the main thread is asked (the scheduler's BELL) only when
 * ready jobs outnumber the pull loops looking for work, to start another loop on an idle worker.
 *
 * Ownership of a job fence's references:
 * - the submitter's (returned to the caller);
 * - the scheduler's, from submission until the job is finished (finish.ts), by whoever wins the
 *   transition to RUNNING-then-done or CANCELED;
 * - one per armed dependency callback, put when it runs or is removed;
 * - the ready queue's, while the job is linked in it;
 * - each dependent's, until that dependent finishes (it reads this job's result as an input).
 *
 * This file is a job's birth: its fence ops, creation, the arming of its dependencies and its way
 * into the ready queue. How it runs, finishes, is cancelled or is recovered from a dead worker is
 * finish.ts; the ready queue and the pull loops are queue.ts, the pool's thread (kicks, abort
 * signals) pool.ts and piscina.ts, the worker side task.ts. Nothing here touches piscina.
 *
 * Every thread that may signal a dependency or put a job's last reference must have loaded this
 * module (it registers CB_JOB_DEP and the job fence ops): task.ts imports it in the workers.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errno, Errors, FenceError, isInstance } from '../errors.js';
import { defineSharedCallback } from '../fence/callbacks.js';
import { contextAlloc, fenceAlloc, fenceGet, isSignaledFlag } from '../fence/core.js';
import { type Fence, fenceView, putFence } from '../fence/fence.js';
import { defineFenceOps } from '../fence/ops.js';
import { freeInFlight } from '../fence/ledger.js';
import { putFenceAt } from '../fence/release.js';
import { drop, store, type Encoded } from './codec.js';
import { cancelJob, cancelTaken, depListSound, finishJob } from './finish.js';
import { linkTail, lockSched, pushReady, schedGet, takeQueued, unlockSched } from './queue.js';

const { BLOCK_HEADER_WORDS, BLOCK_HEADER_BYTES } = A;
const { J_STATE, J_PENDING, J_DEP_ERROR, J_SCHED, J_DEPS, J_NDEPS, JS_WAITING, JS_QUEUED, JS_CANCELED } = L;

/** Block size of a job: the fence and the job's fields, header included. */
const JOB_BLOCK = BLOCK_HEADER_BYTES + L.JOB_WORDS * 4;

/** Ops of job fences: the names, and a release that frees the job's blocks. */
export const jobOps = defineFenceOps('fencelab:piscina', {
  getDriverName: () => 'piscina',
  getTimelineName: () => 'task',
  release: (f) => releaseJobBlocks(f.arena, f.fw),
});

/** True when the fence at payload word `fw` is a job (so it has a result to hand on). */
export function isJob(arena: Arena, fw: number): boolean {
  return arena.i32[fw + FL.F_OPS] === jobOps.id;
}

/* ───────────── jobs ───────────── */

const timelines = new Map<Arena, { context: number; seqno: number }>();

/**
 * Creates a job of scheduler `sw` with `deps` and the encoded envelope, and arms its dependencies.
 * Returns the job fence with the caller's reference; the scheduler holds another until the job
 * finishes. A job whose dependencies have all signaled is queued before this returns.
 * `canceled`: the job is born cancelled (its fence signaled -ECANCELED, never queued).
 * Threads: the pool's thread. Locking: takes each dependency's fence lock in turn (addShared), then
 * the scheduler lock. Throws ENOMEM (nothing is left allocated), or what arming threw (armDeps).
 */
export function createJob(arena: Arena, sw: number, envelope: Encoded, deps: Fence[], canceled = false): Fence {
  const i32 = arena.i32;
  let tl = timelines.get(arena);
  if (!tl) timelines.set(arena, (tl = { context: contextAlloc(arena, 1), seqno: 0 }));
  const n = deps.length;
  const input = store(arena, envelope);
  let depsW = 0;
  let jw = 0;
  try {
    depsW = n === 0 ? 0 : arena.allocBlock(BLOCK_HEADER_BYTES + n * L.DEP_WORDS * 4, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
    tl.seqno = (tl.seqno + 1) >>> 0;
    jw = fenceAlloc(arena, JOB_BLOCK, { opsId: jobOps.id, context: tl.context, seqno: tl.seqno, seqno64: false, lockIdx: 0, lenderHw: 0 });
  } catch (e) {
    drop(arena, input);
    if (depsW) arena.freeBlock(depsW - BLOCK_HEADER_WORDS);
    throw e;
  }
  i32.fill(0, jw + FL.FENCE_WORDS, jw + L.JOB_WORDS);
  if (depsW) i32.fill(0, depsW, depsW + n * L.DEP_WORDS);
  i32[jw + J_STATE] = JS_WAITING;
  // ARMING stays in the count while callbacks are being armed: none of them can finish the count
  // (or fail the job early) before the job is fully built.
  i32[jw + J_PENDING] = n + ARMING;
  i32[jw + J_SCHED] = sw;
  i32[jw + L.J_INPUT] = input;
  i32[jw + L.J_INPUT_LEN] = envelope.length;
  i32[jw + L.J_INPUT_KIND] = envelope.kind;
  i32[jw + J_DEPS] = depsW;
  i32[jw + J_NDEPS] = n;
  schedGet(arena, sw); // the job's, until it finishes
  fenceGet(i32, jw); // the scheduler's, until it finishes
  const job = fenceView(arena, jw);
  if (canceled) {
    i32[jw + J_STATE] = JS_CANCELED;
    finishJob(arena, jw, Errno.ECANCELED, null, false);
    return job;
  }
  armDeps(arena, job, depsW, deps);
  const rest = Atomics.sub(i32, jw + J_PENDING, ARMING) - ARMING;
  if (isReady(arena, jw, rest)) makeReady(arena, jw);
  return job;
}

/**
 * Arms job `job`'s dependencies (list at `depsW`): a reference on each, a CB_JOB_DEP callback (with a job reference) on each
 * unsignaled one. Out of memory fails the job with it (it must not wait on what it could not arm); any other refusal (a
 * lock-order error, a dependency's ops that threw) undoes the job (cancelled, callbacks removed, references put) and is thrown.
 */
function armDeps(arena: Arena, job: Fence, depsW: number, deps: Fence[]): void {
  const i32 = arena.i32;
  const jw = job.fw;
  for (let d = 0; d < deps.length; d++) {
    const e = depsW + d * L.DEP_WORDS;
    const dep = deps[d];
    dep.get(); // the job's reference on its input, until it finishes
    i32[e + L.DEP_FW] = dep.fw;
    fenceGet(i32, jw); // the callback's
    let cb: ReturnType<Fence['addShared']> = null;
    try {
      cb = dep.addShared(L.CB_JOB_DEP, jw);
    } catch (err) {
      putFence(arena, jw);
      if (isInstance(err, FenceError) && err.code === 'ENOMEM') return void Atomics.compareExchange(i32, jw + J_DEP_ERROR, 0, Errno.ENOMEM);
      cancelJob(arena, jw, Errno.ECANCELED);
      job.put();
      throw err;
    }
    if (cb) {
      i32[e + L.DEP_NODE] = cb.node;
      i32[e + L.DEP_NODE_GEN] = cb.generation;
    } else {
      // Already signaled: count it here (never the last count: ARMING is still in it).
      putFence(arena, jw);
      depSignaled(i32, jw, dep.fw);
    }
  }
}

/** Added to a job's pending count while its dependencies are being armed. */
const ARMING = 1 << 30;
/**
 * Set in a job's pending count by a reaper when a dead thread may have taken one of the job's
 * dependency callbacks with it (see the DISPATCH hook below): the count may then never reach 0, and
 * each later callback checks the dependencies themselves instead.
 */
export const RECHECK = 1 << 29;

/**
 * True when job `jw`, `rest` dependencies left by the count, is to be queued: the count is done, a
 * dependency failed (its error goes to the job at once), or — the count not to be trusted any
 * more (RECHECK) — every dependency has signaled.
 */
function isReady(arena: Arena, jw: number, rest: number): boolean {
  if (rest >= ARMING) return false;
  if (rest === 0 || arena.i32[jw + J_DEP_ERROR] < 0) return true;
  return (rest & RECHECK) !== 0 && settle(arena, jw);
}

/** True when job `jw`'s dependencies have settled (see settledDeps); a failed one's error is recorded. */
function settle(arena: Arena, jw: number): boolean {
  const err = settledDeps(arena, jw);
  if (err === null) return false;
  if (err < 0) Atomics.compareExchange(arena.i32, jw + J_DEP_ERROR, 0, err);
  return true;
}

/**
 * A dependency at `dfw` signaled: records its error, counts it. Returns the count left. `at` (0
 * none): the word (a signal record's SIG_SHARED) that says DEP_COUNTED from the count's run on.
 */
function depSignaled(i32: Int32Array, jw: number, dfw: number, at = 0): number {
  const err = i32[dfw + FL.F_ERROR];
  // Repeated by a reaper after a terminate() here: the compare-exchange only ever stores the first.
  if (err < 0) Atomics.compareExchange(i32, jw + J_DEP_ERROR, 0, err);
  const rest = Atomics.sub(i32, jw + J_PENDING, 1) - 1;
  if (at !== 0) i32[at] = L.CB_JOB_DEP | DEP_COUNTED;
  return rest;
}

/** Progress bit of a CB_JOB_DEP handler in its signal record's SIG_SHARED: the dependency is counted. */
const DEP_COUNTED = FL.SIG_STEP_1;

/**
 * Shared callback CB_JOB_DEP, run by the thread that signals dependency `dfw` of job `jw`; puts the
 * job reference the callback held. The last dependency — or the first that failed: its error
 * reaches the job's fence without waiting for the others — queues the job.
 *
 * Under signal record `rec` (see defineSharedCallback), which names this handler and the job from
 * before the node's free: DEP_COUNTED goes into its SIG_SHARED in the count's run, and the word is
 * cleared in the run of the drop of the job reference (putFenceAt). So for a thread terminated
 * anywhere in here the reaper (reapJobDep) knows whether the dependency was counted and that the
 * reference is still held.
 */
function onJobDep(arena: Arena, jw: number, dfw: number, rec = 0): void {
  const i32 = arena.i32;
  const at = rec === 0 ? 0 : rec + FL.SIG_SHARED;
  try {
    if (isReady(arena, jw, depSignaled(i32, jw, dfw, at))) makeReady(arena, jw);
  } finally {
    if (at === 0) putFence(arena, jw);
    else putFenceAt(arena, jw, at);
  }
}

/**
 * What {@link onJobDep} left when its thread was terminated after the node's free and before the
 * drop (SIGNALS reap stage): the dependency is counted unless `step` says it was, the job made ready
 * if the count (or a failed dependency, or RECHECK's own look) says so — makeReady is a
 * compare-and-swap, so doing it again after the dead thread did is harmless — and the job reference
 * the callback held is put. A job no longer WAITING needs no count: only the put.
 */
function reapJobDep(arena: Arena, data: number, dfw: number, step: number): void {
  const jw = linkedPayload(arena, data, A.BlockType.FENCE, 'the job of a dependency callback cut off');
  if (!isJob(arena, jw)) throw Errors.corruptArena(`the dependency callback of a dead thread names fence @${jw * 4}, not a job`);
  const i32 = arena.i32;
  try {
    if (Atomics.load(i32, jw + J_STATE) === JS_WAITING) {
      // Counted: the count only goes down (or gains RECHECK, which isReady checks for itself), so
      // the count now says ready whenever the one the dead thread took did.
      const rest = step & DEP_COUNTED ? Atomics.load(i32, jw + J_PENDING) : depSignaled(i32, jw, dfw);
      if (isReady(arena, jw, rest)) makeReady(arena, jw, true);
    }
  } finally {
    putFence(arena, jw);
  }
}
defineSharedCallback(L.CB_JOB_DEP, onJobDep, reapJobDep);

/**
 * WAITING → QUEUED (only one caller wins: queue.ts pushReady) and into the ready queue. A destroyed pool's queue is
 * cancelled here: in a loop, not by recursion — cancelling signals, which may make more jobs ready,
 * which land in the same queue and in the same loop. A job of another destroyed pool (a dependency
 * across pools) lands in that pool's queue, which this thread is not draining: that queue is
 * drained here, one level deeper (at most one level per pool).
 */
function makeReady(arena: Arena, jw: number, deferPump = false): void {
  if (Atomics.load(arena.i32, jw + J_STATE) !== JS_WAITING) return;
  const sw = arena.i32[jw + J_SCHED];
  if (pushReady(arena, sw, jw, deferPump) && !isDraining(arena, sw)) drainQueue(arena, sw, Errno.ECANCELED);
}

/**
 * The queues this thread is cancelling, innermost last (see makeReady): one flag for all of them
 * left the job of a second destroyed pool, made ready by a cancellation in the first pool's drain,
 * in a queue nobody would drain again — its fence never signaled.
 */
const draining: { arena: Arena; sw: number }[] = [];

function isDraining(arena: Arena, sw: number): boolean {
  return draining.some((d) => d.sw === sw && d.arena.buffer === arena.buffer);
}

/**
 * Cancels every queued job with `errno` (a destroyed pool, or one whose workers cannot start).
 * Threads: any attached thread. Returns the number cancelled.
 */
export function drainQueue(arena: Arena, sw: number, errno: number): number {
  draining.push({ arena, sw });
  let n = 0;
  // No queue holds more jobs than the heap has blocks: past that, a corrupted cycle.
  let hops = maxBlocks(arena);
  const refs = arena.slotBase + L.T_PULL_TAKEN_REFS;
  try {
    for (;;) {
      if (hops-- === 0) throw Errors.corruptArena(`the ready queue of scheduler @${sw * 4} does not end`);
      // Each take recorded like a pull loop's (a worker draining from a dependency callback may be
      // terminated here), unless the slot's record is in use: a pull loop finishing a job it
      // could not record (finish.ts startUnrecorded), which signals, which may land here.
      const record = arena.i32[refs] === 0;
      const jw = takeQueued(arena, sw, record);
      if (jw === 0) {
        // Empty: what this thread linked into it is drained (see queue.ts linkTail).
        if (arena.i32[arena.slotBase + L.T_DRAIN] === sw) arena.i32[arena.slotBase + L.T_DRAIN] = 0;
        return n;
      }
      if (record) {
        if (cancelTaken(arena, jw, errno)) n++;
        continue;
      }
      if (cancelJob(arena, jw, errno)) n++;
      putFence(arena, jw); // the queue's
    }
  } finally {
    draining.pop();
  }
}

/* ───────────── dead signalers ───────────── */

/**
 * Reap hook: what a dead thread left undone of making jobs ready. A job it had moved to QUEUED and
 * not linked (T_PUSHED, see queue.ts pushReady) is linked now, and a destroyed queue it had linked a
 * job into and not drained (T_DRAIN, see queue.ts linkTail) is drained. A dependency callback it was
 * running under a signal record was finished at the SIGNALS stage (reapJobDep); one run without a
 * record (only a reaper's own run: signals deeper than SIGNAL_INLINE are deferred, not unrecorded,
 * see runRecorded in src/fence/signal.ts) may have been cut off before
 * its count or its push, which left its job WAITING forever although its dependencies have
 * signaled: every job still WAITING whose dependencies have all signaled, or one of them with an
 * error, is made ready here (the transition is a compare-and-swap: a live thread doing the same at
 * the same time is harmless), and every other WAITING job is marked RECHECK, so that the callback of
 * its last dependency makes it ready although the lost callback never counted. Such an unrecorded
 * callback's job reference stays (docs/architecture.md, known limits).
 */
onReap(ReapStage.DISPATCH, (arena, slot) => {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const jw = i32[b + L.T_PUSHED];
  if (jw !== 0) {
    i32[b + L.T_PUSHED] = 0;
    if (arena.isLive(jw - BLOCK_HEADER_WORDS, i32[b + L.T_PUSHED_GEN])) relink(arena, jw);
  }
  // A destroyed queue it linked a job into and had not drained: nobody else will.
  const sw = i32[b + L.T_DRAIN];
  if (sw !== 0) {
    i32[b + L.T_DRAIN] = 0;
    if (arena.isLive(sw - BLOCK_HEADER_WORDS, i32[b + L.T_DRAIN_GEN])) drainQueue(arena, sw, Errno.ECANCELED);
  }
  readyStuckJobs(arena);
});

/** Links a QUEUED job its dead pusher left in no queue (a job cancelled since needs nothing). */
function relink(arena: Arena, jw: number): void {
  const sw = arena.i32[jw + J_SCHED];
  if (sw === 0) return;
  lockSched(arena, sw);
  if (Atomics.load(arena.i32, jw + J_STATE) !== JS_QUEUED) {
    unlockSched(arena, sw);
    return;
  }
  if (linkTail(arena, sw, jw, true)) drainQueue(arena, sw, Errno.ECANCELED);
}

/**
 * Makes ready every WAITING job whose dependencies have settled, and marks the others RECHECK: one
 * of their callbacks may have died with the thread (see the reap hook above).
 */
function readyStuckJobs(arena: Arena): void {
  const i32 = arena.i32;
  const stuck: number[] = [];
  arena.walk((hw, _size, state, type) => {
    const jw = hw + BLOCK_HEADER_WORDS;
    if (state === A.STATE_LIVE && type === A.BlockType.FENCE && i32[jw + FL.F_OPS] === jobOps.id && Atomics.load(i32, jw + J_STATE) === JS_WAITING)
      stuck.push(jw);
  });
  for (const jw of stuck) {
    // Marked first, checked after: a live callback that counted before the mark finds its
    // dependency signaled here; one that counts after it sees the mark and checks for itself.
    if (Atomics.load(i32, jw + J_PENDING) >= ARMING) continue;
    Atomics.or(i32, jw + J_PENDING, RECHECK);
    if (settle(arena, jw)) makeReady(arena, jw, true);
  }
}

/**
 * null while job `jw` still waits on a dependency (or is being armed: its creator's to finish);
 * else the error of a dependency that failed, or 0 when all of them signaled fine.
 */
function settledDeps(arena: Arena, jw: number): number | null {
  const i32 = arena.i32;
  if (Atomics.load(i32, jw + J_PENDING) >= ARMING) return null;
  const n = i32[jw + J_NDEPS];
  const depsW = i32[jw + J_DEPS];
  if (!depListSound(arena, jw)) return null;
  let signaled = 0;
  for (let d = 0; d < n; d++) {
    const dfw = i32[depsW + d * L.DEP_WORDS + L.DEP_FW];
    if (dfw === 0 || !isSignaledFlag(i32, dfw)) continue;
    const err = i32[dfw + FL.F_ERROR];
    if (err < 0) return err;
    signaled++;
  }
  return signaled === n ? 0 : null;
}

/** ops.release of a job fence: the blocks it still owns. */
function releaseJobBlocks(arena: Arena, jw: number): void {
  // Each freed with its word cleared in one run (a release cut off here is finished by a reaper).
  freeInFlight(arena, jw + L.J_INPUT);
  freeInFlight(arena, jw + L.J_RESULT);
  // Only a job that was never finished still has a dependency list (its creator died mid-submit).
  freeInFlight(arena, jw + J_DEPS);
}

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
 * - the scheduler's, from submission until the job is finished (FINISH below), by whoever wins the
 *   transition to RUNNING-then-done or CANCELED;
 * - one per armed dependency callback, put when it runs or is removed;
 * - the ready queue's, while the job is linked in it;
 * - each dependent's, until that dependent finishes (it reads this job's result as an input).
 *
 * This file is the jobs' life cycle; the ready queue and the pull loops are queue.ts, the pool's
 * thread (kicks, abort signals) piscina.ts, the worker side task.ts. Nothing here touches piscina.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errno, Errors } from '../errors.js';
import { defineSharedCallback } from '../fence/callbacks.js';
import { contextAlloc, fenceAlloc, fenceGet, fenceLock, fenceUnlock, isSignaledFlag } from '../fence/core.js';
import { Fence, fenceView, putFence } from '../fence/fence.js';
import { defineFenceOps } from '../fence/ops.js';
import { drop, load, store, type Encoded } from './codec.js';
import { defineLedgerKind, ledgerAdd, ledgerRemove, ledgerReserve } from '../fence/ledger.js';
import { LGK_FENCE_REF } from '../fence/layout.js';
import { LGK_JOB } from './layout.js';
import { putTracked } from './ledger.js';
import { push, schedGet, schedPut, takeQueued } from './queue.js';

const { BLOCK_HEADER_WORDS, BLOCK_HEADER_BYTES } = A;
const { J_STATE, J_PENDING, J_DEP_ERROR, J_SCHED, J_ABORT, J_DEPS, J_NDEPS, JS_WAITING, JS_QUEUED, JS_RUNNING, JS_DONE, JS_CANCELED } = L;

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
 * the scheduler lock. Throws ENOMEM (nothing is left allocated).
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
  for (let d = 0; d < n; d++) {
    const e = depsW + d * L.DEP_WORDS;
    const dep = deps[d];
    dep.get(); // the job's reference on its input, until it finishes
    i32[e + L.DEP_FW] = dep.fw;
    fenceGet(i32, jw); // the callback's
    let cb: ReturnType<Fence['addShared']> = null;
    try {
      cb = dep.addShared(L.CB_JOB_DEP, jw);
    } catch {
      // Out of memory arming: the job fails with it rather than waiting on what it could not arm.
      putFence(arena, jw);
      Atomics.compareExchange(i32, jw + J_DEP_ERROR, 0, Errno.ENOMEM);
      break;
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
  const rest = Atomics.sub(i32, jw + J_PENDING, ARMING) - ARMING;
  if (rest === 0 || i32[jw + J_DEP_ERROR] < 0) makeReady(arena, jw);
  return job;
}

/** Added to a job's pending count while its dependencies are being armed. */
const ARMING = 1 << 30;

/** A dependency at `dfw` signaled: records its error, counts it. Returns the count left. */
function depSignaled(i32: Int32Array, jw: number, dfw: number): number {
  const err = i32[dfw + FL.F_ERROR];
  if (err < 0) Atomics.compareExchange(i32, jw + J_DEP_ERROR, 0, err);
  return Atomics.sub(i32, jw + J_PENDING, 1) - 1;
}

/**
 * Shared callback CB_JOB_DEP, run by the thread that signals dependency `dfw` of job `jw`; puts the
 * job reference the callback held. The last dependency — or the first that failed: its error
 * reaches the job's fence without waiting for the others — queues the job.
 */
function onJobDep(arena: Arena, jw: number, dfw: number): void {
  const i32 = arena.i32;
  try {
    const rest = depSignaled(i32, jw, dfw);
    if (rest === 0 || (rest < ARMING && i32[jw + J_DEP_ERROR] < 0)) makeReady(arena, jw);
  } finally {
    putFence(arena, jw);
  }
}
defineSharedCallback(L.CB_JOB_DEP, onJobDep);

/**
 * WAITING → QUEUED (only one caller wins) and into the ready queue. A destroyed pool's queue is
 * cancelled here: in a loop, not by recursion — cancelling signals, which may make more jobs ready,
 * which land in the same queue and in the same loop.
 */
function makeReady(arena: Arena, jw: number): void {
  if (Atomics.compareExchange(arena.i32, jw + J_STATE, JS_WAITING, JS_QUEUED) !== JS_WAITING) return;
  const sw = arena.i32[jw + J_SCHED];
  if (push(arena, sw, jw) && !draining) drainQueue(arena, sw, Errno.ECANCELED);
}

/** True while this thread cancels a queue (see makeReady). */
let draining = false;

/**
 * Cancels every queued job with `errno` (a destroyed pool, or one whose workers cannot start).
 * Threads: any attached thread. Returns the number cancelled.
 */
export function drainQueue(arena: Arena, sw: number, errno: number): number {
  draining = true;
  let n = 0;
  try {
    for (;;) {
      const jw = takeQueued(arena, sw);
      if (jw === 0) return n;
      if (cancelJob(arena, jw, errno)) n++;
      putFence(arena, jw); // the queue's
    }
  } finally {
    draining = false;
  }
}

/**
 * Cancels a job that has not started (WAITING or QUEUED): its fence is signaled with `errno` and it
 * never runs. Threads: any attached thread holding a reference on it. Returns false when it had
 * already started or finished.
 */
export function cancelJob(arena: Arena, jw: number, errno: number): boolean {
  const i32 = arena.i32;
  for (;;) {
    const s = Atomics.load(i32, jw + J_STATE);
    if (s !== JS_WAITING && s !== JS_QUEUED) return false;
    if (Atomics.compareExchange(i32, jw + J_STATE, s, JS_CANCELED) === s) break;
  }
  finishJob(arena, jw, errno, null, true);
  return true;
}

/** Asks a running job to stop: what its task reads as ctx.aborted / ctx.signal. */
export function abortRunning(arena: Arena, jw: number): void {
  const i32 = arena.i32;
  if (Atomics.compareExchange(i32, jw + J_ABORT, L.AB_NONE, L.AB_ABORTED) === L.AB_NONE) Atomics.notify(i32, jw + J_ABORT);
}

/**
 * Finishes a job whose final transition the caller won (a canceller, a reaper): see
 * {@link finishSteps}, then puts the scheduler's reference on the job.
 * Threads: any attached thread.
 */
export function finishJob(arena: Arena, jw: number, status: number, result: Encoded | null, early: boolean): void {
  try {
    finishSteps(arena, jw, status, result, early, false);
  } finally {
    putFence(arena, jw);
  }
}

/**
 * Finishes a job the calling pull loop ran (started with {@link startJob}): {@link finishSteps},
 * then the job's ledger record goes and the scheduler's reference — tracked in this thread's ledger
 * since the start — is put with putTracked, so a thread terminated anywhere in here leaves its
 * reaper exactly what is left to do. `abortWaiter`: the task waits on its abort word (ctx.signal).
 */
export function finishRun(arena: Arena, jw: number, status: number, result: Encoded | null, early: boolean, abortWaiter: boolean): void {
  const job = fenceView(arena, jw);
  try {
    finishSteps(arena, jw, status, result, early, abortWaiter);
  } finally {
    ledgerRemove(arena, LGK_JOB, jw, arena.generationAt(jw - BLOCK_HEADER_WORDS));
    putTracked(job);
  }
}

/**
 * What finishing a job does, each step recorded in the job as it completes (fields zeroed) so that a
 * reaper can run the same function for a thread that died half-way: store the result; drop the
 * dependencies (removing the callbacks still armed when the job ends early); drop the input and the
 * scheduler reference; and last, signal the fence (`status` 1, or a negative errno) — after
 * everything else, so that a thread which sees the fence signaled and tears the pool down at once
 * leaves only the scheduler's job reference to put.
 */
function finishSteps(arena: Arena, jw: number, status: number, result: Encoded | null, early: boolean, abortWaiter: boolean): void {
  const i32 = arena.i32;
  if (result !== null && i32[jw + L.J_RESULT] === 0) {
    let rw = 0;
    try {
      rw = store(arena, result);
    } catch {
      if (status > 0) status = Errno.ENOMEM; // the result did not fit: the job failed after all
    }
    i32[jw + L.J_RESULT_LEN] = rw === 0 ? 0 : result.length;
    i32[jw + L.J_RESULT_KIND] = rw === 0 ? 0 : result.kind;
    i32[jw + L.J_RESULT] = rw;
  }
  if (Atomics.compareExchange(i32, jw + J_ABORT, L.AB_NONE, L.AB_OVER) === L.AB_ABORTED) Atomics.store(i32, jw + J_ABORT, L.AB_OVER);
  // Only the running task's own ctx.signal waits on the word (a notify costs a global lock).
  if (abortWaiter) Atomics.notify(i32, jw + J_ABORT);
  let error: unknown;
  let failed = false;
  const depsW = i32[jw + J_DEPS];
  const n = i32[jw + J_NDEPS];
  for (let d = 0; d < n; d++) {
    const e = depsW + d * L.DEP_WORDS;
    const dfw = i32[e + L.DEP_FW];
    if (dfw === 0) continue;
    try {
      if (early && i32[e + L.DEP_NODE] !== 0) {
        const dep = fenceView(arena, dfw);
        const removed = dep.removeCallback({ fence: dep, node: i32[e + L.DEP_NODE], generation: i32[e + L.DEP_NODE_GEN] });
        i32[e + L.DEP_NODE] = 0;
        if (removed) putFence(arena, jw); // the callback's reference: it will never run
      }
      i32[e + L.DEP_FW] = 0;
      putFence(arena, dfw);
    } catch (err) {
      if (!failed) error = err;
      failed = true;
    }
  }
  i32[jw + J_DEPS] = 0;
  i32[jw + J_NDEPS] = 0;
  if (depsW) arena.freeBlock(depsW - BLOCK_HEADER_WORDS);
  const input = i32[jw + L.J_INPUT];
  i32[jw + L.J_INPUT] = 0;
  drop(arena, input);
  const sw = i32[jw + J_SCHED];
  i32[jw + J_SCHED] = 0;
  if (sw !== 0) schedPut(arena, sw);
  if (Atomics.load(i32, jw + J_STATE) === JS_RUNNING) Atomics.store(i32, jw + J_STATE, JS_DONE);
  try {
    // The result is written before the signal: a thread that sees the fence signaled sees it.
    const job = fenceView(arena, jw);
    if (status < 0) signalErrorAt(arena, job, status);
    else job.signal();
  } catch (e) {
    if (!failed) error = e;
    failed = true;
  }
  if (failed) throw error;
}

/** Signals `f` with `errno` unless already signaled, under its lock. True when this call signaled it. */
export function signalErrorAt(arena: Arena, f: Fence, errno: number): boolean {
  const fw = f.fw;
  fenceLock(arena, fw);
  let signaled = false;
  try {
    if (!isSignaledFlag(arena.i32, fw)) {
      f.setError(errno);
      f.signalLocked();
      signaled = true;
    }
  } finally {
    fenceUnlock(arena, fw);
  }
  return signaled;
}

/** ops.release of a job fence: the blocks it still owns. */
function releaseJobBlocks(arena: Arena, jw: number): void {
  const i32 = arena.i32;
  for (const f of [L.J_INPUT, L.J_RESULT]) {
    const w = i32[jw + f];
    i32[jw + f] = 0;
    drop(arena, w);
  }
  const depsW = i32[jw + J_DEPS];
  if (depsW !== 0) {
    // Only a job that was never finished still has these (its creator died mid-submit).
    i32[jw + J_DEPS] = 0;
    arena.freeBlock(depsW - BLOCK_HEADER_WORDS);
  }
}

/* ───────────── results and inputs ───────────── */

/**
 * Decodes the result stored in job `jw`. Returns `{ thrown, value }`: `thrown` when the task threw
 * (value is what it threw). Threads: any attached thread holding a reference, once it signaled.
 */
export function jobResult(arena: Arena, jw: number): { thrown: boolean; value: unknown } {
  const i32 = arena.i32;
  const kind = i32[jw + L.J_RESULT_KIND];
  return { thrown: (kind & L.CODEC_THROWN) !== 0, value: load(arena, kind & ~L.CODEC_THROWN, i32[jw + L.J_RESULT], i32[jw + L.J_RESULT_LEN]) };
}

/** The decoded envelope of job `jw`. */
export function jobEnvelope(arena: Arena, jw: number): unknown {
  const i32 = arena.i32;
  return load(arena, i32[jw + L.J_INPUT_KIND], i32[jw + L.J_INPUT], i32[jw + L.J_INPUT_LEN]);
}

/** Payload word indices of job `jw`'s dependencies, in order (valid while it runs). */
export function jobDeps(arena: Arena, jw: number): number[] {
  const i32 = arena.i32;
  const depsW = i32[jw + J_DEPS];
  const out: number[] = [];
  for (let d = 0; d < i32[jw + J_NDEPS]; d++) out.push(i32[depsW + d * L.DEP_WORDS + L.DEP_FW]);
  return out;
}

/* ───────────── pull loops run jobs ───────────── */

/**
 * QUEUED → RUNNING for a job a pull loop took; records it in the thread's ledger (a reaper finishes
 * it with -ENODEV if the thread dies) and puts the queue's reference. Finish it with {@link finishRun}. Returns false when the job
 * was cancelled while queued (nothing to run), or when no ledger room could be had (it is then
 * finished with -ENOMEM).
 */
export function startJob(arena: Arena, jw: number): boolean {
  const i32 = arena.i32;
  try {
    ledgerReserve(arena); // room first: after the transition the record is plain writes
  } catch {
    // No memory for the record: the job cannot be run safely; it ends with the error instead.
    cancelJob(arena, jw, Errno.ENOMEM);
    putFence(arena, jw);
    return false;
  }
  const ok = Atomics.compareExchange(i32, jw + J_STATE, JS_QUEUED, JS_RUNNING) === JS_QUEUED;
  if (ok) {
    // The scheduler's reference is now this thread's to put (FENCE_REF), and the job is its to
    // finish (JOB, newer: a reaper finishes the job before it puts the reference).
    ledgerAdd(arena, LGK_FENCE_REF, jw);
    try {
      ledgerAdd(arena, LGK_JOB, jw);
    } catch {
      finishRunUnrecorded(arena, jw);
      putFence(arena, jw);
      return false;
    }
  }
  putFence(arena, jw); // the queue's (the scheduler's keeps a running job alive)
  return ok;
}

/** A started job whose ledger record could not be written: it ends with -ENOMEM, not run. */
function finishRunUnrecorded(arena: Arena, jw: number): void {
  finishSteps(arena, jw, Errno.ENOMEM, null, false, false);
  putTracked(fenceView(arena, jw));
}

/** The error a dependency left on job `jw` (0 none): it is then finished with it, not run. */
export function depError(arena: Arena, jw: number): number {
  return arena.i32[jw + J_DEP_ERROR];
}

/** True once the job's abort word says aborted. */
export function isAborted(arena: Arena, jw: number): boolean {
  return Atomics.load(arena.i32, jw + J_ABORT) === L.AB_ABORTED;
}

/* ───────────── dead workers ───────────── */

defineLedgerKind(LGK_JOB, (arena, jw, gen) => {
  // The dead thread was running or finishing it: the rest of the steps run here, and a fence not
  // yet signaled ends like a job on a GPU that was reset. The scheduler's reference is the
  // thread's FENCE_REF entry, put after this one.
  if (!arena.isLive(jw - BLOCK_HEADER_WORDS, gen)) return;
  finishSteps(arena, jw, Errno.ENODEV, null, true, false);
});

/** A view of the job fence at payload word `jw` (no reference taken). */
export function jobFence(arena: Arena, jw: number): Fence {
  return fenceView(arena, jw);
}

/** Throws EINVAL unless `f` belongs to `arena`. */
export function checkSameArena(arena: Arena, f: Fence, what: string): void {
  if (!(f instanceof Fence)) throw Errors.invalid(`${what} must be a Fence`);
  if (f.arena.buffer !== arena.buffer) throw Errors.invalid(`${what} belongs to another arena`);
}

/**
 * A job's end (the pool scheduler's shared-memory half; a job's creation and the arming of its
 * dependencies are jobs.ts): a pull loop starts it (QUEUED → RUNNING) and finishes it, a canceller
 * ends it before it started, and a reaper finishes it for a worker that died half-way. Finishing
 * stores the result, drops the dependencies, the input and the scheduler reference, and signals
 * the job's fence last. Also the accessors a running task reads (envelope, inputs, abort word).
 *
 * Threads: any attached thread; the pull loops (task.ts) in the workers, cancellers and reapers
 * anywhere. Nothing here touches piscina.
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errno, Errors } from '../errors.js';
import { fenceLock, fenceUnlock, isSignaledFlag } from '../fence/core.js';
import { adoptSignalingAt } from '../fence/signaler.js';
import { type Fence, fenceView, putFence } from '../fence/fence.js';
import { drop, load, store, type Encoded } from './codec.js';
import { defineLedgerKind, ledgerAdd, ledgerRemove, ledgerReserve } from '../fence/ledger.js';
import { LGK_FENCE_REF } from '../fence/layout.js';
import { LGK_JOB } from './layout.js';
import { putTracked } from './ledger.js';
import { schedPut } from './queue.js';

const { BLOCK_HEADER_WORDS } = A;
const { J_STATE, J_DEP_ERROR, J_SCHED, J_ABORT, J_DEPS, J_NDEPS, JS_WAITING, JS_QUEUED, JS_RUNNING, JS_DONE, JS_CANCELED } = L;

/* ───────────── cancel and finish ───────────── */

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
  const n = depCount(arena, jw);
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

/**
 * The number of dependencies of job `jw`, checked: the count and the list's word are read from
 * shared memory and bound the walks over the list, so a count its block cannot hold, or a list
 * word naming no live block, throws ENOTRECOVERABLE.
 */
function depCount(arena: Arena, jw: number): number {
  const i32 = arena.i32;
  const n = i32[jw + J_NDEPS];
  if (n === 0) return 0;
  const depsW = i32[jw + J_DEPS];
  if (!(n > 0 && isLinkedPayload(arena, depsW, A.BlockType.INTERNAL) && n * L.DEP_WORDS <= arena.payloadBytes(depsW - BLOCK_HEADER_WORDS) >>> 2))
    throw Errors.corruptArena(`job @${jw * 4} counts ${n} dependencies in a list at byte ${depsW * 4}`);
  return n;
}

/** Payload word indices of job `jw`'s dependencies, in order (valid while it runs). */
export function jobDeps(arena: Arena, jw: number): number[] {
  const i32 = arena.i32;
  const depsW = i32[jw + J_DEPS];
  const out: number[] = [];
  const n = depCount(arena, jw);
  for (let d = 0; d < n; d++) out.push(i32[depsW + d * L.DEP_WORDS + L.DEP_FW]);
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
    // The hand-over of the signaling (after the records: a call here would split their run): the
    // job's fence is this worker's to signal from now on, so the pool's thread dying does not
    // orphan a running job; if this worker dies, its LGK_JOB record ends the job with -ENODEV.
    adoptSignalingAt(arena, jw);
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

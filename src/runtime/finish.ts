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
import { isSignaledFlag } from '../fence/core.js';
import { fenceLock, fenceUnlock } from '../fence/lock.js';
import { adoptSignalingAt } from '../fence/signaler.js';
import { removeCallbackNode } from '../fence/signal.js';
import { type Fence, fenceView, putFence } from '../fence/fence.js';
import { load, loadResult, store, type Encoded } from './codec.js';
import { freeInFlight, ledgerRemove } from '../fence/ledger.js';
import { defineLedgerKind } from '../fence/ledgerreap.js';
import { ledgerExchangeRecord } from '../fence/ledgerexchange.js';
import { dropRef, pushRelease } from '../fence/drop.js';
import { putFenceAt, releaseFenceAt } from '../fence/release.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import { LGK_FENCE_REF } from '../fence/layout.js';
import { LGK_JOB } from './layout.js';
import { requeue, schedPut } from './queue.js';
import './queuereap.js'; // the dead pull loops' counts: reaped before their taken job (below)

const { BLOCK_HEADER_WORDS } = A;
const { J_STATE, J_DEP_ERROR, J_SCHED, J_ABORT, J_DEPS, J_NDEPS, JS_WAITING, JS_QUEUED, JS_RUNNING, JS_DONE, JS_CANCELED } = L;

/* ───────────── cancel and finish ───────────── */

/**
 * Cancels a job that has not started (WAITING or QUEUED): its fence is signaled with `errno` and it
 * never runs. Threads: any attached thread holding a reference on it. Returns false when it had
 * already started or finished.
 */
export function cancelJob(arena: Arena, jw: number, errno: number): boolean {
  if (!toCanceled(arena, jw, false)) return false;
  finishJob(arena, jw, errno, null, true);
  return true;
}

/**
 * Cancels job `jw`, which the calling thread took off its (destroyed) queue with the take recorded
 * (queue.ts takeQueued: T_PULL_TAKEN, one reference — the queue's), then puts the queue's reference.
 * The cancel's transition counts the scheduler's reference into T_PULL_TAKEN_REFS in its run, and
 * each put counts one off in the drop's run (putTaken), so a thread terminated anywhere in here
 * leaves the DISPATCH reaper below exactly the job to finish and the references to put. Returns
 * true when it cancelled the job (false: cancelled meanwhile by another thread).
 */
export function cancelTaken(arena: Arena, jw: number, errno: number): boolean {
  const cancelled = toCanceled(arena, jw, true);
  try {
    if (cancelled) {
      try {
        finishSteps(arena, jw, errno, null, true, false);
      } finally {
        putTaken(arena, jw); // the scheduler's
      }
    }
  } finally {
    putTaken(arena, jw); // the queue's
  }
  return cancelled;
}

/**
 * WAITING or QUEUED → CANCELED; false when the job had started or finished. `taken`: the job is
 * the calling thread's recorded take, and the scheduler's reference becomes the thread's too, in
 * the transition's run (T_PULL_TAKEN_REFS 2).
 */
function toCanceled(arena: Arena, jw: number, taken: boolean): boolean {
  const i32 = arena.i32;
  const refs = arena.slotBase + L.T_PULL_TAKEN_REFS;
  for (;;) {
    const s = Atomics.load(i32, jw + J_STATE);
    if (s !== JS_WAITING && s !== JS_QUEUED) return false;
    if (Atomics.compareExchange(i32, jw + J_STATE, s, JS_CANCELED) === s) {
      if (taken) i32[refs] = 2;
      return true;
    }
  }
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
 * since the start — is put through that record (Fence.put), so a thread terminated anywhere in here leaves its
 * reaper exactly what is left to do. `abortWaiter`: the task waits on its abort word (ctx.signal).
 */
export function finishRun(arena: Arena, jw: number, status: number, result: Encoded | null, early: boolean, abortWaiter: boolean): void {
  const job = fenceView(arena, jw);
  try {
    finishSteps(arena, jw, status, result, early, abortWaiter);
  } finally {
    ledgerRemove(arena, LGK_JOB, jw, arena.generationAt(jw - BLOCK_HEADER_WORDS));
    job.put();
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
      rw = store(arena, result, jw + L.J_RESULT); // recorded in the allocation's run
    } catch {
      if (status > 0) status = Errno.ENOMEM; // the result did not fit: the job failed after all
    }
    i32[jw + L.J_RESULT_LEN] = rw === 0 ? 0 : result.length;
    i32[jw + L.J_RESULT_KIND] = rw === 0 ? 0 : result.kind;
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
      if (early && i32[e + L.DEP_NODE] !== 0) removeDepCallback(arena, jw, e);
      putFenceAt(arena, dfw, e + L.DEP_FW);
    } catch (err) {
      if (!failed) error = err;
      failed = true;
    }
  }
  // Each block and reference goes with its record cleared in the same run (freeInFlight,
  // putFenceAt, schedPut's `at`): a reaper running these steps again for a thread terminated
  // among them neither leaks nor drops anything twice.
  i32[jw + J_NDEPS] = 0;
  freeInFlight(arena, jw + J_DEPS);
  freeInFlight(arena, jw + L.J_INPUT);
  const sw = i32[jw + J_SCHED];
  if (sw !== 0) schedPut(arena, sw, jw + J_SCHED);
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

/**
 * Removes the callback still armed on dependency entry `e` of job `jw`, which ends early, and puts
 * the job reference it held when it was still pending (it will then never run). DEP_REMOVED says
 * so from the unlink's run (before the node's free, under the dependency's lock), and DEP_NODE is
 * cleared in the put's run (putFenceAt), so a reaper running this again for a thread terminated in
 * between finds the reference still to put — and the node, if the kill landed at its free, still to
 * free (unlinked: nobody else reaches it). A node that ran (the dependency signaled first) was never
 * marked: its handler has the reference.
 */
function removeDepCallback(arena: Arena, jw: number, e: number): void {
  const i32 = arena.i32;
  const nw = i32[e + L.DEP_NODE];
  const gen = i32[e + L.DEP_NODE_GEN];
  if (i32[e + L.DEP_REMOVED] === 0) {
    const dfw = i32[e + L.DEP_FW];
    // A signaled dependency's list is detached (or about to be, by its signaler or that one's
    // reaper): the node runs, nothing to remove — and its lock is not taken, since the job may be
    // ending inside that very signal (a job's cancel signals it under its lock, and its dependents'
    // callbacks may cancel them there: the reaper of a cancel finishes it so).
    if (!isSignaledFlag(i32, dfw)) removeCallbackNode(arena, dfw, { fence: fenceView(arena, dfw), node: nw, generation: gen }, e + L.DEP_REMOVED);
  } else if (arena.isLive(nw - BLOCK_HEADER_WORDS, gen)) {
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
  }
  if (i32[e + L.DEP_REMOVED] !== 0) putFenceAt(arena, jw, e + L.DEP_NODE);
  else i32[e + L.DEP_NODE] = 0;
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
  return loadResult(arena, i32[jw + L.J_RESULT_KIND], i32[jw + L.J_RESULT], i32[jw + L.J_RESULT_LEN]);
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
  const n = arena.i32[jw + J_NDEPS];
  if (n === 0) return 0;
  if (!depListSound(arena, jw)) throw Errors.corruptArena(`job @${jw * 4} counts ${n} dependencies in a list at byte ${arena.i32[jw + J_DEPS] * 4}`);
  return n;
}

/** True when job `jw`'s dependency count is > 0 and its list (J_DEPS) is a live block that holds that many. */
export function depListSound(arena: Arena, jw: number): boolean {
  const n = arena.i32[jw + J_NDEPS];
  const depsW = arena.i32[jw + J_DEPS];
  return n > 0 && isLinkedPayload(arena, depsW, A.BlockType.INTERNAL) && n * L.DEP_WORDS <= arena.payloadBytes(depsW - BLOCK_HEADER_WORDS) >>> 2;
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
 * QUEUED → RUNNING for the job the calling pull loop just took (queue.ts takeOrPark, which left it
 * in the thread slot's T_PULL_TAKEN with the queue's reference). In the transition's run the thread
 * records in its ledger the scheduler's reference and the queue's (both its own to put now) and the
 * job (newest: a reaper finishes the job before it puts the references), and clears the taken-job
 * word; then the queue's reference is put. Finish the job with {@link finishRun}. Returns false when
 * the job was cancelled while queued (nothing to run), or when the ledger had no room (the job is
 * then finished with -ENOMEM). A thread terminated anywhere in here leaves the DISPATCH reaper below
 * the job to put back in the queue, to finish, or its references to put.
 */
export function startJob(arena: Arena, jw: number): boolean {
  const kinds = LGK_FENCE_REF | (LGK_FENCE_REF << 6) | (LGK_JOB << 12);
  let started: boolean;
  try {
    started = ledgerExchangeRecord(arena, jw + J_STATE, JS_QUEUED, JS_RUNNING, jw, kinds, arena.slotBase + L.T_PULL_TAKEN_REFS, 0);
  } catch {
    return startUnrecorded(arena, jw);
  }
  if (!started) {
    putTaken(arena, jw); // cancelled while queued: the queue's reference
    return false;
  }
  // The hand-over of the signaling: the job's fence is this worker's to signal from now on, so the
  // pool's thread dying does not orphan a running job; if this worker dies, its LGK_JOB record ends
  // the job with -ENODEV.
  adoptSignalingAt(arena, jw);
  fenceView(arena, jw).put(); // the queue's, tracked (the scheduler's keeps a running job alive)
  return true;
}

/**
 * A taken job with no ledger room for its records: it cannot be run safely, and ends with -ENOMEM
 * instead. The thread holds both references outside the ledger meanwhile (T_PULL_TAKEN_REFS 2, set
 * in the transition's run: the reaper then finishes the job and puts them), one fewer after each put.
 */
function startUnrecorded(arena: Arena, jw: number): false {
  const i32 = arena.i32;
  if (Atomics.compareExchange(i32, jw + J_STATE, JS_QUEUED, JS_RUNNING) === JS_QUEUED) {
    i32[arena.slotBase + L.T_PULL_TAKEN_REFS] = 2;
    finishSteps(arena, jw, Errno.ENOMEM, null, false, false);
    putTaken(arena, jw);
  }
  putTaken(arena, jw);
  return false;
}

/**
 * Puts one of the references the calling thread holds on its taken job outside the ledger, counting
 * it off T_PULL_TAKEN_REFS in the drop's run (see src/fence/drop.ts): the reaper never puts it twice.
 */
function putTaken(arena: Arena, jw: number): void {
  const at = arena.slotBase + L.T_PULL_TAKEN_REFS;
  const d = pushRelease(arena, jw);
  if (dropRef(arena, jw, d, at, arena.i32[at] - 1) === 1) releaseFenceAt(arena, jw, d);
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

/**
 * Reap hook: the job a dead thread's pull loop had taken and not recorded (see startJob). Not
 * started yet, it goes back to the head of its queue — it never ran — or, the pool destroyed, is
 * cancelled. Started without records (the -ENOMEM path), it is finished with -ENODEV like a job
 * whose worker died running it. Then the references the thread still held on it are put.
 */
onReap(ReapStage.DISPATCH, (arena, slot) => {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const jw = i32[b + L.T_PULL_TAKEN];
  const refs = i32[b + L.T_PULL_TAKEN_REFS];
  if (jw === 0 || slot === arena.slot) return;
  i32[b + L.T_PULL_TAKEN] = 0;
  i32[b + L.T_PULL_TAKEN_REFS] = 0;
  if (refs <= 0 || refs > 2 || !arena.isLive(jw - BLOCK_HEADER_WORDS, i32[b + L.T_PULL_TAKEN_GEN])) return;
  if (refs === 1 && Atomics.load(i32, jw + J_STATE) === JS_QUEUED) {
    const sw = i32[jw + J_SCHED];
    if (sw !== 0 && !requeue(arena, sw, jw)) return; // the queue's reference goes back with it
    cancelJob(arena, jw, Errno.ECANCELED); // the pool is destroyed: as its drainQueue would
  }
  if (refs === 2) finishSteps(arena, jw, deadEnd(arena, jw), null, true, false);
  putFence(arena, jw);
  if (refs === 2) putFence(arena, jw);
});

defineLedgerKind(LGK_JOB, (arena, jw, gen) => {
  // The dead thread was running or finishing it: the rest of the steps run here, and a fence not
  // yet signaled ends like a job on a GPU that was reset. The scheduler's reference is the
  // thread's FENCE_REF entry, put after this one.
  if (!arena.isLive(jw - BLOCK_HEADER_WORDS, gen)) return;
  finishSteps(arena, jw, deadEnd(arena, jw), null, true, false);
});

/**
 * The status a reaper ends job `jw` with: the error of its failed dependency when it has one —
 * the loop was only finishing it with that error, its task never ran, and every descendant of the
 * failed task ends with that task's error — else -ENODEV (its worker died running it).
 */
function deadEnd(arena: Arena, jw: number): number {
  const err = depError(arena, jw);
  if (Atomics.load(arena.i32, jw + J_STATE) === JS_CANCELED) return Errno.ECANCELED; // a dead drainQueue's cancel (cancelTaken)
  return err < 0 ? err : Errno.ENODEV;
}

/** A view of the job fence at payload word `jw` (no reference taken). */
export function jobFence(arena: Arena, jw: number): Fence {
  return fenceView(arena, jw);
}

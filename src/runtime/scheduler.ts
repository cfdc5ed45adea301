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
 * The main-thread half (pools, kicks, abort signals) is in piscina.ts; this file never touches
 * piscina.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errno, Errors } from '../errors.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { defineSharedCallback } from '../fence/callbacks.js';
import { contextAlloc, fenceAlloc, fenceGet, fenceLock, fenceUnlock, isSignaledFlag } from '../fence/core.js';
import { Fence, fenceView, putFence } from '../fence/fence.js';
import { defineFenceOps } from '../fence/ops.js';
import { drop, load, store, type Encoded } from './codec.js';
import { defineLedgerKind, ledgerAdd, ledgerRemove, ledgerReserve, LedgerKind, putTracked } from './ledger.js';

const { BLOCK_HEADER_WORDS, BLOCK_HEADER_BYTES } = A;
const { J_STATE, J_PENDING, J_DEP_ERROR, J_NEXT, J_SCHED, J_ABORT, J_DEPS, J_NDEPS, JS_WAITING, JS_QUEUED, JS_RUNNING, JS_DONE, JS_CANCELED } = L;
const { S_LOCK, S_HEAD, S_TAIL, S_QUEUED, S_PULLERS, S_LOOKING, S_SPINNING, S_BELL, S_WORK, S_FLAGS, S_REFS, S_STARTED } = L;

/** Block size of a job: the fence and the job's fields, header included. */
const JOB_BLOCK = BLOCK_HEADER_BYTES + L.JOB_WORDS * 4;
const SCHED_BLOCK = BLOCK_HEADER_BYTES + L.SCHED_WORDS * 4;

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

/* ───────────── the main thread's side, seen from shared memory ───────────── */

/**
 * What the thread that owns a scheduler (the one that created its pool) does when ready jobs need
 * more pull loops: it starts them itself. Any other thread rings the scheduler's BELL instead.
 */
export interface SchedulerOwner {
  pump(): void;
}
const owners = new Map<Arena, Map<number, SchedulerOwner>>();

/**
 * Allocates a scheduler block holding one reference (the pool's) and registers `owner` as this
 * thread's. Threads: the pool's thread. Returns its payload word index. Throws ENOMEM.
 */
export function schedCreate(arena: Arena, owner: SchedulerOwner): number {
  const sw = arena.allocBlock(SCHED_BLOCK, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
  arena.i32.fill(0, sw, sw + L.SCHED_WORDS);
  arena.i32[sw + S_REFS] = 1;
  let m = owners.get(arena);
  if (!m) owners.set(arena, (m = new Map()));
  m.set(sw, owner);
  return sw;
}

/** Drops one scheduler reference; the last frees the block. Threads: any attached thread. */
export function schedPut(arena: Arena, sw: number): void {
  if (Atomics.sub(arena.i32, sw + S_REFS, 1) !== 1) return;
  owners.get(arena)?.delete(sw);
  arena.freeBlock(sw - BLOCK_HEADER_WORDS);
}

/**
 * Marks the scheduler destroyed and cancels every queued job (-ECANCELED); a job that becomes ready
 * later is cancelled by whoever releases it. Threads: the owner. Returns the number cancelled.
 */
export function schedDestroy(arena: Arena, sw: number): number {
  const i32 = arena.i32;
  lockSched(arena, sw);
  i32[sw + S_FLAGS] |= L.SF_DESTROYED;
  unlockSched(arena, sw);
  owners.get(arena)?.delete(sw);
  Atomics.add(i32, sw + S_WORK, 1);
  Atomics.notify(i32, sw + S_WORK); // sleeping pull loops leave
  Atomics.add(i32, sw + S_BELL, 1);
  Atomics.notify(i32, sw + S_BELL);
  return drainQueue(arena, sw, Errno.ECANCELED);
}

/** Counts the main thread reads to decide how many pull loops to start (hints, read without the lock). */
export function schedCounts(arena: Arena, sw: number): { queued: number; pullers: number; looking: number; started: number } {
  const i32 = arena.i32;
  return {
    queued: Atomics.load(i32, sw + S_QUEUED),
    pullers: Atomics.load(i32, sw + S_PULLERS),
    looking: Atomics.load(i32, sw + S_LOOKING),
    started: Atomics.load(i32, sw + S_STARTED),
  };
}

function lockSched(arena: Arena, sw: number): void {
  // A dead holder's word is released by the locks layer's reaper (owner died); the queue is
  // consistent at every call boundary, so taking over needs nothing more.
  acquireWord(arena, sw + S_LOCK, K.LK_FUTEX);
}
function unlockSched(arena: Arena, sw: number): void {
  releaseWord(arena, sw + S_LOCK, K.LK_FUTEX);
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
  Atomics.add(i32, sw + S_REFS, 1); // the job's, until it finishes
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

/** WAITING → QUEUED (only one caller wins) and into the ready queue. */
function makeReady(arena: Arena, jw: number): void {
  if (Atomics.compareExchange(arena.i32, jw + J_STATE, JS_WAITING, JS_QUEUED) !== JS_WAITING) return;
  push(arena, arena.i32[jw + J_SCHED], jw);
}

/** True while this thread cancels the queue of a destroyed scheduler (see push). */
let draining = false;

/**
 * Appends `jw` to the ready queue with the queue's own reference. When ready jobs outnumber the
 * pull loops looking for work, asks for another loop: the owner thread starts it, others ring BELL.
 */
function push(arena: Arena, sw: number, jw: number): void {
  const i32 = arena.i32;
  fenceGet(i32, jw);
  lockSched(arena, sw);
  i32[jw + J_NEXT] = 0;
  const tail = i32[sw + S_TAIL];
  if (tail) i32[tail + J_NEXT] = jw;
  else i32[sw + S_HEAD] = jw;
  i32[sw + S_TAIL] = jw;
  const queued = i32[sw + S_QUEUED] + 1;
  i32[sw + S_QUEUED] = queued;
  const destroyed = (i32[sw + S_FLAGS] & L.SF_DESTROYED) !== 0;
  const short = queued > i32[sw + S_LOOKING];
  // Loops spinning on HEAD take the first jobs: waking a sleeper for those would only put a third
  // thread on two busy cores. Beyond them, a sleeping loop (it counts as LOOKING) is woken.
  const wake = queued > i32[sw + S_SPINNING];
  unlockSched(arena, sw);
  if (wake) {
    Atomics.add(i32, sw + S_WORK, 1);
    Atomics.notify(i32, sw + S_WORK, 1);
  }
  if (destroyed) {
    // Nobody will take it: cancel here. A loop, not recursion: cancelling signals, which may make
    // more jobs ready, which land in this queue and in this same loop.
    if (!draining) drainQueue(arena, sw, Errno.ECANCELED);
    return;
  }
  if (!short) return;
  const owner = owners.get(arena)?.get(sw);
  if (owner) owner.pump();
  else {
    Atomics.add(i32, sw + S_BELL, 1);
    Atomics.notify(i32, sw + S_BELL);
  }
}

/** Takes the first queued job (0 when empty). Called with the scheduler lock held. */
function unlinkFirst(i32: Int32Array, sw: number): number {
  const jw = i32[sw + S_HEAD];
  if (jw === 0) return 0;
  const next = i32[jw + J_NEXT];
  i32[sw + S_HEAD] = next;
  if (next === 0) i32[sw + S_TAIL] = 0;
  i32[sw + S_QUEUED]--;
  return jw;
}

/**
 * Cancels every queued job with `errno` (a destroyed pool, or one whose workers cannot start).
 * Threads: any attached thread. Returns the number cancelled.
 */
export function drainQueue(arena: Arena, sw: number, errno: number): number {
  const i32 = arena.i32;
  draining = true;
  let n = 0;
  try {
    for (;;) {
      lockSched(arena, sw);
      const jw = unlinkFirst(i32, sw);
      unlockSched(arena, sw);
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
    ledgerRemove(arena, LedgerKind.JOB, jw, arena.generationAt(jw - BLOCK_HEADER_WORDS));
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

/* ───────────── pull loops (pool workers) ───────────── */

/**
 * Enters a pull loop for scheduler `sw` in the calling thread: counted in PULLERS and LOOKING, and
 * recorded in the thread slot so that a reaper can take it out again if the thread dies.
 */
export function enterPull(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  lockSched(arena, sw);
  i32[sw + S_PULLERS]++;
  i32[sw + S_LOOKING]++;
  i32[sw + S_STARTED] = (i32[sw + S_STARTED] + 1) | 0;
  i32[sb + L.T_PULL_SCHED] = sw;
  i32[sb + L.T_PULL_GEN] = arena.generationAt(sw - BLOCK_HEADER_WORDS);
  i32[sb + L.T_PULL_LOOPS]++;
  i32[sb + L.T_PULL_LOOKING]++;
  unlockSched(arena, sw);
}

/** What {@link takeOrPark} returns when the loop should sleep (the WORK value is in `parkedOn`). */
export const PARK = 0;
/** What {@link takeOrPark} returns when the loop must leave (the pool was destroyed); it has left. */
export const LEAVE = -1;

/**
 * Takes the next ready job for a looking pull loop (its payload word, > 0). An empty queue is
 * watched for `lingerUs`, spinning on its head (counted in SPINNING, so that pushes leave the job
 * to the spinner instead of waking a sleeper); still empty, the call returns PARK with the WORK
 * value to sleep on in `out.parkedOn`. Stopping the spin, re-checking the queue and reading WORK
 * happen under the lock that pushes take: a push either sees the spinner (and it takes the job) or
 * sees it gone and moves WORK after that read (and the sleep returns at once).
 * A destroyed scheduler makes the loop leave (LEAVE, counts updated). The loop stays counted
 * LOOKING while it spins and sleeps.
 */
export function takeOrPark(arena: Arena, sw: number, lingerUs: number, out: { parkedOn: number }): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  let end = -1;
  let spinning = false;
  for (;;) {
    lockSched(arena, sw);
    const jw = unlinkFirst(i32, sw);
    const destroyed = jw === 0 && (i32[sw + S_FLAGS] & L.SF_DESTROYED) !== 0;
    const now = jw === 0 && !destroyed ? performance.now() : 0;
    if (end < 0) end = now + lingerUs / 1000;
    const spin = jw === 0 && !destroyed && now < end;
    if (spinning !== spin) {
      const d = spin ? 1 : -1;
      i32[sw + S_SPINNING] += d;
      i32[sb + L.T_PULL_SPINNING] += d;
      spinning = spin;
    }
    if (jw !== 0) {
      i32[sw + S_LOOKING]--;
      i32[sb + L.T_PULL_LOOKING]--;
      unlockSched(arena, sw);
      return jw;
    }
    if (destroyed) {
      leaveLocked(arena, sw);
      unlockSched(arena, sw);
      return LEAVE;
    }
    if (!spin) {
      out.parkedOn = Atomics.load(i32, sw + S_WORK);
      unlockSched(arena, sw);
      return PARK;
    }
    unlockSched(arena, sw);
    // Linger: a spinning waiter catches a push in well under a microsecond, where a sleeping one
    // costs the next job a wake-up (≈13 µs, ≈120 µs if the core idled).
    while (Atomics.load(i32, sw + S_HEAD) === 0 && performance.now() < end) for (let k = 0; k < 32; k++) if (Atomics.load(i32, sw + S_HEAD) !== 0) break;
  }
}

/** Index of the scheduler's WORK word, which sleeping pull loops wait on. */
export function workIndex(sw: number): number {
  return sw + S_WORK;
}

/**
 * A pull loop that slept `idle` without work leaves (counts updated). Returns false — and the loop
 * stays — when a job was queued meanwhile.
 */
export function leaveIdle(arena: Arena, sw: number): boolean {
  const i32 = arena.i32;
  lockSched(arena, sw);
  const stay = i32[sw + S_HEAD] !== 0 && !(i32[sw + S_FLAGS] & L.SF_DESTROYED);
  if (!stay) leaveLocked(arena, sw);
  unlockSched(arena, sw);
  return !stay;
}

/** The calling thread's looking loop leaves the scheduler's counts (lock held). */
function leaveLocked(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  i32[sw + S_PULLERS]--;
  i32[sw + S_LOOKING]--;
  i32[sb + L.T_PULL_LOOKING]--;
  if (--i32[sb + L.T_PULL_LOOPS] === 0) i32[sb + L.T_PULL_SCHED] = 0;
}

/** The loop's job is over: it looks for the next (counted before the job's fence signals). */
export function lookAgain(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  lockSched(arena, sw);
  i32[sw + S_LOOKING]++;
  i32[arena.slotBase + L.T_PULL_LOOKING]++;
  unlockSched(arena, sw);
}

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
    const gen = arena.generationAt(jw - BLOCK_HEADER_WORDS);
    // The scheduler's reference is now this thread's to put (FENCE_REF), and the job is its to
    // finish (JOB, newer: a reaper finishes the job before it puts the reference).
    ledgerAdd(arena, LedgerKind.FENCE_REF, jw, gen);
    try {
      ledgerAdd(arena, LedgerKind.JOB, jw, gen);
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

/** Job state (JS_*). */
export function jobState(arena: Arena, jw: number): number {
  return Atomics.load(arena.i32, jw + J_STATE);
}

/* ───────────── dead workers ───────────── */

defineLedgerKind(LedgerKind.JOB, (arena, jw, gen) => {
  // The dead thread was running or finishing it: the rest of the steps run here, and a fence not
  // yet signaled ends like a job on a GPU that was reset. The scheduler's reference is the
  // thread's FENCE_REF entry, put after this one.
  if (!arena.isLive(jw - BLOCK_HEADER_WORDS, gen)) return;
  finishSteps(arena, jw, Errno.ENODEV, null, true, false);
});

/**
 * Reap hook: a dead thread's pull loops leave the scheduler's counts (else the main thread would
 * wait for loops that will never take a job), and the owner is asked to make up for them.
 */
onReap(ReapStage.DISPATCH, (arena, slot) => {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const sw = i32[b + L.T_PULL_SCHED];
  if (sw === 0 || slot === arena.slot) return;
  i32[b + L.T_PULL_SCHED] = 0;
  if (!arena.isLive(sw - BLOCK_HEADER_WORDS, i32[b + L.T_PULL_GEN])) return;
  lockSched(arena, sw);
  i32[sw + S_PULLERS] -= i32[b + L.T_PULL_LOOPS];
  i32[sw + S_LOOKING] -= i32[b + L.T_PULL_LOOKING];
  i32[sw + S_SPINNING] -= i32[b + L.T_PULL_SPINNING];
  unlockSched(arena, sw);
  i32[b + L.T_PULL_LOOPS] = 0;
  i32[b + L.T_PULL_LOOKING] = 0;
  i32[b + L.T_PULL_SPINNING] = 0;
  const owner = owners.get(arena)?.get(sw);
  if (owner) queueMicrotask(() => owner.pump());
  else {
    Atomics.add(i32, sw + S_BELL, 1);
    Atomics.notify(i32, sw + S_BELL);
  }
});

/** Handle of the scheduler block (posted to pool workers). */
export function schedHandle(arena: Arena, sw: number): number {
  return arena.handleOf(sw - BLOCK_HEADER_WORDS);
}

/** A view of the job fence at payload word `jw` (no reference taken). */
export function jobFence(arena: Arena, jw: number): Fence {
  return fenceView(arena, jw);
}

/** Word index of a scheduler's BELL (the owner's kick loop waits on it). */
export function bellIndex(sw: number): number {
  return sw + S_BELL;
}

/** Validates a scheduler handle posted to a worker; returns its payload word. Throws EBADF / EINVAL. */
export function schedFromHandle(arena: Arena, handle: number): number {
  return arena.resolve(handle, A.BlockType.INTERNAL, 'scheduler') + BLOCK_HEADER_WORDS;
}

/** Throws EINVAL unless `f` belongs to `arena`. */
export function checkSameArena(arena: Arena, f: Fence, what: string): void {
  if (!(f instanceof Fence)) throw Errors.invalid(`${what} must be a Fence`);
  if (f.arena.buffer !== arena.buffer) throw Errors.invalid(`${what} belongs to another arena`);
}

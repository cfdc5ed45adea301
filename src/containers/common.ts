/**
 * What the fence array and the fence chain share: the ids of their shared callbacks, handle-level
 * helpers, and the per-thread deferred-work queue that plays the kernel's `irq_work`.
 *
 * Why a deferred queue: a container's child callback runs in whichever thread signals the child,
 * and that thread may hold locks at that moment (`signalLocked`, a sw_sync timeline signaling its
 * points under the timeline lock). The kernel never takes a container's locks from a fence
 * callback; it queues an irq_work. Here the work runs at once when the signaling thread holds no
 * lock, and otherwise as soon as it does not: at the next container entry point of this thread
 * (see {@link flushDeferred}) or in a microtask, whichever comes first.
 */
import { onNesting } from '../locks/lockdep.js';
import { heldLockCount } from '../locks/lockword.js';
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import { linkedPayload } from '../arena/handles.js';
import * as L from './layout.js';
import { listWork, runTaken, takeWork, workOf, type DeferredWork } from './work.js';
import * as FL from '../fence/layout.js';
import { attempt, describeValue, Errors, NO_ERROR, rethrowFirst, warn } from '../errors.js';
import { isSignaledFlag } from '../fence/core.js';
import { Fence, fenceView } from '../fence/fence.js';
import { isFenceView } from '../fence/fencebase.js';
import { defineFenceOps, findOps, markReleaseResumable, type FenceOps } from '../fence/ops.js';
import { ledgerAdd, ledgerFind, ledgerPutRef } from '../fence/ledger.js';
import { holdsFenceLock } from '../fence/held.js';
import { putFence, putFenceAt } from '../fence/release.js';

/** Shared-callback ids (1–15 belong to containers, see src/fence/callbacks.ts). */
export const CB_ARRAY_CHILD = 1;
export const CB_CHAIN_LINK = 2;

/**
 * Validates a Fence argument of a container function: a live fence of `arena`'s buffer. Returns its
 * payload word index. Throws EINVAL (not a Fence, other arena) or EBADF (released).
 */
export function fenceArg(arena: Arena, f: unknown, what: string): number {
  if (!isFenceView(f)) throw Errors.invalid(`${what} must be a Fence, got ${describeValue(f)}`);
  if (f.arena.buffer !== arena.buffer) throw Errors.invalid(`${what} belongs to another arena`);
  return arena.resolve(f.handle, A.BlockType.FENCE, what) + A.BLOCK_HEADER_WORDS;
}

/**
 * {@link fenceArg} of a fence given without its arena (the entries that take one fence): checked
 * before its arena is read, since reading `f.arena` of a revoked Proxy throws a TypeError.
 */
export function ownFenceArg(f: unknown, what: string): number {
  if (!isFenceView(f)) throw Errors.invalid(`${what} must be a Fence, got ${describeValue(f)}`);
  return fenceArg(f.arena, f, what);
}

/** What a container's ops do, at handle level (`fw`: the container's payload word). */
export interface ContainerOps {
  enableSignaling(arena: Arena, fw: number): boolean;
  signaled(arena: Arena, fw: number): boolean;
  release(arena: Arena, fw: number): void;
  /** Forwards a deadline hint to the fences it stands for (kernel dma_fence_array/chain_set_deadline). */
  setDeadline(arena: Arena, fw: number, ns: bigint): void;
  /**
   * Whether fence `innerFw` is a direct part of the container at `fw` (an array's child, a link's
   * fence or predecessor), whose locks are taken nested under the container's: the lock-order
   * checker's annotation (src/locks/lockdep.ts onNesting). Asked only for a container of this kind.
   */
  contains(i32: Int32Array, fw: number, innerFw: number): boolean;
}

/** A container kind made by {@link defineContainer}. */
export interface ContainerKind {
  /** Its registered ops. */
  readonly ops: FenceOps;
  /** True when the fence at payload word `fw` is of this kind (its ops word names the kind's ops). */
  readonly is: (i32: Int32Array, fw: number) => boolean;
}

/**
 * Defines a container kind named after its kernel struct (`dma_fence_array`, …): registers its
 * ops (its driver name, an unbound timeline, and `ops` behind the view) and, for the lock-order
 * checker, its nesting test guarded by the kind test. Threads: every thread that imports the
 * container's module defines them.
 */
export function defineContainer(kernelName: string, ops: ContainerOps): ContainerKind {
  const fenceOps = defineFenceOps(`fencelab:${kernelName}`, {
    getDriverName: () => kernelName,
    getTimelineName: () => 'unbound',
    enableSignaling: (f) => ops.enableSignaling(f.arena, f.fw),
    signaled: (f) => ops.signaled(f.arena, f.fw),
    release: (f) => ops.release(f.arena, f.fw),
    setDeadline: (f, ns) => ops.setDeadline(f.arena, f.fw, ns),
  });
  // Both releases record their progress in the container's block (see putChildAt): the reaper
  // calls a release cut off by terminate() again, and it drops what the first call had not.
  markReleaseResumable(fenceOps);
  const id = fenceOps.id;
  const is = (i32: Int32Array, fw: number): boolean => i32[fw + FL.F_OPS] === id;
  onNesting((i32, outerFw, innerFw) => is(i32, outerFw) && ops.contains(i32, outerFw, innerFw));
  return { ops: fenceOps, is };
}

/**
 * Drops a container's reference on the child named by word `at` of the container's block (a step
 * for `attempt`; a word already 0 was dropped before: nothing happens), and clears the word in the
 * drop's run (putFenceAt): a thread terminated at any point leaves the reference named there, or
 * dropped (its release recorded) with the word cleared, so a container release called again by
 * the reaper drops each child exactly once.
 * Locking: when the calling thread holds the child's lock, a drop that is not the last is done at
 * once; the last is deferred until the thread holds no lock (the reference goes to the deferred
 * queue, recorded in the thread's ledger in the run that clears the word), so a container's
 * release always completes, and a thread terminated before the drop runs leaves it to its reaper.
 */
export function putChildAt(arena: Arena, at: number): void {
  const i32 = arena.i32;
  if (i32[at] === 0) return;
  // The child word was read from the container's block: checked, so a corrupted one is an
  // ENOTRECOVERABLE instead of a put at a random place.
  const cw = linkedPayload(arena, i32[at], A.BlockType.FENCE, 'container child');
  // The container's block is being freed, so this drop cannot be refused: if it were the child's
  // last reference, putFence would refuse it (EDEADLK, the release would signal and free under the
  // lock) and the reference would be lost with the container. Whether it is the last only a race
  // with other threads' puts decides: the drop is a compare-exchange that never takes the last.
  if (!holdsFenceLock(arena, cw)) return putFenceAt(arena, cw, at);
  // Not the last reference: dropped now, as a put under the lock would (no release follows).
  if (dropNotLast(i32, cw, at)) return;
  // The last: the deferred queue is this thread's memory, so the reference is recorded in the
  // thread's ledger first (its LEDGER reap stage puts what a dead thread still records), and the
  // container's word cleared right after the entry's last plain write (no call between: one run).
  // Without room for the entry (ENOMEM) it is deferred unrecorded: a terminate() before it runs
  // loses it (a leak, never a second drop; see "Known limits" in docs/architecture.md).
  const kind = recordDrop(arena, cw);
  i32[at] = 0;
  enqueue(arena, cw, dropOnly, kind);
}

/**
 * Drops a reference on fence `fw` that is not its last, clearing word `at` in the drop's run (the
 * compare-exchange, then a plain write). Returns false, dropping nothing, when it would be the last.
 * Throws EBADF on a fence without references (nothing changes).
 */
function dropNotLast(i32: Int32Array, fw: number, at: number): boolean {
  for (;;) {
    const old = Atomics.load(i32, fw + FL.F_REFCOUNT);
    if (old === 1) return false;
    if (old < 1) throw Errors.badHandle('fence', fw, `put on a fence with refcount ${old}`);
    // Another thread's get or put in between fails the exchange: read again.
    if (Atomics.compareExchange(i32, fw + FL.F_REFCOUNT, old, old - 1) === old) {
      i32[at] = 0;
      return true;
    }
  }
}

/** Deferred work of a child drop: nothing before the queue puts the reference. */
function dropOnly(): void {}

/** True when the calling thread holds any lock word (fence locks, SpinLocks, chain prev locks). */
export function holdsLocks(arena: Arena): boolean {
  return heldLockCount(arena) > 0;
}

/**
 * Kernel dma_fence_is_signaled on a payload word: the SIGNALED flag, else the ops' `signaled`
 * poll (which signals the fence when it says so). Allocates a view only for ops that poll.
 * Under a lock of the calling thread only the flag is read: the poll may signal (taking a lock
 * the thread may hold) or, for a chain, collect links (dropping references, perhaps the last one
 * of a fence whose lock the thread holds), and either would be refused half-way. A poll may
 * always answer false for a fence that has not set its flag yet.
 */
export function isSignaledFw(arena: Arena, fw: number): boolean {
  const i32 = arena.i32;
  if (isSignaledFlag(i32, fw)) return true;
  if (holdsLocks(arena) || !findOps(i32[fw + FL.F_OPS])?.table.signaled) return false;
  return fenceView(arena, fw).isSignaled();
}

/**
 * Records the child reference on `fw` the deferred queue is about to hold in the thread's ledger
 * (the entry's last plain write ends the call: the caller's plain writes right after are in its
 * run). Returns LGK_FENCE_REF, or 0 when the ledger has no room (ENOMEM): see putChildAt.
 */
function recordDrop(arena: Arena, fw: number): number {
  try {
    ledgerAdd(arena, FL.LGK_FENCE_REF, fw);
    return FL.LGK_FENCE_REF;
  } catch {
    return 0;
  }
}

/** A queue entry's `kind` for work recorded in the thread's container work list (see listWork). */
const LISTED = -1;

const qArena: Arena[] = [];
const qFw: number[] = [];
const qFn: DeferredWork[] = [];
const qKind: number[] = []; // LISTED, the ledger kind the queued reference is recorded as, or 0
let qHead = 0;
let running = false;
let scheduled = false;

/**
 * Runs container `fw`'s work (see {@link defineContainerWork}) now when the calling thread holds
 * no lock and is not already running deferred container work; otherwise queues it (it then runs
 * after the current work, or once the thread's locks are dropped) in the thread's container work
 * list. The caller hands over one reference on `fw`, which is put after the work.
 * `at` (0: none): a word naming that reference (a signal record's SIG_SHARED, see
 * defineSharedCallback), cleared in the run that lets go of it — the put's (putFenceAt), or the
 * list's (see {@link defer}).
 * Threads: any; the work runs in the calling thread either way.
 */
export function runOrDefer(arena: Arena, fw: number, at = 0): void {
  if (running || holdsLocks(arena)) {
    defer(arena, fw, at);
    return;
  }
  running = true;
  try {
    runThenPut(arena, fw, workOf(arena, fw), 0, at);
    drainQueue();
  } finally {
    running = false;
  }
}

/**
 * Queues container `fw`'s work unconditionally (it runs after the current container work, at the
 * next {@link flushDeferred}, or in a microtask), recorded in the thread's container work list,
 * which needs no memory: nothing to refuse, nothing lost. The caller hands over one reference on
 * `fw`; `at` (0: none) names it and is cleared in the run that links the item. When `fw`'s work
 * is queued already, that queued run (later than this call) does it: the reference is put here
 * instead (never the last: the queued work holds one).
 */
export function defer(arena: Arena, fw: number, at = 0): void {
  const fn = workOf(arena, fw);
  if (listWork(arena, fw, at)) enqueue(arena, fw, fn, LISTED);
  else if (at !== 0) putFenceAt(arena, fw, at);
  else putFence(arena, fw);
}

/** Queues work whose reference is recorded as `kind` already (LISTED, a ledger kind, or 0: not recorded). */
function enqueue(arena: Arena, fw: number, fn: DeferredWork, kind: number): void {
  qArena.push(arena);
  qFw.push(fw);
  qFn.push(fn);
  qKind.push(kind);
  if (!running && !scheduled) {
    scheduled = true;
    queueMicrotask(drainLater);
  }
}

/**
 * Runs `fn(arena, fw)`, then puts the reference the work held: a listed one (the first item of
 * the thread's work list: the queue runs in the list's order) taken into WORK_RUN and put from
 * there; a ledger-recorded one (`kind`) with ledgerPutRef, which forgets the entry in the drop's
 * run; one named by word `at` (see {@link runOrDefer}) with putFenceAt, which clears it in that
 * run. A listed item or a ledger entry no longer there means a reaper finished the work (the
 * thread detached in between): nothing runs.
 */
function runThenPut(arena: Arena, fw: number, fn: DeferredWork, kind: number, at = 0): void {
  if (kind === LISTED) {
    if (arena.i32[arena.slotBase + L.T_WORK_HEAD] !== fw) return;
    takeWork(arena, arena.slotBase);
    return runTaken(arena, arena.slotBase);
  }
  const gen = arena.i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  if (kind !== 0 && ledgerFind(arena, kind, fw, gen) < 0) return;
  try {
    fn(arena, fw);
  } finally {
    if (kind !== 0) ledgerPutRef(arena, fw, gen, undefined, kind);
    else if (at !== 0) putFenceAt(arena, fw, at);
    else putFence(arena, fw);
  }
}

/** Runs queued work when the calling thread holds no lock. Returns how many items ran. */
export function flushDeferred(arena: Arena): number {
  if (qHead === qFw.length || running || holdsLocks(arena)) return 0;
  running = true;
  try {
    return drainQueue();
  } finally {
    running = false;
  }
}

/** Items waiting in this thread's deferred queue (tests, diagnostics). */
export function deferredCount(): number {
  return qFw.length - qHead;
}

/** Runs queued item `i` (a step for `attempt`). */
function runQueued(i: number): void {
  runThenPut(qArena[i], qFw[i], qFn[i], qKind[i]);
}

function drainQueue(): number {
  let n = 0;
  let first: unknown = NO_ERROR;
  while (qHead < qFw.length) {
    first = attempt(runQueued, qHead++, 0, 0, first);
    n++;
  }
  qArena.length = qFw.length = qFn.length = qKind.length = 0;
  qHead = 0;
  rethrowFirst(first);
  return n;
}

function drainLater(): void {
  scheduled = false;
  if (qHead === qFw.length) return;
  if (running || holdsLocks(qArena[qHead])) {
    // Still under a lock (held across an await): try again after the event loop turns.
    scheduled = true;
    setImmediate(drainLater);
    return;
  }
  running = true;
  try {
    drainQueue();
  } catch (e) {
    // Nobody is on the stack to receive it: report instead of crashing the thread.
    warn(e, 'FENCELAB_CONTAINER_CALLBACK');
  } finally {
    running = false;
  }
}

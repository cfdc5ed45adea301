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
import * as FL from '../fence/layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { isSignaledFlag } from '../fence/core.js';
import { Fence, fenceView } from '../fence/fence.js';
import { defineFenceOps, findOps, type FenceOps } from '../fence/ops.js';
import { ledgerAdd, ledgerPutRef } from '../fence/ledger.js';
import { holdsFenceLock, putFence } from '../fence/release.js';

/** Shared-callback ids (1–15 belong to containers, see src/fence/callbacks.ts). */
export const CB_ARRAY_CHILD = 1;
export const CB_CHAIN_LINK = 2;

/**
 * Validates a Fence argument of a container function: a live fence of `arena`'s buffer. Returns its
 * payload word index. Throws EINVAL (not a Fence, other arena) or EBADF (released).
 */
export function fenceArg(arena: Arena, f: unknown, what: string): number {
  if (!(f instanceof Fence)) throw Errors.invalid(`${what} must be a Fence`);
  if (f.arena.buffer !== arena.buffer) throw Errors.invalid(`${what} belongs to another arena`);
  return arena.resolve(f.handle, A.BlockType.FENCE, what) + A.BLOCK_HEADER_WORDS;
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
  const id = fenceOps.id;
  const is = (i32: Int32Array, fw: number): boolean => i32[fw + FL.F_OPS] === id;
  onNesting((i32, outerFw, innerFw) => is(i32, outerFw) && ops.contains(i32, outerFw, innerFw));
  return { ops: fenceOps, is };
}

/**
 * Drops a container's reference on a child (putFence without a view, as a step for `attempt`).
 * Locking: when the calling thread holds the child's lock, the drop is deferred until it holds no
 * lock (the reference goes to the deferred queue, recorded in the thread's ledger), so a
 * container's release always completes, and a thread terminated before the drop runs leaves it to
 * its reaper.
 */
export function putChild(arena: Arena, fw: number): void {
  // The child word was read from the container's block: checked, so a corrupted one is an
  // ENOTRECOVERABLE instead of a put at a random place.
  const cw = linkedPayload(arena, fw, A.BlockType.FENCE, 'container child');
  // The container's block is being freed, so this drop cannot be refused: if it were the child's
  // last reference, putFence would refuse it (EDEADLK, the release would signal and free under the
  // lock) and the reference would be lost with the container. Whether it is the last only a race
  // with other threads' puts decides, so every drop under the child's lock is deferred.
  if (!holdsFenceLock(arena, cw)) return putFence(arena, cw);
  // The deferred queue is this thread's memory: the reference is recorded in the thread's ledger
  // first (its LEDGER reap stage puts what a dead thread still records), so a thread terminated
  // before the drop runs does not lose it. Without room for the entry (ENOMEM) it is deferred
  // unrecorded, as before.
  let recorded = true;
  try {
    ledgerAdd(arena, FL.LGK_FENCE_REF, cw);
  } catch {
    recorded = false;
  }
  defer(arena, cw, recorded ? putDeferredRecorded : putDeferred);
}

/** Deferred work: the reference a container's release handed over (see {@link putChild}). */
function putDeferred(arena: Arena, fw: number): void {
  putFence(arena, fw);
}

/**
 * {@link putDeferred} of a reference recorded in the ledger: dropped and forgotten in one run
 * (ledgerPutRef). No entry left means the ledger's own reaper dropped it (the thread detached).
 */
function putDeferredRecorded(arena: Arena, fw: number): void {
  ledgerPutRef(arena, fw, arena.i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK);
}

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

/** Deferred work: `fn(arena, fw)` consumes the reference the queue holds on `fw`. */
export type DeferredWork = (arena: Arena, fw: number) => void;

const qArena: Arena[] = [];
const qFw: number[] = [];
const qFn: DeferredWork[] = [];
let qHead = 0;
let running = false;
let scheduled = false;

/**
 * Runs `fn(arena, fw)` now when the calling thread holds no lock and is not already running
 * deferred container work; otherwise queues it (it then runs after the current work, or once the
 * thread's locks are dropped). The caller hands over one reference on `fw`, which `fn` drops.
 * Threads: any; the work runs in the calling thread either way.
 */
export function runOrDefer(arena: Arena, fw: number, fn: DeferredWork): void {
  if (running || holdsLocks(arena)) {
    defer(arena, fw, fn);
    return;
  }
  running = true;
  try {
    fn(arena, fw);
    drainQueue();
  } finally {
    running = false;
  }
}

/**
 * Queues `fn(arena, fw)` unconditionally (it runs after the current container work, at the next
 * {@link flushDeferred}, or in a microtask). The caller hands over one reference on `fw`.
 */
export function defer(arena: Arena, fw: number, fn: DeferredWork): void {
  qArena.push(arena);
  qFw.push(fw);
  qFn.push(fn);
  if (!running && !scheduled) {
    scheduled = true;
    queueMicrotask(drainLater);
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

function drainQueue(): number {
  let n = 0;
  let first: unknown = NO_ERROR;
  while (qHead < qFw.length) {
    const arena = qArena[qHead];
    const fw = qFw[qHead];
    const fn = qFn[qHead];
    qHead++;
    n++;
    first = attempt(fn, arena, fw, 0, first);
  }
  qArena.length = qFw.length = qFn.length = 0;
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
    process.emitWarning(e instanceof Error ? e : String(e), { code: 'FENCELAB_CONTAINER_CALLBACK' });
  } finally {
    running = false;
  }
}

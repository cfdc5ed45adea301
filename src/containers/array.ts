/**
 * Fence array (kernel `dma_fence_array`): one fence standing for several, signaled when all of
 * them have (or any, with `signalOnAny`). The array block is a FENCE block with the A_* words after
 * the fence; the child list lives in a SLOTS block (one child payload word per entry). The array
 * owns one reference on every child.
 *
 * Signaling is armed lazily, like the kernel: enabling signaling (wait, addCallback, a chain
 * watching the array) adds one shared callback per child. Each callback holds an array reference
 * and runs in the thread that signals the child: it propagates the child's error (first one wins)
 * and counts A_PENDING down; the one that reaches zero signals the array.
 *
 * Lock order: child → array only. The array's lock is its own inline word (its own lock class);
 * `ops.enableSignaling` is entered with it held and drops it while it takes the children's locks,
 * so a child callback running under a child's lock (signalLocked, a sw_sync timeline) can take the
 * array's lock without an ABBA with an enabler.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { linkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst, describeValue, optionsArg, isArrayArg, isInstance } from '../errors.js';
import { defineSharedCallback } from '../fence/callbacks.js';
import { checkContextSeqno, fenceInit, fenceReserve } from '../fence/core.js';
import { fenceLock, fenceUnlock } from '../fence/lock.js';
import { holdsFenceLock } from '../fence/held.js';
import { FENCE_BLOCK } from '../fence/create.js';
import { type Fence, fenceView } from '../fence/fence.js';
import { isFenceView } from '../fence/fencebase.js';
import { freeInFlight, ledgerForgetRef } from '../fence/ledger.js';
import { putFence, putFenceAt } from '../fence/release.js';
import { clearSignalerAt } from '../fence/signaler.js';
import { isChainFw } from './chain.js';
import { CB_ARRAY_CHILD, defer, defineContainer, fenceArg, isSignaledFw, ownFenceArg, putChildAt } from './common.js';
import { defineContainerWork } from './work.js';
import { arrayChild, arrayCount, enableArray, propagateError, withArmingRecord } from './arraychildren.js';
import { setEnableRecorder } from '../fence/signal.js';
import { FenceMemory } from './memory.js';

const { A_NUM, A_PENDING, A_SLOTS, A_MODE, K_WORK, ARRAY_SIGNAL_ANY } = L;
const { F_ERROR, F_FLAGS, F_REFCOUNT, FLAG_ENABLE_SIGNAL } = FL;
const { BLOCK_HEADER_WORDS } = A;

/** Block size of an array fence: the fence plus the A_* words. */
const ARRAY_BLOCK = FENCE_BLOCK + L.ARRAY_WORDS * 4;

/** {@link FenceArray.create}'s and {@link FenceArray.init}'s options. */
export interface FenceArrayOptions {
  /** Fence context of the array (e.g. from Fence.contextAlloc). */
  context: number;
  /** Sequence number (32-bit; larger values make a 64-bit fence). */
  seqno: number;
  /** Signal when any child signals instead of all of them (kernel `signal_on_any`). */
  signalOnAny?: boolean;
}

/** The array kind (see defineContainer): its ops and kind test. */
const arrayKind = defineContainer('dma_fence_array', {
  enableSignaling: enableArray,
  signaled: arraySignaled,
  release: releaseArray,
  setDeadline: arraySetDeadline,
  // The lock-order checker's nesting annotation: a child's lock taken under its array's lock.
  // Only compared, never followed: the words need no check, the walk only a bound (the heap's size).
  contains: (i32, afw, cfw) => {
    const n = Math.min(i32[afw + A_NUM], i32.length);
    const sw = i32[afw + A_SLOTS];
    for (let i = 0; i < n; i++) if (i32[sw + i] === cfw) return true;
    return false;
  },
});
/** Ops of array fences (kernel `dma_fence_array_ops`); registered in every thread that imports this module. */
export const arrayOps = arrayKind.ops;
/** True when the fence at payload word `fw` is a fence array. */
export const isArrayFw = arrayKind.is;
// An array's enable is recorded from before its flag goes up (arraychildren.ts); other fences' run as they are.
setEnableRecorder((arena, fw, enable) => (isArrayFw(arena.i32, fw) ? withArmingRecord(arena, fw, enable) : enable()));

/** ops.setDeadline (kernel dma_fence_array_set_deadline): every child is asked for the deadline. */
function arraySetDeadline(arena: Arena, fw: number, ns: bigint): void {
  const n = arrayCount(arena, fw);
  for (let i = 0; i < n; i++) fenceView(arena, arrayChild(arena, fw, i)).setDeadline(ns);
}

/** Progress bit of a CB_ARRAY_CHILD handler in its signal record's SIG_SHARED: the child is counted. */
const CHILD_COUNTED = FL.SIG_STEP_1;
/** …and its count was the one that reached zero: the array's signal is this handler's to do. */
const CHILD_LAST = FL.SIG_STEP_1 << 1;

/**
 * Shared callback CB_ARRAY_CHILD, run by the thread that signals child `cfw` of array `afw`;
 * consumes the array reference the callback held.
 *
 * Under signal record `rec` (see defineSharedCallback), which names this handler and the array
 * from before the node's free: the count-down's run writes CHILD_COUNTED (and CHILD_LAST when it
 * reached zero) into its SIG_SHARED, and the word is cleared in the run that lets go of the array
 * reference — its drop (putFenceAt), or the link that queues it as container work. So
 * for a thread terminated anywhere in here the reaper (reapArrayChild) knows whether the child was
 * counted, whether the array's signal was this call's, and that the reference is still held.
 */
function onArrayChild(arena: Arena, afw: number, cfw: number, rec = 0): void {
  const i32 = arena.i32;
  const at = rec === 0 ? 0 : rec + FL.SIG_SHARED;
  propagateError(i32, afw, cfw);
  const last = Atomics.sub(i32, afw + A_PENDING, 1) === 1;
  if (at !== 0) i32[at] = CB_ARRAY_CHILD | CHILD_COUNTED | (last ? CHILD_LAST : 0);
  if (!last) return putArrayRef(arena, afw, at);
  // Taking the array lock is safe unless this very thread holds it (a user's withLock around a
  // child signal): then the signal waits until the lock is dropped.
  // Queued, the work is an item of the thread's container work list (the array's own K_WORK word):
  // a thread terminated before it runs leaves it to its reaper (defineContainerWork below).
  if (holdsFenceLock(arena, afw)) defer(arena, afw, at);
  else {
    try {
      signalArray(arena, afw);
    } finally {
      putArrayRef(arena, afw, at);
    }
  }
}

/** Puts the array reference of a child callback, clearing word `at` (0: none) in the drop's run. */
function putArrayRef(arena: Arena, afw: number, at: number): void {
  if (at === 0) putFence(arena, afw);
  else putFenceAt(arena, afw, at);
}

/**
 * What {@link onArrayChild} left when its thread was terminated after the node's free and before
 * it let go of the array reference (SIGNALS reap stage): the child is counted (its error
 * propagated: a first-error compare-exchange, harmless to repeat) unless `step` says it was, the
 * array signaled when that count — the dead thread's or this one — reached zero (a no-op on a
 * signaled array: the cut-off call may have signaled it already), and the reference put.
 */
function reapArrayChild(arena: Arena, data: number, cfw: number, step: number): void {
  const afw = linkedPayload(arena, data, A.BlockType.FENCE, 'the array of a child callback cut off');
  const i32 = arena.i32;
  if (!isArrayFw(i32, afw)) throw Errors.corruptArena(`the array child callback of a dead thread names fence @${afw * 4}, not an array`);
  try {
    let last = (step & CHILD_LAST) !== 0;
    if ((step & CHILD_COUNTED) === 0) {
      propagateError(i32, afw, cfw);
      last = Atomics.sub(i32, afw + A_PENDING, 1) === 1;
    }
    if (last) signalArray(arena, afw);
  } finally {
    putFence(arena, afw);
  }
}

/** The array's signal once every child has (a no-op when it already is: a reaper may run it again). */
function signalArray(arena: Arena, fw: number): void {
  fenceView(arena, fw).signal();
}
defineContainerWork(isArrayFw, signalArray);

/**
 * ops.signaled (polled without the lock). Done once A_PENDING reached zero. While signaling is not
 * enabled nobody counts down, so the children are asked directly (as mainline does since v6.11).
 */
function arraySignaled(arena: Arena, fw: number): boolean {
  const i32 = arena.i32;
  if (Atomics.load(i32, fw + A_PENDING) <= 0) return true;
  if (Atomics.load(i32, fw + F_FLAGS) & FLAG_ENABLE_SIGNAL) return false;
  const any = (i32[fw + A_MODE] & ARRAY_SIGNAL_ANY) !== 0;
  const n = arrayCount(arena, fw);
  for (let i = 0; i < n; i++) {
    const c = arrayChild(arena, fw, i);
    if (isSignaledFw(arena, c)) {
      propagateError(i32, fw, c);
      if (any) return true;
    } else if (!any) {
      return false;
    }
  }
  return !any;
}

/**
 * ops.release: drops the children's references and frees the child list. Resumable (the reaper
 * calls it again on an array whose release a terminate() cut off): each child's slot is cleared in
 * the run of its drop (putChildAt), and the list is freed through the thread's spare word with
 * A_SLOTS cleared in the run that hands it there (freeInFlight), so a second call skips what is
 * done and drops every child still named exactly once.
 */
function releaseArray(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  if (i32[fw + A_SLOTS] === 0) return; // the list is freed: the release was done but the block's free
  const n = arrayCount(arena, fw);
  const sw = i32[fw + A_SLOTS];
  let first: unknown = NO_ERROR;
  for (let i = 0; i < n; i++) first = attempt(putChildAt, arena, sw + i, 0, first);
  freeInFlight(arena, fw + A_SLOTS);
  rethrowFirst(first);
}

defineSharedCallback(CB_ARRAY_CHILD, onArrayChild, reapArrayChild);

/** Fence arrays (kernel dma-fence-array.c). All methods are static; arrays are plain {@link Fence}s. */
export class FenceArray {
  private constructor() {}

  /**
   * Creates an array fence over `fences` (kernel dma_fence_array_create) and takes over the
   * caller's reference on each (a fence may appear twice if the caller passes two references).
   * Signals when all children have signaled (any child with `signalOnAny`); its error is the first
   * child error, visible in `status()` once the array signals.
   * Locking: none held; the array gets an inline lock of its own.
   * Threads: any attached thread; threads that wait on, or signal children of, the array must
   * import fencelab (the array's ops and child callback are registered at module load).
   * Returns the array with one reference. Throws EINVAL (empty list, not Fences, other arena, a
   * container as child, bad context/seqno), EBADF (a released child), ENOMEM; on a throw no
   * reference was taken over.
   */
  static create(arena: Arena, fences: Fence[], options: FenceArrayOptions): Fence {
    arenaArg(arena, 'FenceArray.create');
    if (!isArrayArg(fences) || fences.length === 0) throw Errors.invalid(`FenceArray.create needs a non-empty array of fences, got ${describeValue(fences)}`);
    const mem = FenceArray.alloc(arena, fences.length);
    try {
      return initArray(mem, fences, options, 'FenceArray.create');
    } catch (e) {
      mem.free();
      throw e;
    }
  }

  /**
   * Reserves the memory of an array of `count` fences (kernel dma_fence_array_alloc), so that
   * {@link init} later cannot fail for lack of memory.
   * Threads: any attached thread. Returns the memory; pass it to {@link init} once, or free it
   * with `mem.free()`. Throws EINVAL (count not an integer ≥ 1), ENOMEM (nothing reserved).
   */
  static alloc(arena: Arena, count: number): FenceMemory {
    arenaArg(arena, 'FenceArray.alloc');
    if (!Number.isSafeInteger(count) || count < 1) throw Errors.invalid(`FenceArray.alloc needs a count ≥ 1, got ${describeValue(count)}`);
    const sw = arena.allocBlock(A.BLOCK_HEADER_BYTES + count * 4, A.BlockType.SLOTS) + BLOCK_HEADER_WORDS;
    let fw: number;
    try {
      fw = fenceReserve(arena, ARRAY_BLOCK);
    } catch (e) {
      arena.freeBlock(sw - BLOCK_HEADER_WORDS);
      throw e;
    }
    return FenceMemory.make(arena, 'array', count, fw, sw);
  }

  /**
   * Builds the array in memory from {@link alloc} (kernel dma_fence_array_init): what
   * {@link create} does, without allocating — for paths that must not meet ENOMEM.
   * `fences.length` must equal the count it was allocated for. Takes over the caller's reference
   * on each fence.
   * Threads: any attached thread. Returns the array with one reference. Throws EINVAL (wrong
   * count, memory of a chain or another arena, empty list, not Fences, a container as child, bad
   * context/seqno, signalOnAny not a boolean), EBADF (a released child, memory already used or freed); on a throw nothing was
   * taken over and the memory is still the caller's.
   */
  static init(mem: FenceMemory, fences: Fence[], options: FenceArrayOptions): Fence {
    return initArray(mem, fences, options, 'FenceArray.init');
  }

  /**
   * True when `f` is a fence array (kernel dma_fence_is_array); false for anything that is no
   * Fence (null, a number, a plain object). Threads: any. Throws EBADF on a released fence.
   */
  static isArray(f: Fence): boolean {
    return isFenceView(f) && isArrayFw(f.arena.i32, fenceArg(f.arena, f, 'fence'));
  }

  /**
   * The children of an array, in order, as views without references of their own (valid while the
   * array is held). Throws EINVAL when `f` is not an array, EBADF when it was released.
   */
  static fences(f: Fence): Fence[] {
    const fw = ownFenceArg(f, 'fence');
    const arena = f.arena;
    if (!isArrayFw(arena.i32, fw)) throw Errors.invalid('FenceArray.fences: not a fence array');
    const n = arrayCount(arena, fw);
    const out: Fence[] = new Array<Fence>(n);
    for (let i = 0; i < n; i++) out[i] = fenceView(arena, arrayChild(arena, fw, i));
    return out;
  }
}

/** {@link FenceArray.init} for `where` (the entry the caller called, named in its errors). */
function initArray(mem: FenceMemory, fences: Fence[], options: FenceArrayOptions, where: string): Fence {
  if (!isInstance(mem, FenceMemory)) throw Errors.invalid(`${where} needs memory from FenceArray.alloc`);
  const arena = mem.arena;
  const n = isArrayArg(fences) ? fences.length : 0;
  if (n === 0) throw Errors.invalid(`${where} needs a non-empty array of fences, got ${describeValue(fences)}`);
  if (n !== mem.count) throw Errors.invalid(`${where}: memory for ${mem.count} fences, given ${n}`);
  // Every element read once before any is checked: a getter of the caller's array that releases
  // an element already checked would leave the array a child that is no fence any more.
  const list = new Array<unknown>(n);
  for (let i = 0; i < n; i++) list[i] = fences[i];
  if (options === undefined || options === null) throw Errors.invalid(`${where} needs { context, seqno }`);
  options = optionsArg(options, where, ['context', 'seqno', 'signalOnAny']);
  const { context, seqno, signalOnAny } = options;
  if (signalOnAny !== undefined && typeof signalOnAny !== 'boolean') throw Errors.invalid(`${where}: signalOnAny must be a boolean, got ${describeValue(signalOnAny)}`);
  const seqno64 = typeof seqno === 'number' && seqno > 0xffffffff;
  checkContextSeqno(context, seqno, seqno64);
  const i32 = arena.i32;
  const children: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const c = fenceArg(arena, list[i], `fences[${i}]`);
    if (isArrayFw(i32, c) || isChainFw(i32, c)) throw Errors.invalid(`fences[${i}] is a container: arrays hold plain fences only (unwrap it first)`);
    children[i] = c;
  }
  const [fw, sw] = mem.take(arena, 'array');
  // From here nothing throws: the references are the array's. Any the caller's ledger records
  // are forgotten first (a terminate() in between leaks one, never drops it twice).
  for (let i = 0; i < n; i++) ledgerForgetRef(arena, children[i]);
  fenceInit(arena, fw, { opsId: arrayOps.id, context, seqno, seqno64, lockIdx: 0, lenderHw: 0 });
  clearSignalerAt(i32, fw); // its children signal it, not a thread
  for (let i = 0; i < n; i++) i32[sw + i] = children[i];
  const any = options.signalOnAny === true;
  i32[fw + A_NUM] = n;
  i32[fw + A_PENDING] = any ? 1 : n;
  i32[fw + A_SLOTS] = sw;
  i32[fw + A_MODE] = any ? ARRAY_SIGNAL_ANY : 0;
  i32[fw + L.A_ARMED] = 0;
  i32[fw + K_WORK] = 0; // not queued
  return fenceView(arena, fw);
}

/**
 * The release after the last put (kernel dma_fence_release), and the reaper's half of it: a thread
 * terminated inside a release leaves its release records (src/fence/drop.ts), and the reap hook
 * below finishes what they say.
 *
 * This module sits below the Fence class (fence.ts imports putFence from here): the one view it
 * needs, the one ops.release is handed, is made by the factory fence.ts installs at load.
 */
import type { Arena } from '../arena/arena.js';
import { blockTypeAt, isLive } from '../arena/handles.js';
import { onReap, onThreadCheck, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, Errno, Errors, NO_ERROR, rethrowFirst, warn } from '../errors.js';
import { setPutHook } from './inbox.js';
import { isSignaledFlag, nowNs, traceFence } from './core.js';
import * as TR from '../trace/layout.js';
import { dropRef, pushRelease } from './drop.js';
import { deferRelease, finishDeadDeferred, releaseDropped, runDeferredAt, setDeferHook } from './releasedefer.js';
import type { Fence } from './fence.js';
import { findOps, opsMissing, releaseResumes } from './ops.js';
import { signalFence } from './signal.js';
import { FH } from './hot.js';
import { holdsLockWord } from './held.js';
import './hot.js'; // its load-time check of FH (tsc drops the import above: const enum members only)

const { EV_FENCE_DESTROY } = TR;

const { F_FLAGS, F_OPS, F_REFCOUNT, F_ERROR, FLAG_SIGNALED, FLAG_OPS_RELEASE, H_STUB, releaseRecord, REC_FW, REC_STATE, RELEASE_CAP, RELEASE_INLINE, T_RELEASE_DEFER } = L;
const { BLOCK_HEADER_WORDS, GEN_MASK } = A;

let viewOf: (arena: Arena, fw: number) => Fence = () => {
  throw Errors.invalid('fence views are made by src/fence/fence.js, which this thread has not loaded');
};
/** @internal fence.ts installs the view factory at load. */
export function setViewFactory(make: (arena: Arena, fw: number) => Fence): void {
  viewOf = make;
}

/**
 * Drops one reference on the fence at `fw`; the last one releases it (an unsignaled fence with
 * callbacks is first signaled with -EDEADLK, then ops.release runs and the block is freed).
 * `view`, if given, is the one handed to ops.release. Threads: any attached thread.
 * Locking: the caller may hold the fence's lock only to drop a reference that is not the last.
 * Throws EBADF for a put on a fence without references, EINVAL when the fence's ops have a
 * release and are not registered in this thread, EDEADLK for the last reference put by the holder
 * of the fence's lock (nothing changes in any of these cases).
 */
export function putFence(arena: Arena, fw: number, view?: Fence): void {
  const i32 = arena.i32;
  const flags = i32[fw + FH.F_FLAGS]; // FH: see hot.ts (every put inlines this function)
  // The last put calls ops.release: a thread that could not is refused before it drops anything,
  // whether or not this put is the last (which only the race decides).
  if (flags & FLAG_OPS_RELEASE && findOps(i32[fw + FH.F_OPS]) === undefined) throw opsMissing(i32[fw + FH.F_OPS], 'put');
  // The release signals (taking the lock) and frees the block the lock word may live in: the holder
  // of the lock may only drop references that are not the last (kernel: a dma_fence_put of the last
  // reference under fence->lock deadlocks in the release).
  if (holdsLockWord(arena, fw, flags)) return void putUnderLock(i32, fw, 0);
  const d = pushRelease(arena, fw);
  const old = dropRef(arena, fw, d, 0, 0);
  if (old === 1) releaseFence(arena, fw, view, d, flags);
  else if (old < 1) badPut(i32, fw, old, 0);
}

/**
 * Takes back a get-unless-zero on `fw` that a recheck found stale: the block was released and
 * reused between the caller's generation check and its get. Reused as a fence, the get took a real
 * reference on that fence, which is put (its release runs if the fence's owner dropped its own
 * meanwhile: a plain decrement would leave it at 0, never released). Reused as anything else, the
 * increment went to another struct's word and is taken back.
 */
export function undoStaleGet(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  const hw = fw - A.BLOCK_HEADER_WORDS;
  if (liveFenceBlock(i32, hw)) putFence(arena, fw);
  else Atomics.sub(i32, fw + F_REFCOUNT, 1);
}

/** True when the block at header word `hw` is live and a fence (whatever its generation). */
export function liveFenceBlock(i32: Int32Array, hw: number): boolean {
  return isLive(i32, hw, i32[hw + A.B_GEN] & A.GEN_MASK) && blockTypeAt(i32, hw) === A.BlockType.FENCE;
}

/**
 * A put on a fence that had no reference (refcount `old` before the drop): the drop is undone, and
 * the site's record `i32[at]` restored (`at` 0: none); throws EBADF. Out of line: puts inline their path.
 */
function badPut(i32: Int32Array, fw: number, old: number, at: number): never {
  Atomics.add(i32, fw + F_REFCOUNT, 1);
  if (at !== 0) i32[at] = fw;
  throw Errors.badHandle('fence', fw, `put on a fence with refcount ${old}`);
}

/**
 * {@link putFence} of a reference a site records at word `at` in shared memory (`i32[at]` names the
 * fence): the word is cleared in the drop's run (see src/fence/drop.ts), so a thread terminated at
 * any point leaves the reference recorded there or dropped with its record cleared, and a reaper
 * that runs the site again puts it once. Same errors as putFence (`at` unchanged).
 */
export function putFenceAt(arena: Arena, fw: number, at: number): void {
  if (putRefusedOrLocked(arena, fw, at, 0)) return;
  const d = pushRelease(arena, fw);
  const old = dropRef(arena, fw, d, at, 0);
  if (old === 1) releaseFenceAt(arena, fw, d);
  else if (old < 1) badPut(arena.i32, fw, old, at);
}

/**
 * What every put checks before its drop (see {@link putFence}), for the sites that record the drop
 * in a word of their own (`i32[at] = value` in the drop's run; `at` 0: none): throws EINVAL when
 * the fence's ops have a release and are not registered in this thread; when the calling thread
 * holds the fence's lock, does the drop here ({@link putUnderLock}: EDEADLK for the last
 * reference) and returns true; else returns false (the caller drops).
 */
export function putRefusedOrLocked(arena: Arena, fw: number, at: number, value: number): boolean {
  const i32 = arena.i32;
  const flags = i32[fw + F_FLAGS];
  if (flags & FLAG_OPS_RELEASE && findOps(i32[fw + F_OPS]) === undefined) throw opsMissing(i32[fw + F_OPS], 'put');
  if (!holdsLockWord(arena, fw, flags)) return false;
  putUnderLock(i32, fw, at, value);
  return true;
}


/**
 * A reference drop by the holder of the fence's lock: drops a reference that is not the last and
 * writes the site's record `i32[at] = value` (`at` 0: none) in the same run; refuses the last one
 * with EDEADLK, dropping nothing. A drop that is not the last needs no release record (putFence's
 * record is popped at once for it), so one compare-exchange is the whole drop.
 */
export function putUnderLock(i32: Int32Array, fw: number, at: number, value = 0): void {
  for (;;) {
    const old = Atomics.load(i32, fw + F_REFCOUNT);
    if (old === 1) {
      throw Errors.deadlock(
        'put of the last reference while holding the fence lock: the release would signal and free under it; unlock first (nothing was dropped)',
      );
    }
    if (old < 1) throw Errors.badHandle('fence', fw, `put on a fence with refcount ${old}`);
    // Another thread's get or put in between fails the exchange: read again (each retry means
    // another thread made progress).
    if (Atomics.compareExchange(i32, fw + F_REFCOUNT, old, old - 1) === old) {
      if (at !== 0) i32[at] = value;
      return;
    }
  }
}

/**
 * Releases a fence whose last reference the caller has just dropped with {@link dropRef} under
 * release record `depth` (the sites that record their drop in their own structures do).
 */
export function releaseFenceAt(arena: Arena, fw: number, depth: number, view?: Fence): void {
  releaseFence(arena, fw, view, depth, arena.i32[fw + F_FLAGS]);
}

/**
 * The release after the last put, under release record `d`, which it pops when the block is
 * freed: kernel dma_fence_release. An unsignaled fence with callbacks is resurrected and signaled
 * with -EDEADLK first; then ops.release runs and the block is freed. Nested deeper than
 * RELEASE_INLINE, a release that would run code (callbacks, ops.release) is deferred instead (see
 * deferRelease); a plain free is not (it nests nothing), so the put path tests nothing for it.
 */
function releaseFence(arena: Arena, fw: number, view: Fence | undefined, d: number, flags: number): void {
  const i32 = arena.i32;
  // `flags` was read before the drop: SIGNALED may have gone up since, so a clear bit is read again.
  // The unsignaled fence with callbacks (a driver's bug) out of line: the put path inlines this.
  if (!(flags & FH.FLAG_SIGNALED) && !(i32[fw + FH.F_FLAGS] & FH.FLAG_SIGNALED) && i32[fw + FH.F_CB_HEAD] !== 0) releaseUnsignaled(arena, fw, view, d, flags);
  else freeFence(arena, fw, view, d, flags);
}

/**
 * {@link releaseFence} of an unsignaled fence with callbacks (kernel dma_fence_release's WARN):
 * resurrected and signaled with -EDEADLK, its callbacks run, then freed. At the last inline depth,
 * the releases its callbacks deferred run before it returns.
 */
function releaseUnsignaled(arena: Arena, fw: number, view: Fence | undefined, d: number, flags: number): void {
  if (d >= RELEASE_INLINE) return deferRelease(arena, fw, d);
  let first: unknown = NO_ERROR;
  try {
    signalAndFree(arena, fw, view, d, flags);
  } catch (e) {
    first = e;
  }
  runDeferredAt(arena, d, first);
}

/** The body of {@link releaseUnsignaled}: the -EDEADLK signal under the resurrected reference, then the free. */
function signalAndFree(arena: Arena, fw: number, view: Fence | undefined, d: number, flags: number): void {
  const i32 = arena.i32;
  const state = recordState(arena, d);
  // Kernel dma_fence_release: callbacks would never run. Resurrect for the signal (remote
  // deliveries take references of their own), then drop our reference again. The store first and
  // the record's flag after it, in one run (see src/fence/drop.ts): a terminate() lands at the
  // Atomics call, before it, so the reaper never sees RESURRECTED on a refcount still 0 (it
  // releases the dropped fence again instead).
  Atomics.store(i32, fw + F_REFCOUNT, 1);
  if (state) i32[state] |= L.REL_RESURRECTED;
  if (!(i32[fw + F_FLAGS] & FLAG_SIGNALED)) i32[fw + F_ERROR] = Errno.EDEADLK;
  try {
    signalFence(arena, fw, nowNs());
  } finally {
    // The drop clears RESURRECTED in its run: the reaper sees our reference or a drop.
    if (dropRef(arena, fw, d, state, state ? i32[state] & ~L.REL_RESURRECTED : 0) === 1) freeFence(arena, fw, view, d, flags);
  }
}

/** Word index of the state of the calling thread's release record `d`, or 0 past RELEASE_CAP (not recorded). */
function recordState(arena: Arena, d: number): number {
  return d < RELEASE_CAP ? releaseRecord(arena.slotBase, d, REC_STATE) : 0;
}

/**
 * ops.release, then the block goes back to the allocator and release record `d` is popped.
 * `flags`: the fence's flags read earlier (only the ops bits are used, fixed at init).
 */
function freeFence(arena: Arena, fw: number, view: Fence | undefined, d: number, flags: number): void {
  const i32 = arena.i32;
  if (i32[H_STUB] === fw) {
    i32[arena.slotBase + FH.T_RELEASE_DEPTH] = d; // the stub is permanent
    return;
  }
  // Ops with a release out of line: the put path inlines this function (and the default ops have none).
  if (flags & FLAG_OPS_RELEASE) return freeWithRelease(arena, fw, view, d);
  if (i32[FH.TH_FLAGS] & FH.TC_RELEASE) traceDestroy(arena, fw); // inline test: see fenceInit in core.ts
  // A terminate() between the free and the pop leaves a record whose generation has moved on.
  arena.freeBlock(fw - FH.BLOCK_HEADER_WORDS);
  i32[arena.slotBase + FH.T_RELEASE_DEPTH] = d;
}

/** The dma_fence_destroy event of `fw`, out of line: its arguments would be bytecode of freeFence. */
function traceDestroy(arena: Arena, fw: number): void {
  traceFence(arena, EV_FENCE_DESTROY, fw, 0);
}

/**
 * {@link freeFence} of a fence whose ops have a release: its destroy event, ops.release, then the
 * free and the pop. Nested deeper than RELEASE_INLINE it is deferred; at the last inline depth,
 * the releases ops.release deferred run before it returns.
 */
function freeWithRelease(arena: Arena, fw: number, view: Fence | undefined, d: number): void {
  if (d >= RELEASE_INLINE) return deferRelease(arena, fw, d);
  if (arena.i32[FH.TH_FLAGS] & FH.TC_RELEASE) traceDestroy(arena, fw);
  let first: unknown = NO_ERROR;
  try {
    callReleaseAndFree(arena, fw, view, d);
  } catch (e) {
    first = e;
  }
  runDeferredAt(arena, d, first);
}

/** The body of {@link freeWithRelease}: ops.release, then (whether it throws or not) the free and the pop. */
function callReleaseAndFree(arena: Arena, fw: number, view: Fence | undefined, d: number): void {
  const i32 = arena.i32;
  const id = i32[fw + F_OPS];
  const ops = findOps(id);
  // Only a reaper finishing a dead thread's release (or a ledger drop) gets here without the ops:
  // the block is freed, and the missing release is reported rather than skipped without a word.
  if (ops === undefined) warn(opsMissing(id, 'release'), 'FENCELAB_OPS_MISSING');
  const release = ops?.table.release;
  try {
    if (release !== undefined) {
      const v = view ?? viewOf(arena, fw);
      const state = recordState(arena, d);
      if (state) i32[state] |= L.REL_IN_RELEASE;
      release(v);
    }
  } finally {
    // A terminate() between the free and the pop leaves a record whose generation has moved on.
    arena.freeBlock(fw - BLOCK_HEADER_WORDS);
    i32[arena.slotBase + L.T_RELEASE_DEPTH] = d;
  }
}

/**
 * Reap hook: finishes the releases a dead thread had in flight, innermost first. A dropped last
 * reference → the release runs here; the -EDEADLK signal's reference → signal (if the dead thread
 * had not got that far) and put; ops.release already called → called again when it resumes (a
 * container's: it finishes what the cut-off call had not dropped, see markReleaseResumable), then
 * the block is freed; another ops' release is not called twice (what it had not released yet stays
 * allocated, and `arena.check()` reports it).
 */
function finishDeadReleases(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: a thread detaches between calls, not inside a release
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  // Its deferred releases first: each dropped fence is on the list or in a record, not both.
  let first = attempt(finishDeadDeferred, arena, b, 0, NO_ERROR);
  const n = Math.min(i32[b + L.T_RELEASE_DEPTH], RELEASE_CAP);
  for (let j = n - 1; j >= 0; j--) {
    const fw = i32[releaseRecord(b, j, REC_FW)];
    const gs = i32[releaseRecord(b, j, REC_STATE)];
    if (!(gs & L.REL_DROPPED)) continue; // an intent: it died before its drop
    if (!arena.isLive(fw - BLOCK_HEADER_WORDS, gs & GEN_MASK)) continue; // freed before it died
    if (gs & L.REL_IN_RELEASE) {
      resumeRelease(arena, fw);
    } else if (gs & L.REL_RESURRECTED) {
      if (!isSignaledFlag(i32, fw)) signalFence(arena, fw, nowNs());
      putFence(arena, fw);
    } else {
      releaseDropped(arena, fw);
    }
  }
  i32[b + L.T_RELEASE_DEPTH] = 0;
  rethrowFirst(first);
}

onReap(ReapStage.RELEASES, finishDeadReleases);

/**
 * The end of a dead thread's release cut off inside ops.release: a resumable release is called
 * again (its own records in the fence block say what is left), then the block is freed.
 */
function resumeRelease(arena: Arena, fw: number): void {
  const id = arena.i32[fw + F_OPS];
  const ops = findOps(id);
  // As in freeFence: a release this thread cannot run is reported, not skipped without a word.
  if (ops === undefined && arena.i32[fw + F_FLAGS] & FLAG_OPS_RELEASE) warn(opsMissing(id, 'release'), 'FENCELAB_OPS_MISSING');
  try {
    if (ops !== undefined && releaseResumes(ops.id)) ops.table.release?.(viewOf(arena, fw));
  } finally {
    arena.freeBlock(fw - BLOCK_HEADER_WORDS);
  }
}

/** Check hook: a thread between calls has no release in flight. */
onThreadCheck((arena, s, b) => {
  // The calling thread is between calls: no release of its own can be in flight (others may be).
  const releases = arena.i32[b + L.T_RELEASE_DEPTH];
  const problems = releases < 0 || (s === arena.slot && releases !== 0) ? [`thread ${s} has ${releases} fence releases in flight`] : [];
  if (s === arena.slot && arena.i32[b + T_RELEASE_DEFER] !== 0) problems.push(`thread ${s} has deferred fence releases not run`);
  return problems;
});

setPutHook(putFence, releaseFenceAt);
setDeferHook(releaseFenceAt);

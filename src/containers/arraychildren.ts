/**
 * The children of a fence array and the arming of their callbacks (`ops.enableSignaling`), apart
 * from array.ts because the arming is resumable: a thread terminated in the middle of it would
 * leave the array flagged enabled with children unarmed, and it would never signal.
 *
 * The arming runs under one chain walk record (src/containers/chainwalk.ts) of the calling thread,
 * pushed before the array's ENABLE_SIGNAL flag goes up and popped once the enable is over:
 * W_LINK names the array with a reference of the record's own, W_STEP where the arming stands —
 * W_ARMING | child index << 2 | phase — and W_AUX the array reference taken for the child's
 * callback until its node is linked. Phase ARM_NEXT: child i not begun. ARM_TAKEN: its reference
 * is taken; W_AUX still naming it means not linked, cleared (in the link's run) means linked.
 * ARM_COUNTED: the child had signaled already and was counted; W_AUX names the reference until it
 * is dropped. Every change of W_STEP is in the run of the Atomics operation it describes, so a
 * reaper (CHAIN_WALKS) reads exactly how far the dead thread got and arms the rest itself.
 *
 * An arming that throws (ENOMEM for a callback node, a child's own op, the lock-order checker)
 * leaves the children before the one that failed armed: A_ARMED names that one, and the enable is
 * undone (the flag goes down again, src/fence/signal.ts), so the next enable resumes there — no
 * child is armed twice and none is left out. The one refusal known in advance, a child lock the
 * calling thread holds (the arming would take it: EDEADLK), is refused before the flag goes up.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { fenceLock, fenceUnlock } from '../fence/lock.js';
import { holdsFenceLock } from '../fence/held.js';
import { fenceView } from '../fence/fence.js';
import { putFenceAt } from '../fence/release.js';
import { getAt, inWalkRecord, setArmingReaper } from './chainwalk.js';
import { CB_ARRAY_CHILD } from './common.js';

const { A_ARMED, A_NUM, A_PENDING, A_SLOTS, W_ARMING, W_AUX, W_LINK, W_STEP } = L;
const { F_ERROR, F_FLAGS, F_REFCOUNT, FLAG_ENABLE_SIGNAL, FLAG_SIGNALED } = FL;
const { BLOCK_HEADER_WORDS } = A;

const ARM_NEXT = 0;
const ARM_TAKEN = 1;
const ARM_COUNTED = 2;

/**
 * Number of children of the array at `fw`, checked: the count and the child list's word are read
 * from shared memory and bound every walk over the children, so a count the list's block cannot
 * hold, or a list word naming no live child list, throws ENOTRECOVERABLE.
 */
export function arrayCount(arena: Arena, fw: number): number {
  const i32 = arena.i32;
  const n = i32[fw + A_NUM];
  const sw = linkedPayload(arena, i32[fw + A_SLOTS], A.BlockType.SLOTS, 'the child list of a fence array');
  if (!(n > 0 && n <= arena.payloadBytes(sw - BLOCK_HEADER_WORDS) >>> 2)) throw Errors.corruptArena(`fence array @${fw * 4} counts ${n} children`);
  return n;
}

/** Payload word of child `i` (below {@link arrayCount}) of the array at `fw`, checked to be a live fence. */
export function arrayChild(arena: Arena, fw: number, i: number): number {
  return linkedPayload(arena, arena.i32[arena.i32[fw + A_SLOTS] + i], A.BlockType.FENCE, 'fence array child');
}

/** First child error (kernel dma_fence_array_set_pending_error): only while no error is set. */
export function propagateError(i32: Int32Array, afw: number, cfw: number): void {
  const err = i32[cfw + F_ERROR];
  if (err < 0) Atomics.compareExchange(i32, afw + F_ERROR, 0, err);
}

/**
 * The recorder of an array's enable (installed in core by array.ts for array fences): pushes the
 * walk record before the ENABLE_SIGNAL flag goes up — so a reaper that finds the flag up finds the
 * record too — with its own array reference and step 0, runs `enable` (the flag, ops.enableSignaling
 * = enableArray below, the signal of a refusal), and lets go of the record after all of it.
 */
export function withArmingRecord(arena: Arena, fw: number, enable: () => number): number {
  checkChildLocks(arena, fw);
  return inWalkRecord(arena, (rec) => {
    const i32 = arena.i32;
    if (rec !== 0) {
      getAt(i32, fw, rec + W_LINK);
      // In the run of the reference's take (no call or Atomics between); from where an undone enable stopped.
      i32[rec + W_STEP] = W_ARMING | (i32[fw + A_ARMED] << 2);
    }
    const outer = armingRecord;
    armingRecord = rec;
    let head: number;
    try {
      head = enable();
    } finally {
      armingRecord = outer;
    }
    if (rec !== 0) {
      // Done (armed, or signaled by the refusal): the record lets go of the array; never its last
      // reference, the enabler holds one.
      i32[rec + W_STEP] = 0;
      putFenceAt(arena, fw, rec + W_LINK);
    }
    return head;
  });
}

/**
 * Throws EDEADLK when the calling thread holds the lock of a child the arming is to take (from
 * A_ARMED on): refused before the flag goes up, nothing changed.
 */
function checkChildLocks(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  const n = arrayCount(arena, fw);
  for (let i = i32[fw + A_ARMED]; i < n; i++) {
    if (holdsFenceLock(arena, arrayChild(arena, fw, i))) {
      throw Errors.deadlock(`the calling thread holds the lock of fence array child ${i}: signaling of the array cannot be enabled under it (arming takes the children's locks)`);
    }
  }
}

/** The walk record of the array enable this thread is in (withArmingRecord), 0 none. */
let armingRecord = 0;

/**
 * ops.enableSignaling: arms one shared callback per child. Entered with the array lock held (core
 * enableSignalingLocked, inside withArmingRecord); drops it while arming (see the lock-order note
 * in array.ts) and takes it again before returning. Returns false when every child (any child,
 * signal-on-any) already signaled. Recorded as the header above says (with no walk record free,
 * it arms unrecorded).
 */
export function enableArray(arena: Arena, fw: number): boolean {
  const rec = armingRecord;
  const start = arena.i32[fw + A_ARMED];
  fenceUnlock(arena, fw);
  try {
    return armFrom(arena, fw, start, rec);
  } finally {
    fenceLock(arena, fw);
  }
}

/**
 * Arms the callbacks of children `start` and up of array `fw`, under walk record `rec` (0 none).
 * Returns false when the count of children still to signal reached zero (the array is then to be
 * signaled by the caller). On a throw, A_ARMED names the child that failed: it is neither armed
 * nor counted, every one before it is.
 */
function armFrom(arena: Arena, fw: number, start: number, rec: number): boolean {
  const n = arrayCount(arena, fw);
  let i = start;
  try {
    for (; i < n; i++) if (!armChild(arena, fw, arrayChild(arena, fw, i), i, rec)) return false;
  } catch (e) {
    arena.i32[fw + A_ARMED] = i;
    throw e;
  }
  return true;
}

/**
 * Arms array `fw`'s callback on child `c` (index `i`). The callback holds an array reference — the
 * array may be reported signaled (and put by its last user) before every callback has run — taken
 * before the link and recorded as the header says. A child that had signaled already is counted
 * here; returns false when that count was the last.
 */
function armChild(arena: Arena, fw: number, c: number, i: number, rec: number): boolean {
  const i32 = arena.i32;
  const at = rec === 0 ? 0 : rec + W_AUX;
  getAt(i32, fw, at);
  if (rec !== 0) i32[rec + W_STEP] = W_ARMING | (i << 2) | ARM_TAKEN;
  let armed: unknown;
  try {
    armed = fenceView(arena, c).addShared(CB_ARRAY_CHILD, fw, at);
  } catch (e) {
    // Recorded, the walk record's drop (inWalkRecord) puts it back.
    if (at === 0) Atomics.sub(i32, fw + F_REFCOUNT, 1);
    throw e;
  }
  if (armed === null) {
    propagateError(i32, fw, c);
    const last = Atomics.sub(i32, fw + A_PENDING, 1) === 1;
    if (rec !== 0) i32[rec + W_STEP] = W_ARMING | (i << 2) | ARM_COUNTED;
    // Never the last reference: the enabler holds one.
    Atomics.sub(i32, fw + F_REFCOUNT, 1);
    if (at !== 0) i32[at] = 0;
    if (last) return false;
  }
  if (rec !== 0) i32[rec + W_STEP] = W_ARMING | ((i + 1) << 2) | ARM_NEXT;
  return true;
}

/**
 * Reaper (CHAIN_WALKS, before the record's references are dropped) of an arming cut off under walk
 * record `rec` of a dead thread: arms the children it had not, in the reaper's thread, and signals
 * the array if their count ends there. The record's W_LINK reference keeps the array until then.
 */
function finishArming(arena: Arena, rec: number): void {
  const i32 = arena.i32;
  const step = i32[rec + W_STEP];
  i32[rec + W_STEP] = 0;
  const fw = i32[rec + W_LINK];
  if (fw === 0) return;
  linkedPayload(arena, fw, A.BlockType.FENCE, 'an array being armed');
  // Terminated before the flag went up: nothing was armed, and whoever enables it next arms it.
  if (!(Atomics.load(i32, fw + F_FLAGS) & FLAG_ENABLE_SIGNAL)) return;
  const i = (step & ~W_ARMING) >>> 2;
  const phase = step & 3;
  // ARM_TAKEN with W_AUX cleared: child i's node is linked. Otherwise its reference (if any) is
  // dropped with the record, and child i is armed again unless it was counted.
  const next = phase === ARM_COUNTED || (phase === ARM_TAKEN && i32[rec + W_AUX] === 0) ? i + 1 : i;
  if (phase === ARM_TAKEN && i32[rec + W_AUX] !== 0) putFenceAt(arena, fw, rec + W_AUX);
  // A count that reached zero (signal-on-any: one child) ends the arming: nothing more to arm.
  const pending = Atomics.load(i32, fw + A_PENDING) > 0 && inWalkRecord(arena, (own) => armFrom(arena, fw, next, own));
  if (!pending && !(Atomics.load(i32, fw + F_FLAGS) & FLAG_SIGNALED)) fenceView(arena, fw).signal();
}
setArmingReaper(finishArming);

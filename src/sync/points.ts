/**
 * sw_sync points: the fences of a timeline (a fence plus PT_* list words, borrowing the timeline's
 * lock and holding a reference to its struct), their ops, their sorted wait list, and the
 * timeline's struct references. Signaling them in order is signaling.ts; the timeline's view is
 * timeline.ts; its close and its owner's death are timelineclose.ts, a dead signaler's work
 * timelinereap.ts.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { fenceInit, markSignaledLocked, nowNs } from '../fence/core.js';
import { dropRef, pushRelease } from '../fence/drop.js';
import type { Fence } from '../fence/fence.js';
import { releaseFenceAt } from '../fence/release.js';
import { clearSignalerAt } from '../fence/signaler.js';
import { defineFenceOps } from '../fence/ops.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { readName } from './names.js';

const { TL_LOCK, TL_KREF, TL_CONTEXT, TL_VALUE, TL_HEAD, TL_TAIL, TL_NAME, PT_TIMELINE, PT_PREV, PT_NEXT, PT_LINKED, PT_DEADLINE, PT_HAS_DEADLINE, T_SW_FREE, T_SW_FREE_GEN, T_SW_NEW, T_SW_NEW_GEN } = L;
const { F_SEQNO_LO, F_REFCOUNT, F_FLAGS } = FL;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

const PT_BLOCK = A.BLOCK_HEADER_BYTES + L.PT_WORDS * 4;

/** "a is not later than value" in 32-bit wrap-around order (kernel timeline_fence_signaled). */
export function reached(seqno: number, value: number): boolean {
  return ((seqno - value) | 0) <= 0;
}

/**
 * Takes a reference on point `fw` unless it already lost its last one (kernel dma_fence_get_rcu),
 * and names it in a record of the caller — `i32[at] = fw`, `i32[genAt]` its generation (`at` 0:
 * none) — in the run of the compare-exchange (plain writes after it), so a thread terminated
 * anywhere holds no unrecorded reference. Returns whether it took one.
 */
export function tryGetRecorded(i32: Int32Array, fw: number, at: number, genAt: number): boolean {
  for (;;) {
    const old = Atomics.load(i32, fw + F_REFCOUNT);
    if (old <= 0) return false;
    if (Atomics.compareExchange(i32, fw + F_REFCOUNT, old, old + 1) === old) {
      if (at !== 0) {
        i32[genAt] = i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
        i32[at] = fw;
      }
      return true;
    }
  }
}

/**
 * Drops a reference on point `fw` that record word `at` (0: none) names, clearing the word in the
 * drop's run (the kill-safe drop of src/fence/drop.ts); the last one releases the point. The
 * caller does not hold the timeline lock (the release takes it).
 */
export function putRecorded(arena: Arena, fw: number, at: number): void {
  const d = pushRelease(arena, fw);
  if (dropRef(arena, fw, d, at, 0) === 1) releaseFenceAt(arena, fw, d);
}

/** Drops the creator's reference that {@link pointAtLocked} recorded in the calling thread's slot. */
export function putCreatedPoint(arena: Arena, fw: number): void {
  putRecorded(arena, fw, arena.slotBase + T_SW_NEW);
}

export function lockTimeline(arena: Arena, tw: number): void {
  acquireWord(arena, tw + TL_LOCK, arena.lockKindId);
}

export function unlockTimeline(arena: Arena, tw: number): void {
  releaseWord(arena, tw + TL_LOCK, arena.lockKindId);
}

/**
 * The timeline of sw_sync point `fw`, checked: the word is read from the point's block, and a
 * corrupted one would send the lock, unlink and put below anywhere in the arena (or past its end).
 */
function timelineOf(arena: Arena, fw: number): number {
  return linkedPayload(arena, arena.i32[fw + PT_TIMELINE], A.BlockType.TIMELINE, 'the timeline of a sw_sync point');
}

/**
 * Drops a struct reference; the last one frees the timeline block. `at` (0: none) is the caller's
 * record of the drop, set to `value` in the drop's run. Kill-safe: the drop, the caller's record
 * and, for the last reference, the block named in the slot's T_SW_FREE happen in one run (an
 * Atomics op, then plain writes), so the reaper of a thread terminated at the free finds the block.
 */
export function timelinePut(arena: Arena, tw: number, at = 0, value = 0): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  const old = Atomics.sub(i32, tw + TL_KREF, 1);
  if (at !== 0) i32[at] = value;
  if (old !== 1) return;
  i32[sb + T_SW_FREE_GEN] = gen;
  i32[sb + T_SW_FREE] = tw;
  arena.freeBlock(tw - BLOCK_HEADER_WORDS);
  i32[sb + T_SW_FREE] = 0;
}

/**
 * Removes point `p` from its timeline's list (timeline lock held). Its neighbours are checked
 * before they are written: a corrupted link would otherwise write into whatever block it names.
 */
export function unlinkLocked(arena: Arena, tw: number, p: number): void {
  const i32 = arena.i32;
  const prev = i32[p + PT_PREV];
  const next = i32[p + PT_NEXT];
  if (prev) point(arena, prev, 1);
  if (next) point(arena, next, 1);
  if (prev) i32[prev + PT_NEXT] = next;
  else i32[tw + TL_HEAD] = next;
  if (next) i32[next + PT_PREV] = prev;
  else i32[tw + TL_TAIL] = prev;
  i32[p + PT_PREV] = 0;
  i32[p + PT_NEXT] = 0;
  i32[p + PT_LINKED] = 0;
}

/**
 * Ops of sw_sync points, registered in every thread that loads this module. `release` unlinks the
 * point under the timeline lock and drops its timeline reference (kernel timeline_fence_release).
 */
export const swSyncOps = defineFenceOps('sw_sync', {
  getDriverName: () => 'sw_sync',
  getTimelineName: (f: Fence) => readName(f.arena, timelineOf(f.arena, f.fw) + TL_NAME),
  signaled: (f: Fence) => {
    const i32 = f.arena.i32;
    return reached(i32[f.fw + F_SEQNO_LO], Atomics.load(i32, timelineOf(f.arena, f.fw) + TL_VALUE));
  },
  // Kernel timeline_fence_set_deadline: keep the earliest deadline asked for, under the lock.
  setDeadline: (f: Fence, ns: bigint) => {
    const arena = f.arena;
    const i32 = arena.i32;
    const tw = timelineOf(arena, f.fw);
    const at = (f.fw + PT_DEADLINE) >>> 1;
    lockTimeline(arena, tw);
    try {
      if (!(i32[f.fw + F_FLAGS] & PT_HAS_DEADLINE) || ns < arena.i64[at]) {
        // The value first, then the flag: getDeadline reads the flag under the same lock anyway.
        arena.i64[at] = ns;
        Atomics.or(i32, f.fw + F_FLAGS, PT_HAS_DEADLINE);
      }
    } finally {
      unlockTimeline(arena, tw);
    }
  },
  release: (f: Fence) => releasePoint(f.arena, f.fw),
});

/**
 * The timeline half of a point's release (ops.release; and the reaper's, for a thread terminated
 * inside it): unlinks it under the timeline lock and drops its timeline reference, clearing
 * PT_TIMELINE in the drop's run — so a half-done release says what is left (PT_LINKED: the
 * unlink; PT_TIMELINE ≠ 0: the drop), and a finished one does nothing again.
 */
export function releasePoint(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  if (i32[fw + PT_TIMELINE] === 0) return;
  const tw = timelineOf(arena, fw);
  lockTimeline(arena, tw);
  try {
    if (i32[fw + PT_LINKED]) unlinkLocked(arena, tw, fw);
  } finally {
    unlockTimeline(arena, tw);
  }
  timelinePut(arena, tw, fw + PT_TIMELINE, 0);
}

/**
 * Checks a point word read from a timeline's list (`hops`: how many more the walk may take):
 * returns `p`, or throws ENOTRECOVERABLE when it is no live fence block or the list does not end.
 */
export function point(arena: Arena, p: number, hops: number): number {
  if (hops <= 0) throw Errors.corruptArena('a timeline point list does not end');
  return linkedPayload(arena, p, A.BlockType.FENCE, 'timeline point');
}

/**
 * The point of timeline `tw` at `value`, with a reference for the caller recorded in the calling
 * thread's slot (T_SW_NEW, put with {@link putCreatedPoint}): an unsignaled one with that value is
 * reused, else a new one is linked into the sorted list (signaled at once when the counter already
 * reached it). Locking: the timeline lock held. Throws ENOMEM (nothing recorded).
 *
 * Kill-safe: the reference is recorded in the run that takes it (the reuse's compare-exchange, the
 * new point's allocation), the new point's timeline reference is named in PT_TIMELINE in the run
 * of its increment, and the link is plain writes ending with PT_LINKED. The reaper of a thread
 * terminated anywhere frees a block not initialised yet, or puts the reference, whose release
 * (releasePoint) unlinks the point and drops its timeline reference only if it had them.
 */
export function pointAtLocked(arena: Arena, tw: number, value: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const seq = value | 0;
  // The last point not later than `value`: the list is sorted, new points usually go last.
  let at = i32[tw + TL_TAIL];
  let hops = maxBlocks(arena);
  while (at !== 0 && ((seq - i32[point(arena, at, hops--) + F_SEQNO_LO]) | 0) < 0) at = i32[at + PT_PREV];
  // Same value: reuse it unless it is being released (then insert before it, as the kernel does).
  while (at !== 0 && i32[point(arena, at, hops--) + F_SEQNO_LO] === seq) {
    if (tryGetRecorded(i32, at, sb + T_SW_NEW, sb + T_SW_NEW_GEN)) return at;
    at = i32[at + PT_PREV];
  }
  const fw = allocPoint(arena);
  fenceInit(arena, fw, {
    opsId: swSyncOps.id, context: i32[tw + TL_CONTEXT], seqno: value, seqno64: false,
    lockIdx: tw + TL_LOCK, lenderHw: tw - BLOCK_HEADER_WORDS,
  });
  clearSignalerAt(i32, fw); // the timeline signals it (closed with its owner: see closeOrphanedTimelines)
  // The timeline reference and the word that says the point holds it: one run.
  Atomics.add(i32, tw + TL_KREF, 1);
  i32[fw + PT_TIMELINE] = tw;
  if (reached(seq, i32[tw + TL_VALUE])) {
    markSignaledLocked(arena, fw, nowNs()); // a new point has no callbacks yet
    return fw;
  }
  // The link: plain writes, no call, PT_LINKED last (a terminate() lands before all or after all).
  const next = at === 0 ? i32[tw + TL_HEAD] : i32[at + PT_NEXT];
  i32[fw + PT_PREV] = at;
  i32[fw + PT_NEXT] = next;
  if (at) i32[at + PT_NEXT] = fw;
  else i32[tw + TL_HEAD] = fw;
  if (next) i32[next + PT_PREV] = fw;
  else i32[tw + TL_TAIL] = fw;
  i32[fw + PT_LINKED] = 1;
  return fw;
}

/**
 * Allocates a point block, recorded in the calling thread's slot (T_SW_NEW) in the allocation's
 * run: plain writes after allocBlock returns, no call. They also mark it not initialised (flags
 * 0: the reaper frees it) and holding no timeline reference and no link (PT_TIMELINE, PT_LINKED
 * 0: its release, once initialised, touches no timeline). Throws ENOMEM (nothing recorded).
 */
function allocPoint(arena: Arena): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const fw = arena.allocBlock(PT_BLOCK, A.BlockType.FENCE) + BLOCK_HEADER_WORDS;
  i32[sb + T_SW_NEW_GEN] = i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  i32[sb + T_SW_NEW] = fw;
  i32[fw + F_FLAGS] = 0;
  i32[fw + PT_TIMELINE] = 0;
  i32[fw + PT_PREV] = 0;
  i32[fw + PT_NEXT] = 0;
  i32[fw + PT_LINKED] = 0;
  return fw;
}

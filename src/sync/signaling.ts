/**
 * Signaling an sw_sync timeline's points, kill-safe: `inc` and `close` (kernel sync_timeline_signal,
 * sw_sync release) signal the points one at a time, each with the fence's own signal record, and
 * name what they are doing in a timeline record of the calling thread's slot (struct `timeline
 * record`, T_SW), so that the reaper of a thread terminated anywhere inside finishes the work
 * (src/sync/timelinereap.ts) instead of losing those points' callbacks.
 *
 * Why one at a time (each point with callbacks; those without go in a row): the callbacks of a
 * point run after the timeline lock is dropped (a callback
 * may create points or increment), and a list held in the signaler's local memory is lost with
 * it. One point's list goes into a signal record (src/fence/signal.ts), which the reaper finishes;
 * the rest stay on the timeline's list, which any later walk — the reaper's — finishes, because
 * what is due is a function of the timeline alone: every point the counter reached, or every
 * point once the timeline is closed.
 */
import type { Arena } from '../arena/arena.js';
import { maxBlocks } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, Errno, NO_ERROR, rethrowFirst } from '../errors.js';
import { markSignaledLocked, nowNs } from '../fence/core.js';
import { runRecorded } from '../fence/signal.js';
import { lockTimeline, point, putRecorded, reached, tryGetRecorded, unlinkLocked, unlockTimeline } from './points.js';

const { TL_VALUE, TL_HEAD, TL_CLOSED, SW_CAP, SWR_TL, SWR_STATE, SWR_POINT, SWR_PGEN, SWR_WORDS, SWB_DOWN, SWB_WORDS, T_SW, T_SW_DEPTH, T_SW_MORE, T_SW_FREE, T_SW_FREE_GEN } = L;
const { F_SEQNO_LO, F_ERROR, F_FLAGS, F_CB_HEAD, FLAG_SIGNALED } = FL;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

const RECORD_BLOCK_BYTES = A.BLOCK_HEADER_BYTES + SWB_WORDS * 4;

/**
 * Pushes a timeline record `[tw, generation | bits]` (SWS_* bits) on the calling thread's stack
 * and returns its depth, for {@link timelineRecord} and {@link popTimelineRecord}. Past SW_CAP the
 * record is a block of its own (see {@link pushRecordBlock}). Plain writes after that allocation,
 * through the depth: a thread terminated at the call has recorded nothing and done nothing yet.
 * Throws ENOMEM (past SW_CAP only: nothing pushed).
 */
export function pushTimelineRecord(arena: Arena, tw: number, bits: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const d = i32[sb + T_SW_DEPTH];
  const r = d < SW_CAP ? sb + T_SW + d * SWR_WORDS : pushRecordBlock(arena);
  i32[r + SWR_TL] = tw;
  i32[r + SWR_STATE] = (i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK) | bits;
  i32[r + SWR_POINT] = 0;
  i32[r + SWR_PGEN] = 0;
  i32[sb + T_SW_DEPTH] = d + 1;
  return d;
}

/**
 * Allocates a record block for the next record past SW_CAP and stacks it on the slot's T_SW_MORE,
 * in the allocation's run (plain writes after allocBlock returns, no call — nor any in the caller
 * before its depth store). Its record words are the caller's to write. Throws ENOMEM (nothing
 * allocated).
 */
function pushRecordBlock(arena: Arena): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const r = arena.allocBlock(RECORD_BLOCK_BYTES, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
  i32[r + SWB_DOWN] = i32[sb + T_SW_MORE];
  i32[sb + T_SW_MORE] = r;
  return r;
}

/** Word index of the calling thread's timeline record at depth `d` (below its depth). */
export function timelineRecord(arena: Arena, d: number): number {
  const sb = arena.slotBase;
  if (d < SW_CAP) return sb + T_SW + d * SWR_WORDS;
  const i32 = arena.i32;
  let r = i32[sb + T_SW_MORE];
  for (let k = i32[sb + T_SW_DEPTH] - 1; k > d; k--) r = i32[r + SWB_DOWN];
  return r;
}

/**
 * Pops the calling thread's timeline records down to depth `d`, freeing their blocks (past
 * SW_CAP). Kill-safe: the depth and the unlink of a block are one run of plain writes, and the
 * block is named in T_SW_FREE (which the reaper frees if still live) until it is freed.
 */
export function popTimelineRecord(arena: Arena, d: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  for (let n = i32[sb + T_SW_DEPTH]; n > d; n--) {
    if (n <= SW_CAP) {
      i32[sb + T_SW_DEPTH] = d;
      return;
    }
    const r = i32[sb + T_SW_MORE];
    i32[sb + T_SW_DEPTH] = n - 1;
    i32[sb + T_SW_MORE] = i32[r + SWB_DOWN];
    i32[sb + T_SW_FREE_GEN] = i32[r - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
    i32[sb + T_SW_FREE] = r;
    arena.freeBlock(r - BLOCK_HEADER_WORDS);
    i32[sb + T_SW_FREE] = 0;
  }
  i32[sb + T_SW_DEPTH] = d;
}

/**
 * Signals, in list order, every point of timeline `tw` that is due — reached by the counter, or
 * any once the timeline is closed (those not reached with -ENOENT). Under the timeline lock, points
 * without callbacks are marked signaled and unlinked in a row; a point with callbacks ends the
 * hold: a reference is taken (recorded in timeline record `rec`), the point is marked
 * signaled with a signal record and unlinked, its callbacks run after the lock is dropped, then the
 * reference is dropped, and the walk goes on. Concurrent walks (another inc, a close, a reaper)
 * share the work. A throwing callback does not stop the others; the first error is rethrown at the
 * end. Locking: takes and drops the timeline lock once per point with callbacks (and once more).
 */
export function signalDue(arena: Arena, tw: number, rec: number): void {
  let first: unknown = NO_ERROR;
  // Every point is unlinked once, so a list longer than the heap has blocks is corrupted.
  const hops = { left: maxBlocks(arena) };
  for (;;) {
    let p = 0;
    let head = 0;
    let held = false;
    lockTimeline(arena, tw);
    try {
      p = nextWithCallbacks(arena, tw, hops);
      if (p !== 0) {
        // Like the kernel, hold a reference while the callbacks run outside the lock: the last
        // holder may put the point as soon as it sees it signaled. A point whose last reference
        // is already gone (dropped with callbacks pending) gets its callbacks run anyway.
        held = tryGetRecorded(arena.i32, p, rec + SWR_POINT, rec + SWR_PGEN);
        // Signaled before unlinked: a thread terminated between the two leaves it on the list,
        // where the reaper's walk finds it signaled and unlinks it.
        head = markSignaledLocked(arena, p, nowNs(), true, true);
        unlinkLocked(arena, tw, p);
      }
    } finally {
      unlockTimeline(arena, tw);
    }
    if (p === 0) break;
    if (head > 0) first = attempt(runRecorded, arena, head, 0, first);
    if (held) putRecorded(arena, p, rec + SWR_POINT);
  }
  rethrowFirst(first);
}

/**
 * With the timeline lock held: signals and unlinks the due points at the head of the list that
 * have no callbacks (waiters are woken), and returns the first due one with callbacks — its error
 * set, still unsignaled and linked — or 0 when no due point is left.
 */
function nextWithCallbacks(arena: Arena, tw: number, hops: { left: number }): number {
  const i32 = arena.i32;
  const ts = nowNs();
  for (;;) {
    const h = i32[tw + TL_HEAD];
    if (h === 0) return 0;
    point(arena, h, hops.left--);
    const due = reached(i32[h + F_SEQNO_LO], i32[tw + TL_VALUE]);
    if (!due && !i32[tw + TL_CLOSED]) return 0;
    if (!due && !(i32[h + F_FLAGS] & FLAG_SIGNALED)) i32[h + F_ERROR] = Errno.ENOENT;
    if (i32[h + F_CB_HEAD] !== 0) return h;
    // No list to detach (it cannot change under the lock): a record is pushed only for waiters,
    // and popped at once.
    markSignaledLocked(arena, h, ts, true, true);
    unlinkLocked(arena, tw, h);
  }
}

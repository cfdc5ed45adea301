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

const { TL_VALUE, TL_HEAD, TL_CLOSED, SW_CAP, SWR_TL, SWR_STATE, SWR_POINT, SWR_PGEN, SWR_WORDS, T_SW, T_SW_DEPTH } = L;
const { F_SEQNO_LO, F_ERROR, F_FLAGS, F_CB_HEAD, FLAG_SIGNALED } = FL;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

/**
 * Pushes a timeline record `[tw, generation | bits]` (SWS_* bits) on the calling thread's stack
 * and returns its depth, for {@link timelineRecord} and {@link popTimelineRecord}. Plain writes
 * only: a thread terminated at the call has recorded nothing and done nothing yet.
 */
export function pushTimelineRecord(arena: Arena, tw: number, bits: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const d = i32[sb + T_SW_DEPTH];
  if (d < SW_CAP) {
    const r = sb + T_SW + d * SWR_WORDS;
    i32[r + SWR_TL] = tw;
    i32[r + SWR_STATE] = (i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK) | bits;
    i32[r + SWR_POINT] = 0;
    i32[r + SWR_PGEN] = 0;
  }
  i32[sb + T_SW_DEPTH] = d + 1;
  return d;
}

/** Word index of the calling thread's timeline record at depth `d`, 0 past SW_CAP (not recorded). */
export function timelineRecord(arena: Arena, d: number): number {
  return d < SW_CAP ? arena.slotBase + T_SW + d * SWR_WORDS : 0;
}

/** Pops the calling thread's timeline records down to depth `d`. */
export function popTimelineRecord(arena: Arena, d: number): void {
  arena.i32[arena.slotBase + T_SW_DEPTH] = d;
}

/**
 * Signals, in list order, every point of timeline `tw` that is due — reached by the counter, or
 * any once the timeline is closed (those not reached with -ENOENT). Under the timeline lock, points
 * without callbacks are marked signaled and unlinked in a row; a point with callbacks ends the
 * hold: a reference is taken (recorded in timeline record `rec`, 0 none), the point is marked
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
        held = tryGetRecorded(arena.i32, p, rec === 0 ? 0 : rec + SWR_POINT, rec + SWR_PGEN);
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
    if (held) putRecorded(arena, p, rec === 0 ? 0 : rec + SWR_POINT);
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

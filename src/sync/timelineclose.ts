/**
 * Closing an sw_sync timeline: the last open reference's close (kernel sw_sync release: every
 * waiting point signaled with -ENOENT), and the close of a timeline while references remain — that
 * of the timelines a dead thread was responsible for (registered here as a reap hook of the sync
 * layer), and close() from a view of a thread holding no reference (src/sync/timeline.ts).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, NO_ERROR, rethrowFirst } from '../errors.js';
import { lockTimeline, timelinePut, unlockTimeline } from './points.js';
import { popTimelineRecord, pushTimelineRecord, signalDue, timelineRecord } from './signaling.js';

const { TL_FILE_REFS, TL_CLOSED, TL_OWNER, TL_OWNER_SERIAL, SWR_STATE, SWS_LAST, SWS_PUT } = L;
const { BLOCK_HEADER_WORDS } = A;

/** True when the calling thread is responsible for timeline `tw`. */
export function isOwner(arena: Arena, tw: number): boolean {
  const i32 = arena.i32;
  return i32[tw + TL_OWNER] === arena.slot + 1 && i32[tw + TL_OWNER_SERIAL] === i32[arena.slotBase + A.T_SERIAL];
}

/**
 * Closes timeline `tw` under the calling thread's timeline record at depth `d` (pushed by the
 * caller): every waiting point signaled, with -ENOENT unless the counter reached it (kernel
 * sw_sync release). With `last` (its last open reference is gone), the open state's struct
 * reference is put too, SWS_PUT set on the record in the put's run.
 * Locking: takes the timeline lock.
 */
export function closeLast(arena: Arena, tw: number, d: number, last: boolean): void {
  const i32 = arena.i32;
  const rec = timelineRecord(arena, d);
  lockTimeline(arena, tw);
  try {
    Atomics.store(i32, tw + TL_CLOSED, 1);
  } finally {
    unlockTimeline(arena, tw);
  }
  try {
    signalDue(arena, tw, rec);
  } finally {
    if (last) timelinePut(arena, tw, rec + SWR_STATE, i32[rec + SWR_STATE] | SWS_PUT);
  }
}

/**
 * Reap hook: the timelines the dead thread of `slot` was responsible for are closed (points
 * -ENOENT: nobody is left to advance them); the other holders' views throw EBADF from then on, and
 * their close() drops their references. Its own open references were its ledger's entries, dropped
 * at stage LEDGER before this one ({@link dropOpenRef}).
 */
function closeOrphanedTimelines(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: the thread is alive
  const i32 = arena.i32;
  const who = slot + 1;
  const serial = i32[arena.slotWord(slot) + A.T_SERIAL];
  const found: number[] = [];
  arena.walk((hw, _size, state, type) => {
    const tw = hw + BLOCK_HEADER_WORDS;
    if (state === A.STATE_LIVE && type === A.BlockType.TIMELINE && i32[tw + TL_OWNER] === who && i32[tw + TL_OWNER_SERIAL] === serial) found.push(tw);
  });
  let first: unknown = NO_ERROR;
  for (const tw of found) {
    if (Atomics.compareExchange(i32, tw + TL_OWNER, who, 0) !== who) continue;
    // Closed while the open state's reference keeps it (the other holders', or a point's if none).
    first = attempt(closeUnder, arena, tw, 0, first);
  }
  rethrowFirst(first);
}
onReap(ReapStage.SIGNALERS, closeOrphanedTimelines);

/** {@link closeLast} of a timeline, under a record of its own: `bits` SWS_LAST to put the open state's reference too. */
function closeUnder(arena: Arena, tw: number, bits: number): void {
  const d = pushTimelineRecord(arena, tw, bits);
  try {
    closeLast(arena, tw, d, bits !== 0);
  } finally {
    popTimelineRecord(arena, d);
  }
}

/**
 * Drops an open reference of timeline `tw` that nobody's ledger records any more — a dead thread's
 * ledger entry, or a dead sender's unreceived transit record — as close() would: the last one
 * closes the timeline (points -ENOENT) and puts the open state's reference. Threads: a reaper.
 */
export function dropOpenRef(arena: Arena, tw: number): void {
  if (Atomics.sub(arena.i32, tw + TL_FILE_REFS, 1) === 1) closeUnder(arena, tw, SWS_LAST);
}

/**
 * Closing an sw_sync timeline: the last open reference's close (kernel sw_sync release: every
 * waiting point signaled with -ENOENT), and the close of the timelines a dead thread was
 * responsible for (registered here as a reap hook of the sync layer).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, Errno, NO_ERROR, rethrowFirst } from '../errors.js';
import { lockTimeline, runCollected, signalLocked, timelinePut, unlockTimeline } from './points.js';

const { TL_FILE_REFS, TL_CLOSED, TL_OWNER, TL_OWNER_SERIAL } = L;
const { BLOCK_HEADER_WORDS } = A;

/** True when the calling thread is responsible for timeline `tw`. */
export function isOwner(arena: Arena, tw: number): boolean {
  const i32 = arena.i32;
  return i32[tw + TL_OWNER] === arena.slot + 1 && i32[tw + TL_OWNER_SERIAL] === i32[arena.slotBase + A.T_SERIAL];
}

/**
 * Closes timeline `tw`: every waiting point signaled with -ENOENT (kernel sw_sync release). With
 * `last` 1 (its last open reference is gone), the open state's struct reference is put too.
 * Locking: takes the timeline lock.
 */
export function closeLast(arena: Arena, tw: number, last: number): void {
  const i32 = arena.i32;
  let run: number[] | null;
  lockTimeline(arena, tw);
  try {
    Atomics.store(i32, tw + TL_CLOSED, 1);
    run = signalLocked(arena, tw, 0, true, Errno.ENOENT);
  } finally {
    unlockTimeline(arena, tw);
  }
  try {
    runCollected(arena, run);
  } finally {
    if (last !== 0) timelinePut(arena, tw);
  }
}

/**
 * Reap hook: the timelines the dead thread of `slot` was responsible for are closed (points
 * -ENOENT: nobody is left to advance them) and its open reference is dropped; the other holders'
 * views throw EBADF from then on, and their close() drops their references.
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
    // Closed while the dead owner's reference still keeps it open, then that reference dropped.
    first = attempt(closeLast, arena, tw, 0, first);
    if (Atomics.sub(i32, tw + TL_FILE_REFS, 1) === 1) timelinePut(arena, tw);
  }
  rethrowFirst(first);
}
onReap(ReapStage.SIGNALERS, closeOrphanedTimelines);

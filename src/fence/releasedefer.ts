/**
 * Releases nested deeper than RELEASE_INLINE (src/fence/layout.ts): a last put that nests that
 * deep and whose release would run code (callbacks, ops.release) is deferred to the calling
 * thread's deferred release list, which the release at the last inline depth runs under its own
 * record before it returns (the kernel's irq_work idea, as signals do past SIGNAL_INLINE), so no
 * release runs without a record; and the reaper's half: a dead thread's list, released once.
 *
 * This module sits below release.ts, which installs the release itself (setDeferHook).
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { pushRelease } from './drop.js';
import * as L from './layout.js';

const { F_REFCOUNT, releaseRecord, REC_FW, REC_STATE, REL_DROPPED, RELEASE_CAP, RELEASE_INLINE, T_RELEASE_DEFER, T_RELEASE_DEFER_TAIL, T_RELEASE_DEPTH } = L;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

/** The release of a fence whose last reference was dropped under record `depth` (release.ts's releaseFenceAt). */
let releaseAt: (arena: Arena, fw: number, depth: number) => void = () => {
  throw Errors.invalid('deferred releases are run by src/fence/release.js, which this thread has not loaded');
};
/** @internal release.ts installs the release at load. */
export function setDeferHook(release: (arena: Arena, fw: number, depth: number) => void): void {
  releaseAt = release;
}

/**
 * A release nested deeper than RELEASE_INLINE that would run code (callbacks, ops.release), under
 * record `d` (the last, marked dropped): the fence joins the end of the calling thread's deferred
 * list (T_RELEASE_DEFER) and the record is popped, in one run of plain writes, so a reaper finds
 * the dropped fence in exactly one of the two places; the release at depth RELEASE_INLINE - 1 runs
 * it (runDeferredReleases) before it returns, so nesting never passes the records. The list
 * links each fence to the next through its refcount word, as -next (0 ends it, the count the drop
 * left): a fence on it has no reference, and every get-unless-zero refuses a count ≤ 0 as it
 * refuses 0 (nobody else writes the word of a fence without references).
 */
export function deferRelease(arena: Arena, fw: number, d: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const tail = i32[sb + T_RELEASE_DEFER_TAIL];
  if (i32[sb + T_RELEASE_DEFER] !== 0) i32[tail + F_REFCOUNT] = -fw;
  else i32[sb + T_RELEASE_DEFER] = fw;
  i32[sb + T_RELEASE_DEFER_TAIL] = fw;
  i32[sb + T_RELEASE_DEPTH] = d;
}

/*
 * The arena whose deferred releases this thread is running (runDeferredReleases), so that the
 * releases it runs at depth RELEASE_INLINE - 1 leave the rest of the list to its loop instead of
 * each running it nested (constant stack depth, however long the list). Saved and restored.
 */
let drainArena: Arena | null = null;

/**
 * The end of a release under record `d` whose ops.release or callbacks ran (`first`: its error,
 * or NO_ERROR): at depth RELEASE_INLINE - 1 the releases they deferred run now, unless this is
 * one of them. Then the first error is rethrown.
 */
export function runDeferredAt(arena: Arena, d: number, first: unknown): void {
  if (d === RELEASE_INLINE - 1 && drainArena !== arena) first = attempt(runDeferredReleases, arena, d, 0, first);
  rethrowFirst(first);
}

/**
 * Runs the calling thread's deferred releases under record `d` (RELEASE_INLINE - 1, popped by
 * the release that ran there), first in, first out, until the releases they run defer no more.
 * Each fence moves from the list into the record, marked dropped, with its refcount word (the
 * list's link) back to 0, in one run of plain writes: a thread terminated anywhere leaves each
 * dropped fence named by the list or by a record, never both. A release that throws does not
 * stop the others; the first error is rethrown.
 */
function runDeferredReleases(arena: Arena, d: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const q = sb + T_RELEASE_DEFER;
  // Word indices computed before the loop: a call inside the move would split its run.
  const recFw = releaseRecord(sb, d, REC_FW);
  const recState = releaseRecord(sb, d, REC_STATE);
  const saved = drainArena;
  drainArena = arena;
  let first: unknown = NO_ERROR;
  let hops = maxBlocks(arena);
  try {
    for (let fw = i32[q]; fw !== 0; fw = i32[q]) {
      if (hops-- === 0) throw Errors.corruptArena('the deferred release list does not end');
      const next = deferredNext(arena, fw);
      const state = (i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK) | REL_DROPPED;
      i32[recFw] = fw;
      i32[recState] = state;
      i32[sb + T_RELEASE_DEPTH] = d + 1;
      i32[fw + F_REFCOUNT] = 0;
      i32[q] = next;
      if (next === 0) i32[sb + T_RELEASE_DEFER_TAIL] = 0;
      first = attempt(releaseAt, arena, fw, d, first);
    }
  } finally {
    drainArena = saved;
  }
  rethrowFirst(first);
}

/**
 * The fence after `fw` on a deferred release list (0: none), read from `fw`'s refcount word and
 * checked: a corrupted link is ENOTRECOVERABLE, not a release of a random block.
 */
function deferredNext(arena: Arena, fw: number): number {
  const link = arena.i32[fw + F_REFCOUNT];
  if (link > 0) throw Errors.corruptArena(`fence @${fw * 4} on a deferred release list has refcount ${link}`);
  return link === 0 ? 0 : linkedPayload(arena, -link, A.BlockType.FENCE, 'deferred release');
}

/**
 * Reap step: the releases on dead thread slot `b`'s deferred list, first in first out: each fence
 * is taken off the list (its refcount word, the link, back to 0) and released as
 * {@link releaseDropped}. The list is the reaper's from here (the dead thread never touches it
 * again); a release that throws does not stop the others.
 */
export function finishDeadDeferred(arena: Arena, b: number): void {
  const i32 = arena.i32;
  let first: unknown = NO_ERROR;
  let hops = maxBlocks(arena);
  for (let fw = i32[b + T_RELEASE_DEFER]; fw !== 0; fw = i32[b + T_RELEASE_DEFER]) {
    if (hops-- === 0) throw Errors.corruptArena("a dead thread's deferred release list does not end");
    const next = deferredNext(arena, fw);
    i32[b + T_RELEASE_DEFER] = next;
    if (next === 0) i32[b + T_RELEASE_DEFER_TAIL] = 0;
    i32[fw + F_REFCOUNT] = 0;
    first = attempt(releaseDropped, arena, fw, 0, first);
  }
  rethrowFirst(first);
}

/** A dead thread's drop of the last reference on `fw` becomes ours: recorded as dropped on our own stack, then released. */
export function releaseDropped(arena: Arena, fw: number): void {
  const d = pushRelease(arena, fw);
  if (d < RELEASE_CAP) arena.i32[releaseRecord(arena.slotBase, d, REC_STATE)] |= REL_DROPPED;
  releaseAt(arena, fw, d);
}

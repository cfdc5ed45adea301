/**
 * Chain walk records: the fence references a chain walk holds — a re-arm's (armChain in chain.ts),
 * a signaled-query's (chainSignaled), a deadline's (chainSetDeadline), and an array's arming of its
 * children (withArmingRecord in arraychildren.ts, whose cut-off arming the reap finishes) — named in the calling
 * thread's slot (T_WALK, T_WALK_DEPTH of containers/layout.ts). A record's
 * word is set in the run that takes its reference and cleared in the run that drops it or hands
 * it over, so the reaper of a thread terminated inside a walk drops exactly the references its
 * records name (the CHAIN_WALKS reap stage).
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload } from '../arena/handles.js';
import { onCheck, onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, NO_ERROR, rethrowFirst } from '../errors.js';
import { putFenceAt } from '../fence/release.js';

const { T_WALK, T_WALK_DEPTH, W_LINK, W_PREV, W_AUX, W_STEP, W_ARMING, W_WORDS, WALK_CAP } = L;
const { F_REFCOUNT } = FL;

/** Takes a reference on `fw`, naming it in word `at` (0 none) in the same run. */
export function getAt(i32: Int32Array, fw: number, at: number): void {
  Atomics.add(i32, fw + F_REFCOUNT, 1);
  if (at !== 0) i32[at] = fw;
}

/**
 * Pushes a chain walk record on the calling thread's stack: its words are cleared (every pop
 * leaves them so; cleared again for a slot's first use) before the depth counts it, in one run.
 * Returns the record's word, or 0 when WALK_CAP are in use (counted, not recorded).
 */
function pushWalk(arena: Arena): number {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const d = i32[b + T_WALK_DEPTH];
  const rec = d < WALK_CAP ? b + T_WALK + d * W_WORDS : 0;
  if (rec !== 0) {
    i32[rec + W_LINK] = 0;
    i32[rec + W_PREV] = 0;
    i32[rec + W_AUX] = 0;
    i32[rec + W_STEP] = 0;
  }
  i32[b + T_WALK_DEPTH] = d + 1;
  return rec;
}

/** Pops the calling thread's innermost chain walk record (its words all cleared by then). */
function popWalk(arena: Arena): void {
  arena.i32[arena.slotBase + T_WALK_DEPTH]--;
}

/**
 * Runs `walk` under a chain walk record pushed for it (0 when WALK_CAP are in use: the walk is
 * counted, not recorded, and drops what it holds itself on a throw), and pops the record after.
 * On a throw the references the record still names are dropped here; the walk's error is the one
 * reported (a failed drop's is dropped with it).
 */
export function inWalkRecord<T>(arena: Arena, walk: (rec: number) => T): T {
  const rec = pushWalk(arena);
  try {
    return walk(rec);
  } catch (e) {
    if (rec !== 0) attempt(dropWalk, arena, rec, 0, e);
    throw e;
  } finally {
    popWalk(arena);
  }
}

/**
 * Drops every reference chain walk record `rec` names, each word cleared in its drop's run; the
 * first error is rethrown once all were tried.
 */
function dropWalk(arena: Arena, rec: number): void {
  let first: unknown = NO_ERROR;
  for (const w of [W_AUX, W_PREV, W_LINK]) first = attempt(putWalkRef, arena, rec + w, 0, first);
  rethrowFirst(first);
}

/** Drops the reference walk record word `at` names, if any (a step for `attempt`). */
function putWalkRef(arena: Arena, at: number): void {
  const i32 = arena.i32;
  if (i32[at] === 0) return;
  // Read from shared memory: checked, so a corrupted word is ENOTRECOVERABLE, not a put at random.
  const fw = linkedPayload(arena, i32[at], A.BlockType.FENCE, 'a chain walk reference');
  putFenceAt(arena, fw, at);
}

/** What finishes an array's arming cut off under walk record `rec` of a dead thread (arraychildren.ts). */
type ArmingReaper = (arena: Arena, rec: number) => void;
let armingReaper: ArmingReaper | null = null;

/** Installs the reaper of a cut-off array arming (arraychildren.ts, which imports this module). */
export function setArmingReaper(fn: ArmingReaper): void {
  armingReaper = fn;
}

/**
 * Reap hook (CHAIN_WALKS): drops the references the chain walks of the dead thread of `slot`
 * still held, innermost record first. Nothing for a detaching thread (it detaches between calls).
 */
function dropWalkRecords(arena: Arena, slot: number): void {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const n = Math.min(i32[b + T_WALK_DEPTH], WALK_CAP);
  let first: unknown = NO_ERROR;
  for (let d = n - 1; d >= 0; d--) {
    const rec = b + T_WALK + d * W_WORDS;
    // An array's arming cut off: finished first, while the record's reference keeps the array.
    if (i32[rec + W_STEP] & W_ARMING && armingReaper !== null) first = attempt(armingReaper, arena, rec, 0, first);
    first = attempt(dropWalk, arena, rec, 0, first);
  }
  i32[b + T_WALK_DEPTH] = 0;
  rethrowFirst(first);
}
onReap(ReapStage.CHAIN_WALKS, dropWalkRecords);

/** Check hook: a thread between calls has no chain walk in flight. */
onCheck((arena) => {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const problems: string[] = [];
  if (i32[b + T_WALK_DEPTH] !== 0) problems.push(`thread ${arena.slot} has ${i32[b + T_WALK_DEPTH]} chain walk records in flight`);
  return { problems };
});

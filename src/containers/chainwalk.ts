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
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { onCheck, onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, Errors, FenceError, NO_ERROR, rethrowFirst } from '../errors.js';
import { putFenceAt } from '../fence/release.js';

const { T_WALK, T_WALK_DEPTH, T_WALK_MORE, T_WALK_FREE, T_WALK_FREE_GEN, W_LINK, W_PREV, W_AUX, W_STEP, W_ARMING, W_WORDS, WB_DOWN, WB_LEVEL, WB_WORDS, WALK_CAP } = L;
const { F_REFCOUNT } = FL;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;
const WALK_BLOCK_BYTES = A.BLOCK_HEADER_BYTES + WB_WORDS * 4;

/** Takes a reference on `fw`, naming it in word `at` (0 none) in the same run. */
export function getAt(i32: Int32Array, fw: number, at: number): void {
  Atomics.add(i32, fw + F_REFCOUNT, 1);
  if (at !== 0) i32[at] = fw;
}

/**
 * Pushes a chain walk record on the calling thread's stack: its words are cleared (every pop
 * leaves them so; cleared again for a slot's first use) before the depth counts it, in one run.
 * Past WALK_CAP the record is a block of its own (see {@link pushWalkBlock}). Returns the record's
 * word, or 0 when a block was needed and the arena has no room for one (counted, not recorded).
 */
function pushWalk(arena: Arena): number {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const d = i32[b + T_WALK_DEPTH];
  const rec = d < WALK_CAP ? b + T_WALK + d * W_WORDS : pushWalkBlock(arena, d);
  if (rec !== 0) {
    i32[rec + W_LINK] = 0;
    i32[rec + W_PREV] = 0;
    i32[rec + W_AUX] = 0;
    i32[rec + W_STEP] = 0;
  }
  i32[b + T_WALK_DEPTH] = d + 1;
  return rec;
}

/**
 * Allocates the record block of walk depth `d` (WALK_CAP or more) and stacks it on the slot's
 * T_WALK_MORE, in the allocation's run (plain writes after allocBlock returns, no call — nor any
 * in pushWalk before its depth store). Returns its payload word, or 0 without room: the walk then
 * runs unrecorded, as it would have before blocks (ENOMEM refuses nothing a caller started).
 */
function pushWalkBlock(arena: Arena, d: number): number {
  const i32 = arena.i32;
  const b = arena.slotBase;
  let hw: number;
  try {
    hw = arena.allocBlock(WALK_BLOCK_BYTES, A.BlockType.INTERNAL);
  } catch (e) {
    if (e instanceof FenceError && e.code === 'ENOMEM') return 0;
    throw e;
  }
  const r = hw + BLOCK_HEADER_WORDS;
  i32[r + WB_DOWN] = i32[b + T_WALK_MORE];
  i32[r + WB_LEVEL] = d;
  i32[b + T_WALK_MORE] = r;
  return r;
}

/**
 * Pops the calling thread's innermost chain walk record (its words all cleared by then), freeing
 * its block past WALK_CAP. Kill-safe: the depth and the unlink of a block are one run of plain
 * writes, and the block is named in T_WALK_FREE (which the reaper frees if still live) until it is.
 */
function popWalk(arena: Arena): void {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const d = i32[b + T_WALK_DEPTH] - 1;
  const r = i32[b + T_WALK_MORE];
  if (d < WALK_CAP || r === 0 || i32[r + WB_LEVEL] !== d) {
    i32[b + T_WALK_DEPTH] = d; // in the slot, or unrecorded
    return;
  }
  i32[b + T_WALK_DEPTH] = d;
  i32[b + T_WALK_MORE] = i32[r + WB_DOWN];
  i32[b + T_WALK_FREE_GEN] = i32[r - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  i32[b + T_WALK_FREE] = r;
  arena.freeBlock(r - BLOCK_HEADER_WORDS);
  i32[b + T_WALK_FREE] = 0;
}

/**
 * Runs `walk` under a chain walk record pushed for it (0 when its depth needed a block and the
 * arena had none: the walk is counted, not recorded, and drops what it holds itself on a throw),
 * and pops the record after.
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
 * The chain walk record blocks stacked on the slot at word `b`, by the depth each records: each
 * checked to be a live INTERNAL block (the stack cannot be longer than the heap has blocks).
 */
function walkBlocks(arena: Arena, b: number): Map<number, number> {
  const i32 = arena.i32;
  const byLevel = new Map<number, number>();
  for (let r = i32[b + T_WALK_MORE]; r !== 0; r = i32[r + WB_DOWN]) {
    if (byLevel.size >= maxBlocks(arena)) throw Errors.corruptArena(`the chain walk record blocks of the slot at word ${b} do not end`);
    const rec = linkedPayload(arena, r, A.BlockType.INTERNAL, 'chain walk record block');
    byLevel.set(i32[rec + WB_LEVEL], rec);
  }
  return byLevel;
}

/**
 * The chain walk records of the thread of slot `slot`, innermost first: the slot's up to WALK_CAP,
 * its record blocks past it. A depth with neither (a walk the arena had no block for) has no entry.
 */
export function walkRecords(arena: Arena, slot: number): number[] {
  const b = arena.slotWord(slot);
  return recordsOf(arena, b, walkBlocks(arena, b));
}

/** {@link walkRecords} of the slot at word `b`, whose record blocks by depth are `blocks`. */
function recordsOf(arena: Arena, b: number, blocks: Map<number, number>): number[] {
  const out: number[] = [];
  for (let d = arena.i32[b + T_WALK_DEPTH] - 1; d >= 0; d--) {
    const rec = d < WALK_CAP ? b + T_WALK + d * W_WORDS : blocks.get(d);
    if (rec !== undefined) out.push(rec);
  }
  return out;
}

/**
 * Reap hook (CHAIN_WALKS): drops the references the chain walks of the dead thread of `slot`
 * still held, innermost record first, and frees its record blocks (and one it was freeing).
 * Nothing for a detaching thread (it detaches between calls).
 */
function dropWalkRecords(arena: Arena, slot: number): void {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const freeing = i32[b + T_WALK_FREE];
  if (freeing !== 0 && arena.isLive(freeing - BLOCK_HEADER_WORDS, i32[b + T_WALK_FREE_GEN])) arena.freeBlock(freeing - BLOCK_HEADER_WORDS);
  i32[b + T_WALK_FREE] = 0;
  const blocks = walkBlocks(arena, b);
  let first: unknown = NO_ERROR;
  for (const rec of recordsOf(arena, b, blocks)) {
    // An array's arming cut off: finished first, while the record's reference keeps the array.
    if (i32[rec + W_STEP] & W_ARMING && armingReaper !== null) first = attempt(armingReaper, arena, rec, 0, first);
    first = attempt(dropWalk, arena, rec, 0, first);
  }
  i32[b + T_WALK_DEPTH] = 0;
  i32[b + T_WALK_MORE] = 0;
  for (const rec of blocks.values()) arena.freeBlock(rec - BLOCK_HEADER_WORDS);
  rethrowFirst(first);
}
onReap(ReapStage.CHAIN_WALKS, dropWalkRecords);

/** Check hook: a thread between calls has no chain walk in flight. */
onCheck((arena) => {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const problems: string[] = [];
  if (i32[b + T_WALK_DEPTH] !== 0) problems.push(`thread ${arena.slot} has ${i32[b + T_WALK_DEPTH]} chain walk records in flight`);
  if (i32[b + T_WALK_MORE] !== 0) problems.push(`thread ${arena.slot} has a chain walk record block left (@${i32[b + T_WALK_MORE] * 4})`);
  return { problems };
});

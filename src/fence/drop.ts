/**
 * The kill-safe reference drop: every site that drops a fence reference does it with
 * {@link pushRelease} and {@link dropRef}, so that a thread terminated anywhere leaves its reaper
 * either a reference still held (and still recorded wherever the site records it) or a drop that
 * is recorded, whose release the reaper finishes (src/fence/release.ts).
 *
 * Where terminate() can land: worker.terminate() runs none of the worker's code; it stops it at
 * the next interrupt check, which V8 makes at function entries, loop back-edges and at an Atomics
 * call before it runs — never at a return and never between plain writes. Measured on Node 20 in
 * the interpreter, the baseline compiler and optimized code: 'plain write; Atomics.add' split in
 * nearly every one of 300 kills; 'Atomics.add; plain write' and 'Atomics.add; return; plain write'
 * in none of 900. So a run that starts with the Atomics op and goes on with plain writes (across a
 * return, but through no call) happens whole or not at all.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';

// Module constants, not namespace loads: the put path inlines these functions, and optimized code
// folds a module's own constants (see releaseRecord).
const { releaseRecord, REC_FW, REC_STATE, RELEASE_CAP, REL_DROPPED, T_RELEASE_DEPTH, F_REFCOUNT } = L;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

/**
 * Pushes a release record for `fw` on the calling thread's stack as an intent (not dropped yet)
 * and returns its depth, for {@link dropRef}. Records deeper than RELEASE_CAP are counted only.
 * Threads: the dropping thread. Plain writes only.
 */
export function pushRelease(arena: Arena, fw: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const d = i32[sb + T_RELEASE_DEPTH];
  if (d < RELEASE_CAP) {
    i32[releaseRecord(sb, d, REC_FW)] = fw;
    i32[releaseRecord(sb, d, REC_STATE)] = i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  }
  i32[sb + T_RELEASE_DEPTH] = d + 1;
  return d;
}

/**
 * Drops one reference on `fw` under release record `d` (just pushed by {@link pushRelease}) and
 * records the drop in the same run: the site's own record `i32[at] = value` (`at` 0: none), then
 * REL_DROPPED on the record when it was the last reference (the caller then releases the fence
 * under `d`: releaseFenceAt, which pops it) or else the pop. Returns the refcount before the drop
 * (below 1: the caller's put was wrong; the record is popped, the caller undoes the drop).
 *
 * Why the shape: the Atomics.sub comes first and only plain writes follow it, so a terminate()
 * lands before the drop (at this function's entry, or at the Atomics call: the record is an
 * intent the reaper ignores) or after all its records. The record's word index is computed
 * before the drop: releaseRecord is a call, and a call after the drop would open a window. The
 * caller may add plain writes right after the return (a return is no interrupt point), but no
 * call before them. Small enough to be inlined.
 */
export function dropRef(arena: Arena, fw: number, d: number, at: number, value: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const state = d < RELEASE_CAP ? releaseRecord(sb, d, REC_STATE) : 0;
  const old = Atomics.sub(i32, fw + F_REFCOUNT, 1);
  if (at !== 0) i32[at] = value;
  if (old !== 1) i32[sb + T_RELEASE_DEPTH] = d;
  else if (state !== 0) i32[state] |= REL_DROPPED;
  return old;
}

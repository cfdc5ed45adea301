/**
 * What a dead thread held of the fence inline locks: they are not robust-listed (their hot path is
 * one CAS), so its reap finds them by walking the heap, releases them marked owner-died and keeps
 * which fences they were for the signaler (a thread killed inside a signal held the fence's lock).
 * Registered when core.ts loads.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import { releaseDeadWord, takenWords } from '../locks/owners.js';
import * as L from './layout.js';

const { F_FLAGS, F_LOCK, FLAG_INLINE_LOCK } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * Reap hook: fence inline locks are not robust-listed (their hot path is one CAS), but they sit at
 * a known place in every fence block, so the heap walk finds the ones the dead thread held.
 */
function releaseDeadInlineLocks(arena: Arena, slot: number): void {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const dead = slot + 1;
  const held: number[] = [];
  // Inline words a waiter took over before this reap (src/locks/owners.ts) were held at death too.
  const taken = new Set(takenWords(i32, arena.slotWord(slot)));
  arena.walk((hw, _size, state, type) => {
    const fw = hw + BLOCK_HEADER_WORDS;
    if (state !== A.STATE_LIVE || type !== A.BlockType.FENCE || !(i32[fw + F_FLAGS] & FLAG_INLINE_LOCK)) return;
    if ((Atomics.load(i32, fw + F_LOCK) & K.LOCK_OWNER_MASK) === dead || taken.has(fw + F_LOCK)) held.push(fw, i32[hw + A.B_GEN] & A.GEN_MASK);
    releaseDeadWord(i32, fw + F_LOCK, dead);
  });
  heldAtDeath.set(slot, held);
}

/** Per dead slot being reaped: the fences whose inline lock it held ([fw, generation] pairs). */
const heldAtDeath = new Map<number, number[]>();

/**
 * The fences whose inline lock the thread of dead slot `slot` held when it died, as
 * `[fw, generation]` pairs, collected by this reap's LOCKS stage; forgotten once read. A thread
 * killed inside a signal held the fence's lock (src/fence/signaler.ts reads this).
 */
export function takeHeldAtDeath(slot: number): number[] {
  const held = heldAtDeath.get(slot) ?? [];
  heldAtDeath.delete(slot);
  return held;
}
onReap(ReapStage.LOCKS, releaseDeadInlineLocks);

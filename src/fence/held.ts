/**
 * Whether the calling thread holds a fence's lock word (its own inline word or the borrowed one):
 * below release.ts and signal.ts, which both refuse what cannot be done under it (a last put, an
 * enable a wait would rely on) with EDEADLK. A borrowed word index read from shared memory is
 * bounds-checked before it is read through.
 */
import type { Arena } from '../arena/arena.js';
import { LOCK_OWNER_MASK } from '../locks/layout.js';
import { FH } from './hot.js';
import './hot.js'; // its load-time check of FH (tsc drops the import above: const enum members only)

/** True when the calling thread holds the lock word fence `fw` takes (its own or a borrowed one). */
export function holdsFenceLock(arena: Arena, fw: number): boolean {
  return holdsLockWord(arena, fw, arena.i32[fw + FH.F_FLAGS]);
}

/** {@link holdsFenceLock} with the fence's flags in hand (INLINE_LOCK never changes after init). */
export function holdsLockWord(arena: Arena, fw: number, flags: number): boolean {
  const i32 = arena.i32;
  const lw = flags & FH.FLAG_INLINE_LOCK ? fw + FH.F_LOCK : i32[fw + FH.F_LOCK];
  return lw > 0 && lw < i32.length && (Atomics.load(i32, lw) & LOCK_OWNER_MASK) === arena.me;
}

/**
 * What a waiter may conclude from the owner field of a lock word it has waited on for a while.
 *
 * A wait with a deadline is bounded by it, whatever the word holds. A wait without one would spin
 * or sleep forever on a word that names a holder who cannot exist — random bytes, a word freed and
 * reused by other data — so such a wait watches the owner field and gives up with
 * ENOTRECOVERABLE (the robust-mutex name for a lock no one can bring back) when it names
 *  - a thread slot beyond the arena's thread table (impossible: decided at once), or
 *  - a free thread slot for ORPHAN_GRACE_MS of consecutive checks. A live holder's slot is never
 *    free (detach refuses while locks are held, and the reaper releases a dead thread's words
 *    before it frees the slot), so one check can only see it during a release-free-register race
 *    of a few instructions; a quarter second of them is corruption.
 *
 * Word-level like futex.ts: the arena's own free-list locks use it through futexLock.
 */
import { H_MAX_THREADS, H_THREAD_STRIDE, H_THREAD_TABLE, MAX_THREADS_LIMIT, SLOT_FREE, T_STATE } from '../arena/layout.js';
import { Errors } from '../errors.js';
import { LOCK_OWNER_MASK } from './layout.js';

/** How long a word may name a free thread slot as its holder before a wait without deadline gives up. */
export const ORPHAN_GRACE_MS = 250;

/** Word index of thread slot `s`'s base. */
export function slotBaseOf(i32: Int32Array, s: number): number {
  return i32[H_THREAD_TABLE] + s * i32[H_THREAD_STRIDE];
}

/** Thread slots of the arena (bounded even when the header is garbage). */
export function slotCount(i32: Int32Array): number {
  return Math.min(i32[H_MAX_THREADS], MAX_THREADS_LIMIT);
}

/**
 * One check of a wait without deadline on word `idx`, which holds `w` at performance.now() `now`.
 * `since` is what the previous check returned (-1 the first time). Returns the value to pass to the
 * next check. Throws ENOTRECOVERABLE when the owner field names no possible holder (see above);
 * the caller undoes what it had begun (a ticket) before letting it through.
 */
export function watchOwner(i32: Int32Array, idx: number, w: number, now: number, since: number): number {
  const owner = w & LOCK_OWNER_MASK;
  if (owner === 0) return -1;
  const slots = slotCount(i32);
  if (owner > slots) throw Errors.corruptLock(idx, w, `its owner field names thread ${owner - 1}; the arena has ${slots} thread slots`);
  if (Atomics.load(i32, slotBaseOf(i32, owner - 1) + T_STATE) !== SLOT_FREE) return -1;
  if (since < 0) return now;
  if (now - since >= ORPHAN_GRACE_MS)
    throw Errors.corruptLock(idx, w, `its owner field names thread ${owner - 1}, whose slot has been free for ${Math.round(now - since)} ms`);
  return since;
}

/**
 * The fence lock by payload word (kernel dma_fence_lock_irqsave / unlock_irqrestore /
 * dma_fence_assert_held): the inline word or the borrowed one, through the lock kind's algorithm,
 * and in a sanitizing arena through the lock-order checker. Fence.lock/unlock's fast paths
 * (src/fence/fencebase.ts) come here for everything else.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { contextClass, lockdepAcquired, lockdepCheck, lockdepFirst, lockdepReleased, wordClass } from '../locks/lockdep.js';
import { ACQ_TIMEOUT, acquireInline, acquireWord, releaseInline, releaseInlineExchanged, releaseWord } from '../locks/lockword.js';

const { F_FLAGS, F_LOCK, F_LENDER, F_LENDER_GEN, F_CONTEXT, FLAG_INLINE_LOCK } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * Word index of the fence's lock word: its own (inline), or the borrowed one — which the
 * sanitizer checks is still inside the live block it was borrowed from.
 */
export function fenceLockIndex(arena: Arena, fw: number, check = true): number {
  const i32 = arena.i32;
  if (i32[fw + F_FLAGS] & FLAG_INLINE_LOCK) return fw + F_LOCK;
  if (check && arena.sanitize) {
    arena.checkAccess(i32[fw + F_LENDER], i32[fw + F_LENDER_GEN], 'fence-lock', arena.handleOf(fw - BLOCK_HEADER_WORDS));
  }
  return i32[fw + F_LOCK];
}

/**
 * Takes the fence lock (kernel dma_fence_lock_irqsave). Returns false on timeout, true otherwise;
 * `ownerDied` outcomes count as acquired. Throws EDEADLK when the caller already holds it, ENOLCK
 * when a borrowed lock would be the calling thread's `cap`+1st listed lock word (Fence.lock passes
 * MAX_HELD_LOCKS; the library's own calls the robust list's full size).
 */
export function fenceLock(arena: Arena, fw: number, timeoutMs?: number, cap: number = K.ROBUST_CAP): boolean {
  if (arena.sanitize) return fenceLockChecked(arena, fw, timeoutMs, cap);
  if (arena.i32[fw + F_FLAGS] & FLAG_INLINE_LOCK) return acquireInline(arena, fw + F_LOCK, arena.lockKindId, timeoutMs) !== ACQ_TIMEOUT;
  return acquireWord(arena, fenceLockIndex(arena, fw), arena.lockKindId, timeoutMs, cap) !== ACQ_TIMEOUT;
}

/**
 * fenceLock in a sanitizing arena: the lock-order checker sees the acquisition first (it may throw
 * LockOrderError, EDEADLK, with nothing taken) and lists the lock as held once it is taken. The
 * class of an inline lock is the fence context; of a borrowed one, the lent word (src/locks/lockdep.ts).
 */
function fenceLockChecked(arena: Arena, fw: number, timeoutMs: number | undefined, cap: number): boolean {
  // Small enough to inline: a free inline word, one compare-exchange, as Fence.lock without sanitize.
  const i32 = arena.i32;
  if (!(i32[fw + F_FLAGS] & FLAG_INLINE_LOCK) || timeoutMs !== undefined || arena.lockKindId === K.LK_TICKET) return fenceLockCheckedSlow(arena, fw, timeoutMs, cap);
  // Holding no other lock, the checker only records it (lockdepFirst), before the exchange.
  const idx = fw + F_LOCK;
  const key = contextClass(i32[fw + F_CONTEXT]);
  if (!lockdepFirst(arena, key, idx, fw)) return fenceLockCheckedSlow(arena, fw, timeoutMs, cap);
  if (Atomics.compareExchange(i32, idx, 0, arena.me) !== 0) {
    lockdepReleased(arena, idx);
    return fenceLockCheckedSlow(arena, fw, timeoutMs, cap, key);
  }
  i32[arena.slotBase + K.T_INLINE_HELD]++;
  return true;
}

/** fenceLockChecked for a borrowed or ticket lock, a timeout, or a word that was not free (`key`: already checked). */
function fenceLockCheckedSlow(arena: Arena, fw: number, timeoutMs: number | undefined, cap: number, key = 0): boolean {
  const i32 = arena.i32;
  const inline = (i32[fw + F_FLAGS] & FLAG_INLINE_LOCK) !== 0;
  const idx = inline ? fw + F_LOCK : fenceLockIndex(arena, fw);
  if (key === 0) key = lockdepCheck(arena, inline ? contextClass(i32[fw + F_CONTEXT]) : wordClass(idx, i32[fw + F_LENDER_GEN]), idx, fw);
  const r = inline ? acquireInline(arena, idx, arena.lockKindId, timeoutMs) : acquireWord(arena, idx, arena.lockKindId, timeoutMs, cap);
  if (r === ACQ_TIMEOUT) return false;
  lockdepAcquired(arena, key, idx, fw);
  return true;
}

/** Releases the fence lock. Throws EPERM when the caller does not hold it. */
export function fenceUnlock(arena: Arena, fw: number): void {
  if (arena.i32[fw + F_FLAGS] & FLAG_INLINE_LOCK) {
    // Sanitizing, held by us: one exchange, as Fence.unlock's fast path. Else the checked release.
    const i32 = arena.i32;
    const idx = fw + F_LOCK;
    if (arena.sanitize && arena.lockKindId !== K.LK_TICKET && (i32[idx] & K.LOCK_OWNER_MASK) === arena.me) {
      const was = Atomics.exchange(i32, idx, 0);
      if (was !== arena.me) releaseInlineExchanged(arena, idx, was);
      i32[arena.slotBase + K.T_INLINE_HELD]--;
    } else releaseInline(arena, idx, arena.lockKindId);
    if (arena.sanitize) lockdepReleased(arena, idx);
    return;
  }
  // The sanitizer checked this word when it was acquired; one stale critical section is one report.
  const idx = fenceLockIndex(arena, fw, false);
  releaseWord(arena, idx, arena.lockKindId);
  if (arena.sanitize) lockdepReleased(arena, idx);
}

/** Throws EPERM unless the calling thread holds the fence lock (kernel dma_fence_assert_held). */
export function fenceAssertHeld(arena: Arena, fw: number): void {
  const idx = fenceLockIndex(arena, fw);
  const owner = (Atomics.load(arena.i32, idx) & K.LOCK_OWNER_MASK) - 1;
  if (owner !== arena.slot) throw Errors.notOwner('fence lock', owner, arena.slot);
}

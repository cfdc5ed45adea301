/**
 * The part of the Fence view every other part builds on: the view's state (word index,
 * generation, the inline lock's fast-path word), its validity check, the fence's fields and user
 * flag bits, ordering on a context, and the fence lock with its one-CAS fast paths. fence.ts
 * derives `Fence` from it with construction, references, signaling, callbacks and waits; the split
 * is by concept only, every member is the one the single class had.
 */
import { Arena } from '../arena/arena.js';
import { detachedError } from '../arena/detached.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import { withHeld } from '../locks/scoped.js';
import * as L from './layout.js';
import { describeValue, Errors, isInstance } from '../errors.js';
import { ACQ_TIMEOUT, futexSpin } from '../locks/futex.js';
import { acquireInlineSeen, inlineSpins, releaseInlineExchanged } from '../locks/lockword.js';
import { isLaterOnContext, seqnoOf, timestampOf } from './core.js';
import { fenceAssertHeld, fenceLock, fenceLockIndex, fenceUnlock } from './lock.js';
import type { Fence } from './fence.js';
import { opsById, type FenceOps } from './ops.js';
import { FH } from './hot.js';
import './hot.js'; // its load-time check of FH (tsc drops the import above: const enum members only)

const { F_FLAGS, F_OPS, F_REFCOUNT, F_ERROR, F_CONTEXT, FLAG_INLINE_LOCK, FLAG_SEQNO64, FLAG_WAITERS } = L;
const { B_GEN, GEN_MASK } = A;
const { LK_TICKET, T_INLINE_HELD } = K;

/**
 * The base of {@link Fence}: its fields, user flags, ordering and lock (see the file comment).
 * Not constructed on its own; every instance is a Fence.
 */
export abstract class FenceBase {
  /** The arena the fence lives in (this thread's view of it). */
  readonly arena: Arena;
  /** @internal Word index of the fence payload. */
  readonly fw: number;
  /** @internal Word index of the block header. */
  protected readonly hw: number;
  /** @internal The block's generation when the view was made. */
  protected readonly gen: number;
  /**
   * @internal The inline lock word when lock()/unlock() may take the one-CAS fast path, else 0 (a borrowed
   * lock, a ticket arena whose words need the queue, or a sanitizing arena, whose lock-order
   * checker sees every acquisition). INLINE_LOCK never changes after init.
   */
  protected readonly fastLockIdx: number;
  /** @internal The arena's Int32Array. */
  protected readonly i32: Int32Array;
  /** @internal This thread's slot id (the lock word's owner value). */
  protected readonly me: number;

  /** @internal Only Fence's constructor calls it (a view built from a word index skips the handle checks). */
  protected constructor(arena: Arena, fw: number) {
    // Layout constants as FH literals (see hot.ts): every create and fromHandle inlines this.
    const i32 = arena.i32;
    const hw = fw - FH.BLOCK_HEADER_WORDS;
    this.arena = arena;
    this.i32 = i32;
    this.me = arena.me;
    this.fw = fw;
    this.hw = hw;
    this.gen = i32[hw + FH.B_GEN] & GEN_MASK;
    this.fastLockIdx = i32[fw + FH.F_FLAGS] & FH.FLAG_INLINE_LOCK && arena.lockKindId !== LK_TICKET && !arena.sanitize ? fw + FH.F_LOCK : 0;
  }

  /* ───────────── identity and fields ───────────── */

  /**
   * Validates the view and returns the payload word index. A released fence → EBADF, or in
   * sanitize mode UseAfterFreeError (counting mode records it and goes on). One compare suffices:
   * the generation moves on free as well as on allocation. @internal
   */
  protected v(): number {
    // The released case out of line: every method inlines this check, so its bytecode is spent
    // from the caller's inlining budget (test/inline-budget.test.ts).
    if ((this.i32[this.hw + FH.B_GEN] & GEN_MASK) !== this.gen || this.arena.detached) this.stale();
    return this.fw;
  }

  /**
   * {@link v}'s check failed: the block is no longer the view's generation. Throws EBADF, or in
   * sanitize mode UseAfterFreeError; in counting mode the access is recorded and it returns. @internal
   */
  private stale(): void {
    if (this.arena.detached) throw detachedError('Fence view');
    const handle = this.gen * A.HANDLE_OFFSET_SCALE + (this.hw >>> 1);
    if (!this.arena.sanitize || this.arena.checkAccess(this.hw, this.gen, 'fence', handle))
      throw Errors.badHandle('fence', handle, 'the fence was released (last reference put)');
  }

  /** Plain-integer handle (offset + generation) to post to other threads. */
  get handle(): number {
    return this.gen * A.HANDLE_OFFSET_SCALE + (this.hw >>> 1);
  }
  /** References currently held on the fence (a snapshot: other threads may get and put meanwhile). Throws EBADF once released. */
  get refcount(): number {
    return Atomics.load(this.arena.i32, this.v() + F_REFCOUNT);
  }
  /** The error set with {@link setError} (a negative errno), or 0. Throws EBADF once released. */
  get error(): number {
    return this.arena.i32[this.v() + F_ERROR];
  }
  /** The fence context it was created on. Throws EBADF once released. */
  get context(): number {
    return this.arena.i32[this.v() + F_CONTEXT];
  }
  /** Its sequence number on that context. Throws EBADF once released. */
  get seqno(): number {
    return seqnoOf(this.arena.i32, this.v());
  }
  /**
   * The flags word (kernel `fence->flags`): bit 0 INITIALIZED, 1 INLINE_LOCK, 2 SEQNO64, 3 SIGNALED,
   * 4 TIMESTAMP, 5 ENABLE_SIGNAL, 6–21 the user bits ({@link Fence.setUserFlag}), 22–24 which
   * optional ops the fence's table has; the waiters bit is left out. Throws EBADF once released.
   */
  get flags(): number {
    return Atomics.load(this.arena.i32, this.v() + F_FLAGS) & ~FLAG_WAITERS;
  }
  /** True for a 64-bit seqno (created with `seqno64`). Throws EBADF once released. */
  get seqno64(): boolean {
    return (this.arena.i32[this.v() + F_FLAGS] & FLAG_SEQNO64) !== 0;
  }
  /** True when the fence uses its own lock (INLINE_LOCK flag), false when it borrows one. */
  get usesInlineLock(): boolean {
    return (this.arena.i32[this.v() + F_FLAGS] & FLAG_INLINE_LOCK) !== 0;
  }
  /**
   * Int32 word index of the lock word this fence takes (its own, or the borrowed one), without
   * the sanitizer's check: for tools that watch lock words (the demo's mutual-exclusion guard).
   */
  get lockWordIndex(): number {
    return fenceLockIndex(this.arena, this.v(), false);
  }
  /** Signal time in monotonic ns, or undefined before signal. */
  get timestamp(): bigint | undefined {
    return timestampOf(this.arena, this.v());
  }
  /** The ops this fence was created with. */
  get ops(): FenceOps {
    return opsById(this.arena.i32[this.v() + F_OPS]);
  }

  /* ───────────── user flag bits ───────────── */

  /** How many user flag bits a fence has (kernel DMA_FENCE_FLAG_USER_BITS onwards): bits 0..count-1. */
  static readonly USER_FLAG_COUNT = L.FLAG_USER_COUNT;

  /** Mask of user bit `bit` in the flags word; throws EINVAL outside 0..USER_FLAG_COUNT-1. */
  private static userBit(bit: number): number {
    if (!Number.isInteger(bit) || bit < 0 || bit >= L.FLAG_USER_COUNT)
      throw Errors.invalid(`user flag bit must be an integer in 0..${L.FLAG_USER_COUNT - 1}, got ${describeValue(bit)}`);
    return 1 << (L.FLAG_USER_SHIFT + bit);
  }

  /**
   * Sets user flag bit `bit` (kernel set_bit / test_and_set_bit on DMA_FENCE_FLAG_USER_BITS + bit):
   * bits the fence's driver owns; the core never reads or clears them. Atomic, lock-free.
   * Threads: any. Returns the bit's old value. Throws EINVAL (bit out of range), EBADF.
   */
  setUserFlag(bit: number): boolean {
    const m = FenceBase.userBit(bit);
    return (Atomics.or(this.arena.i32, this.v() + F_FLAGS, m) & m) !== 0;
  }

  /** Clears user flag bit `bit` (kernel test_and_clear_bit). Returns its old value. Throws EINVAL, EBADF. */
  clearUserFlag(bit: number): boolean {
    const m = FenceBase.userBit(bit);
    return (Atomics.and(this.arena.i32, this.v() + F_FLAGS, ~m) & m) !== 0;
  }

  /** Tests user flag bit `bit` (kernel test_bit). Throws EINVAL (bit out of range), EBADF. */
  testUserFlag(bit: number): boolean {
    const m = FenceBase.userBit(bit);
    return (Atomics.load(this.arena.i32, this.v() + F_FLAGS) & m) !== 0;
  }

  /* ───────────── locking ───────────── */

  /**
   * Takes the fence lock (inline or borrowed). Returns false on timeout. Throws EDEADLK if held;
   * ENOLCK for a borrowed lock while the calling thread already holds MAX_HELD_LOCKS (32)
   * SpinLocks and borrowed fence locks (inline fence locks are not limited). In a sanitizing arena,
   * LockOrderError (EDEADLK, nothing taken) when taking it under the locks held inverts an order
   * some thread used (src/locks/lockdep.ts).
   */
  lock(timeoutMs?: number): boolean {
    // Fast path, small enough for V8 to inline into the caller: the view's generation check and
    // one CAS on the inline lock. Held by another thread: wait for it from what the CAS saw (no
    // second CAS on a word another thread holds): a futex word's spin called from here, so that it
    // is compiled into the caller's optimised code (see futexSpin), then acquireInlineSeen (sleep,
    // traced waits, other kinds). Anything else (borrowed, stale, a timeout to validate) takes the
    // full path, which reports it.
    const i32 = this.i32;
    const idx = this.fastLockIdx;
    if (idx !== 0 && timeoutMs === undefined && (i32[this.hw + B_GEN] & GEN_MASK) === this.gen && !this.arena.detached) {
      const seen = Atomics.compareExchange(i32, idx, 0, this.me);
      if (seen !== 0) {
        const kind = this.arena.lockKindId;
        const spins = inlineSpins(i32, kind, seen, this.me);
        if (!spins || futexSpin(i32, idx, this.me, seen) === ACQ_TIMEOUT) acquireInlineSeen(this.arena, idx, kind, seen, spins);
      }
      i32[this.arena.slotBase + T_INLINE_HELD]++;
      return true;
    }
    return this.lockSlow(timeoutMs);
  }
  private lockSlow(timeoutMs: number | undefined): boolean {
    return fenceLock(this.arena, this.v(), timeoutMs, K.MAX_HELD_LOCKS);
  }
  /** Releases the fence lock. Throws EPERM when the caller does not hold it. */
  unlock(): void {
    // Fast path: one compare-exchange from "held by me" to free: no load before it (a separate
    // look at the word cost ~1 ns a pair in the core bench: 1.22× of a raw TAS pair against 1.13×).
    // Held by me with the waiters' bit (futex waiters, or a traced contended hold): only the holder
    // frees a word it holds (other threads only add that bit), so an exchange frees it, then one
    // waiter is woken (releaseInlineExchanged). A borrowed or stale lock, or a word we do not
    // hold, takes the full path, which reports the misuse; nothing was written.
    const i32 = this.i32;
    const idx = this.fastLockIdx;
    const me = this.me;
    if (idx !== 0 && (i32[this.hw + B_GEN] & GEN_MASK) === this.gen && !this.arena.detached) {
      let seen = Atomics.compareExchange(i32, idx, me, 0);
      if (seen !== me) {
        if ((seen & K.LOCK_OWNER_MASK) !== me) return this.unlockSlow();
        seen = Atomics.exchange(i32, idx, 0);
        releaseInlineExchanged(this.arena, idx, seen);
      }
      i32[this.arena.slotBase + T_INLINE_HELD]--;
      return;
    }
    this.unlockSlow();
  }
  private unlockSlow(): void {
    fenceUnlock(this.arena, this.v());
  }
  /** Throws EPERM unless the calling thread holds the fence lock. */
  assertHeld(): void {
    fenceAssertHeld(this.arena, this.v());
  }
  /**
   * Runs `fn` under the fence lock (kernel dma_fence_lock_irqsave / unlock_irqrestore); rethrows
   * its error after unlocking. Locking: takes and releases the fence lock (not re-entrant: EDEADLK
   * when the caller holds it). Returns what `fn` returns. Takes the same one-CAS fast paths as
   * lock() and unlock(). Throws EINVAL (fn not a function: before locking).
   */
  withLock<T>(fn: () => T): T {
    if (typeof fn !== 'function') throw Errors.invalid(`withLock needs a function, got ${describeValue(fn)}`);
    return withHeld(this, fn);
  }

  /** @internal Word index of the flags word (the futex word waiters sleep on); validates the view. */
  get flagsIndex(): number {
    return this.v() + F_FLAGS;
  }

  /* ───────────── ordering ───────────── */

  /**
   * True when `a` is later than `b` on their common context (kernel dma_fence_is_later): 32-bit
   * wrap-around unless `a` is a 64-bit fence. Throws EINVAL for fences of different contexts.
   */
  static isLater(a: Fence, b: Fence): boolean {
    fenceArgs(a, b, 'isLater');
    return isLaterOnContext(a.arena.i32, a.v(), b.v());
  }

  /**
   * True when `a` is later than `b`, or the same point (kernel dma_fence_is_later_or_same): `a` is
   * `b`, or not earlier on their common context. Throws EINVAL for fences of different contexts.
   */
  static isLaterOrSame(a: Fence, b: Fence): boolean {
    fenceArgs(a, b, 'isLaterOrSame');
    if (a.handle === b.handle) return true;
    return !FenceBase.isLater(b, a);
  }

  /** The later of two fences of one context, or null when that one is already signaled. */
  static later(a: Fence, b: Fence): Fence | null {
    fenceArgs(a, b, 'later');
    const f = FenceBase.isLater(a, b) ? a : b;
    return f.isSignaled() ? null : f;
  }
}

/**
 * True when `x` is a real Fence view: a FenceBase whose arena is an Arena and whose words make an
 * integer handle. A forged object (`Object.create(Fence.prototype)`) passes `instanceof` but not
 * this. The shared check behind every entry's fence argument (never on the fast paths). Threads: any.
 */
export function isFenceView(x: unknown): x is Fence {
  return isInstance(x, FenceBase) && Arena.isView(x.arena) && Number.isInteger(x.fw) && Number.isInteger(x.handle);
}

/** `a` and `b` as two fences of one arena (the ordering functions' arguments), else EINVAL. */
function fenceArgs(a: unknown, b: unknown, where: string): void {
  if (!isFenceView(a)) throw Errors.invalid(`${where}: a must be a Fence, got ${describeValue(a)}`);
  if (!isFenceView(b)) throw Errors.invalid(`${where}: b must be a Fence, got ${describeValue(b)}`);
  if (a.arena.buffer !== b.arena.buffer) throw Errors.invalid(`${where}: the fences belong to different arenas`);
}


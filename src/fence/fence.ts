/**
 * The Fence: a view over a fence struct in the arena (kernel `struct dma_fence`), with mainline
 * semantics: idempotent signal, callbacks exactly once, error only before signal, ops detached on
 * signal, 32-bit wrap-around ordering unless 64-bit, release of an unsignaled fence with callbacks
 * → -EDEADLK. The lock is either inline (in the fence, flag INLINE_LOCK) or borrowed from the
 * exporter's block — the borrowed-lock use-after-free when that block is freed first. The view validates and
 * delegates: the work is done at handle level (core, create, signal, release, wait).
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import {
  contextAlloc, fenceAssertHeld, fenceGet, fenceLock, fenceLockIndex, fenceUnlock, isLaterOnContext, isSignaledFlag, nowNs, seqnoOf,
  setErrorChecked, statusOf, timestampOf,
} from './core.js';
import { createFenceAt, privateStubAt, stubFenceAt, type FenceInit } from './create.js';
import { aliveHolds } from './keepalive.js';
import { describeFence, driverNameOf, opsById, setDeadlineOf, timelineNameOf, type FenceOps } from './ops.js';
import { putFence, setViewFactory } from './release.js';
import { addCallbackNode, enableSignaling, pollSignaled, pollSignaledLocked, removeCallbackNode, signalFence, signalFenceLocked, type FenceCallback } from './signal.js';
import { getSpinMicros, setSpinMicros, waitAnyFence, waitAnyFenceAsync, waitFence, waitFenceAsync, type WaitOptions } from './wait.js';

export type { FenceInit } from './create.js';
export type { FenceCallback } from './signal.js';
/** The put API lives in release.ts; re-exported for importers of the handle-level API. */
export { putFence } from './release.js';

const { F_FLAGS, F_OPS, F_REFCOUNT, F_ERROR, F_CONTEXT, FLAG_INLINE_LOCK, FLAG_SEQNO64, FLAG_WAITERS } = L;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

export class Fence {
  readonly arena: Arena;
  /** Word index of the fence payload. */
  readonly fw: number;
  private readonly hw: number;
  private readonly gen: number;
  /**
   * The inline lock word when lock()/unlock() may take the one-CAS fast path, else 0 (a borrowed
   * lock, a ticket arena whose words need the queue, or a sanitizing arena, whose lock-order
   * checker sees every acquisition). INLINE_LOCK never changes after init.
   */
  private readonly fastLockIdx: number;
  private readonly i32: Int32Array;
  private readonly me: number;

  /** @internal use Fence.create / Fence.fromHandle. */
  constructor(arena: Arena, fw: number) {
    const i32 = arena.i32;
    this.arena = arena;
    this.i32 = i32;
    this.me = arena.me;
    this.fw = fw;
    this.hw = fw - BLOCK_HEADER_WORDS;
    this.gen = i32[this.hw + B_GEN] & GEN_MASK;
    this.fastLockIdx = i32[fw + F_FLAGS] & FLAG_INLINE_LOCK && arena.lockKindId !== K.LK_TICKET && !arena.sanitize ? fw + L.F_LOCK : 0;
  }

  /* ───────────── construction ───────────── */

  /**
   * Creates a fence with one reference (kernel dma_fence_init). `lock` given → borrowed lock
   * (extern); absent → the inline lock and the INLINE_LOCK flag.
   * Throws EINVAL (context/seqno/ops/lock), EBADF (stale lock ref), ENOMEM.
   */
  static create(arena: Arena, init: FenceInit): Fence {
    return new Fence(arena, createFenceAt(arena, init, 0));
  }

  /** A view of the fence behind `handle` (takes no reference). Throws EBADF / EINVAL. */
  static fromHandle(arena: Arena, handle: number): Fence {
    return new Fence(arena, arena.resolve(handle, A.BlockType.FENCE, 'fence') + BLOCK_HEADER_WORDS);
  }

  /** Reserves `n` fence contexts; the first ever is 1 (0 belongs to the stub). */
  static contextAlloc(arena: Arena, n = 1): number {
    return contextAlloc(arena, n);
  }

  /**
   * The arena's permanent signaled stub fence (context 0, seqno 0), with a new reference.
   * Threads: any; the first call in the arena creates it.
   */
  static stub(arena: Arena): Fence {
    return new Fence(arena, stubFenceAt(arena));
  }

  /** A new signaled fence on its own context (kernel dma_fence_allocate_private_stub). */
  static privateStub(arena: Arena, timestamp?: bigint): Fence {
    return new Fence(arena, privateStubAt(arena, timestamp));
  }

  /* ───────────── identity and fields ───────────── */

  /**
   * Validates the view and returns the payload word index. A released fence → EBADF, or in
   * sanitize mode UseAfterFreeError (counting mode records it and goes on). One compare suffices:
   * the generation moves on free as well as on allocation.
   */
  private v(): number {
    const i32 = this.arena.i32;
    const hw = this.hw;
    if ((i32[hw + B_GEN] & GEN_MASK) !== this.gen) {
      if (!this.arena.sanitize || this.arena.checkAccess(hw, this.gen, 'fence', this.gen * A.HANDLE_OFFSET_SCALE + (hw >>> 1)))
        throw Errors.badHandle('fence', this.gen * A.HANDLE_OFFSET_SCALE + (hw >>> 1), 'the fence was released (last reference put)');
    }
    return this.fw;
  }

  /** Plain-integer handle (offset + generation) to post to other threads. */
  get handle(): number {
    return this.gen * A.HANDLE_OFFSET_SCALE + (this.hw >>> 1);
  }
  get refcount(): number {
    return Atomics.load(this.arena.i32, this.v() + F_REFCOUNT);
  }
  get error(): number {
    return this.arena.i32[this.v() + F_ERROR];
  }
  get context(): number {
    return this.arena.i32[this.v() + F_CONTEXT];
  }
  get seqno(): number {
    return seqnoOf(this.arena.i32, this.v());
  }
  get flags(): number {
    return Atomics.load(this.arena.i32, this.v() + F_FLAGS) & ~FLAG_WAITERS;
  }
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
  /** The ops' driver name; `"detached-driver"` once signaled (ops are detached on signal). */
  get driverName(): string {
    return driverNameOf(this, this.v());
  }
  /** The ops' timeline name; `"signaled-timeline"` once signaled. */
  get timelineName(): string {
    return timelineNameOf(this, this.v());
  }
  /** The ops this fence was created with. */
  get ops(): FenceOps {
    return opsById(this.arena.i32[this.v() + F_OPS]);
  }
  /**
   * One line in the kernel's shape (kernel dma_fence_describe):
   * `<context>:<seqno> <timeline> <driver> [un]signalled`, the names empty once the ops are
   * detached (signaled). Threads: any. Throws EINVAL when this thread lacks the ops of an
   * unsignaled fence, EBADF when released.
   */
  describe(): string {
    return describeFence(this, this.v());
  }

  /* ───────────── user flag bits ───────────── */

  /** How many user flag bits a fence has (kernel DMA_FENCE_FLAG_USER_BITS onwards): bits 0..count-1. */
  static readonly USER_FLAG_COUNT = L.FLAG_USER_COUNT;

  /** Mask of user bit `bit` in the flags word; throws EINVAL outside 0..USER_FLAG_COUNT-1. */
  private static userBit(bit: number): number {
    if (!Number.isInteger(bit) || bit < 0 || bit >= L.FLAG_USER_COUNT)
      throw Errors.invalid(`user flag bit must be an integer in 0..${L.FLAG_USER_COUNT - 1}, got ${String(bit)}`);
    return 1 << (L.FLAG_USER_SHIFT + bit);
  }

  /**
   * Sets user flag bit `bit` (kernel set_bit / test_and_set_bit on DMA_FENCE_FLAG_USER_BITS + bit):
   * bits the fence's driver owns; the core never reads or clears them. Atomic, lock-free.
   * Threads: any. Returns the bit's old value. Throws EINVAL (bit out of range), EBADF.
   */
  setUserFlag(bit: number): boolean {
    const m = Fence.userBit(bit);
    return (Atomics.or(this.arena.i32, this.v() + F_FLAGS, m) & m) !== 0;
  }

  /** Clears user flag bit `bit` (kernel test_and_clear_bit). Returns its old value. Throws EINVAL, EBADF. */
  clearUserFlag(bit: number): boolean {
    const m = Fence.userBit(bit);
    return (Atomics.and(this.arena.i32, this.v() + F_FLAGS, ~m) & m) !== 0;
  }

  /** Tests user flag bit `bit` (kernel test_bit). Throws EINVAL (bit out of range), EBADF. */
  testUserFlag(bit: number): boolean {
    const m = Fence.userBit(bit);
    return (Atomics.load(this.arena.i32, this.v() + F_FLAGS) & m) !== 0;
  }

  /* ───────────── references ───────────── */

  /** Takes a reference and returns this fence. Throws EBADF on a released fence. */
  get(): Fence {
    fenceGet(this.arena.i32, this.v());
    return this;
  }

  /**
   * Drops a reference; the last one releases the fence: an unsignaled fence with callbacks is
   * first signaled with -EDEADLK (kernel WARN), then ops.release runs and the block is freed.
   */
  put(): void {
    putFence(this.arena, this.v(), this);
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
    // one CAS on a free inline lock. Anything else (held, owner died, borrowed, stale, a timeout
    // to validate) takes the full path, which reports it.
    const i32 = this.i32;
    const idx = this.fastLockIdx;
    if (idx !== 0 && timeoutMs === undefined && (i32[this.hw + B_GEN] & GEN_MASK) === this.gen &&
        Atomics.compareExchange(i32, idx, 0, this.me) === 0) {
      this.arena.inlineLocksHeld++;
      return true;
    }
    return this.lockSlow(timeoutMs);
  }
  private lockSlow(timeoutMs: number | undefined): boolean {
    return fenceLock(this.arena, this.v(), timeoutMs, K.MAX_HELD_LOCKS);
  }
  /** Releases the fence lock. Throws EPERM when the caller does not hold it. */
  unlock(): void {
    // Fast path: one CAS from "held by me, nobody waiting" to free. A waiter's bit (futex), a
    // borrowed or stale lock, or a word we do not hold fails it: the full path wakes the waiter or
    // reports the misuse, and has written nothing.
    const i32 = this.i32;
    const idx = this.fastLockIdx;
    const me = this.me;
    if (idx !== 0 && (i32[this.hw + B_GEN] & GEN_MASK) === this.gen && Atomics.compareExchange(i32, idx, me, 0) === me) {
      this.arena.inlineLocksHeld--;
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
   * lock() and unlock().
   */
  withLock<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /* ───────────── signaling ───────────── */

  /**
   * Signals the fence and runs its pending callbacks.
   * Locking: takes the fence lock; must not be called with it held — use {@link signalLocked}.
   * Threads: any attached thread. Callbacks of the calling thread run before this returns (after
   * the lock is dropped); others are queued to their owner's inbox.
   * Returns nothing; signaling twice is a no-op (see {@link checkAndSignal}).
   */
  signal(): void {
    signalFence(this.arena, this.v(), nowNs());
  }

  /** Signals with the given timestamp (monotonic ns). No-op when already signaled. */
  signalTimestamp(ns: bigint): void {
    if (typeof ns !== 'bigint' || ns < 0n) throw Errors.invalid('signalTimestamp needs a bigint ≥ 0 (ns)');
    signalFence(this.arena, this.v(), ns, false);
  }

  /** Signals; returns true when the fence was already signaled (kernel dma_fence_check_and_signal). */
  checkAndSignal(): boolean {
    return signalFence(this.arena, this.v(), nowNs());
  }

  /**
   * Signals with the fence lock held by the caller (kernel dma_fence_signal_locked); callbacks run
   * here, under the lock. Returns true when it was already signaled.
   */
  signalLocked(ts?: bigint): boolean {
    return signalFenceLocked(this.arena, this.v(), ts ?? nowNs(), ts === undefined);
  }

  /** SIGNALED bit only, without asking the ops (kernel dma_fence_test_signaled_flag). */
  testSignaledFlag(): boolean {
    return isSignaledFlag(this.arena.i32, this.v());
  }

  /** Signaled? Asks ops.signaled when the flag is not set yet and signals when it says so. */
  isSignaled(): boolean {
    return pollSignaled(this, this.v());
  }

  /** 0 pending, 1 signaled, negative errno when signaled with an error. Takes the fence lock. */
  status(): number {
    this.isSignaled();
    const fw = this.v();
    return this.withLock(() => statusOf(this.arena.i32, fw));
  }

  /**
   * {@link isSignaled} with the fence lock held by the caller (kernel dma_fence_is_signaled_locked):
   * polls ops.signaled and, when it says so, signals with {@link signalLocked} (callbacks of this
   * thread run here, under the lock).
   * Locking: the caller holds the fence lock (inside {@link withLock}). Threads: the lock holder.
   * Returns true when signaled. Throws EPERM when the lock is not held, EBADF when released.
   */
  isSignaledLocked(): boolean {
    return pollSignaledLocked(this, this.v());
  }

  /**
   * {@link status} with the fence lock held by the caller (kernel dma_fence_get_status_locked):
   * 0 pending, 1 signaled, negative errno when signaled with an error.
   * Locking: the caller holds the fence lock. Throws EPERM when it is not held, EBADF when released.
   */
  statusLocked(): number {
    const fw = this.v();
    pollSignaledLocked(this, fw);
    return statusOf(this.arena.i32, fw);
  }

  /** Sets the error before signaling. Throws EINVAL when signaled or errno is not in -4095..-1. */
  setError(errno: number): void {
    setErrorChecked(this.arena.i32, this.v(), errno);
  }

  /**
   * Asks the exporter to signal eventually (kernel dma_fence_enable_sw_signaling): calls
   * ops.enableSignaling once, under the fence lock; false from it signals the fence.
   */
  enableSignaling(): void {
    enableSignaling(this, this.v());
  }

  /**
   * Passes a deadline hint to ops.setDeadline (kernel dma_fence_set_deadline), unsignaled fences
   * only; arrays and chains forward it to their fences, sw_sync points record it.
   * Threads: any that registered the fence's ops. Throws EINVAL (ns not a bigint ≥ 0, the ops not
   * registered in this thread), EBADF.
   */
  setDeadline(ns: bigint): void {
    if (typeof ns !== 'bigint' || ns < 0n) throw Errors.invalid('setDeadline needs a bigint ≥ 0 (ns)');
    setDeadlineOf(this, this.v(), ns);
  }

  /* ───────────── callbacks ───────────── */

  /**
   * Adds a callback that runs exactly once when the fence signals, in the calling thread (kernel
   * dma_fence_add_callback). Also enables signaling.
   * Returns null — and `fn` is never called — when the fence is already signaled, or when enabling
   * signaling signaled it (ops.enableSignaling refused, an array whose children all signaled):
   * the kernel's -ENOENT, "already signaled, do the work yourself".
   * Throws EINVAL (fn not a function, the fence's ops not registered in this thread), ENOMEM.
   */
  addCallback(fn: (fence: Fence) => void): FenceCallback | null {
    if (typeof fn !== 'function') throw Errors.invalid('addCallback needs a function');
    return this.addNode(L.CBK_FN, fn, 0);
  }

  /** @internal A WAKE node: the signaler bumps and notifies word `target`. */
  addWake(target: number): FenceCallback | null {
    return this.addNode(L.CBK_WAKE, null, target);
  }

  /**
   * @internal A CBK_SHARED node: handler `id` (see defineSharedCallback) runs in the signaling
   * thread with `data`. Returns null when already signaled.
   */
  addShared(id: number, data: number): FenceCallback | null {
    return this.addNode(L.CBK_SHARED, id, data);
  }

  private addNode(kind: number, fn: ((f: Fence) => void) | number | null, target: number): FenceCallback | null {
    return addCallbackNode(this, this.v(), kind, fn, target);
  }

  /** Removes a callback; true only if it was still pending (it will then never run). */
  removeCallback(cb: FenceCallback): boolean {
    if (!cb || typeof cb.node !== 'number' || cb.fence?.fw !== this.fw) throw Errors.invalid('callback does not belong to this fence');
    return removeCallbackNode(this.arena, this.v(), cb);
  }

  /* ───────────── waiting ───────────── */

  /**
   * Waits until signaled (kernel dma_fence_wait_timeout): enables signaling, spins briefly, then
   * sleeps on the flags word. Threads: any; on the main thread it blocks the event loop.
   * Returns true when signaled, false on timeout. Throws EINVAL for a bad timeout.
   */
  wait(timeoutMs = Infinity): boolean {
    return waitFence(this, timeoutMs);
  }

  /**
   * Like {@link wait} without blocking: the process stays alive while it is pending.
   * `options.signal` (an AbortSignal) cancels it: the promise rejects with the signal's reason (an
   * AbortError unless another was given) and nothing is left holding the process.
   * Returns a promise of true (signaled) or false (timeout). Throws EINVAL (bad timeout or options).
   */
  waitAsync(timeoutMs = Infinity, options?: WaitOptions): Promise<boolean> {
    return waitFenceAsync(this, timeoutMs, options);
  }

  /** @internal Word index of the flags word (the futex word waiters sleep on); validates the view. */
  get flagsIndex(): number {
    return this.v() + F_FLAGS;
  }

  /**
   * Waits until any of `fences` signals (kernel dma_fence_wait_any_timeout). Returns the index of
   * the first signaled one, or -1 on timeout. Blocks the calling thread.
   */
  static waitAny(fences: Fence[], timeoutMs = Infinity): number {
    return waitAnyFence(fences, timeoutMs);
  }

  /**
   * Async {@link waitAny}; keeps the process alive while pending. `options.signal` cancels it like
   * {@link waitAsync}'s, and the wake-ups it armed on the fences are removed.
   */
  static waitAnyAsync(fences: Fence[], timeoutMs = Infinity, options?: WaitOptions): Promise<number> {
    return waitAnyFenceAsync(fences, timeoutMs, options);
  }

  /** Microseconds a waiter spins before sleeping (default 30). */
  static get spinMicros(): number {
    return getSpinMicros();
  }
  static set spinMicros(us: number) {
    setSpinMicros(us);
  }

  /** Async waits and waitAny calls of this thread that currently hold the process alive. */
  static get pendingAsyncWaits(): number {
    return aliveHolds();
  }

  /* ───────────── ordering ───────────── */

  /**
   * True when `a` is later than `b` on their common context (kernel dma_fence_is_later): 32-bit
   * wrap-around unless `a` is a 64-bit fence. Throws EINVAL for fences of different contexts.
   */
  static isLater(a: Fence, b: Fence): boolean {
    return isLaterOnContext(a.arena.i32, a.v(), b.v());
  }

  /**
   * True when `a` is later than `b`, or the same point (kernel dma_fence_is_later_or_same): `a` is
   * `b`, or not earlier on their common context. Throws EINVAL for fences of different contexts.
   */
  static isLaterOrSame(a: Fence, b: Fence): boolean {
    if (a.handle === b.handle) return true;
    return !Fence.isLater(b, a);
  }

  /** The later of two fences of one context, or null when that one is already signaled. */
  static later(a: Fence, b: Fence): Fence | null {
    const f = Fence.isLater(a, b) ? a : b;
    return f.isSignaled() ? null : f;
  }
}

/** @internal for containers: wraps a payload word index. */
export function fenceView(arena: Arena, fw: number): Fence {
  return new Fence(arena, fw);
}

setViewFactory(fenceView);

/**
 * The Fence: a view over a fence struct in the arena (kernel `struct dma_fence`), with mainline
 * semantics: idempotent signal, callbacks exactly once, error only before signal, ops detached on
 * signal, 32-bit wrap-around ordering unless 64-bit, release of an unsignaled fence with callbacks
 * → -EDEADLK. The lock is either inline (in the fence, flag INLINE_LOCK) or borrowed from the
 * exporter's block — the seed's bug when that block is freed first.
 */
import type { Arena } from '../arena/arena.js';
import { onCheck, onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as L from './layout.js';
import { Errno, Errors } from '../errors.js';
import { releaseDeadWord } from '../locks/futex.js';
import { SpinLock } from '../locks/spinlock.js';
import { linkCallbackLocked, runDetached, setPutHook, unlinkCallbackLocked } from './callbacks.js';
import {
  checkContextSeqno, contextAlloc, fenceAlloc, fenceAssertHeld, fenceGet, fenceLock, fenceUnlock, isSignaledFlag, markSignaledLocked,
  nowNs, pushRelease, seqnoLater, seqnoOf, setErrorChecked, statusOf, timestampOf,
} from './core.js';
import { aliveHolds } from './keepalive.js';
import { getSpinMicros, setSpinMicros, waitAnyFence, waitAnyFenceAsync, waitFence, waitFenceAsync, type WaitOptions } from './wait.js';
import { defaultOps, findOps, opsById, opsFlagsOf, stubOps, type FenceOps } from './ops.js';

const { F_FLAGS, F_OPS, F_REFCOUNT, F_ERROR, F_CONTEXT, F_CB_HEAD, FLAG_SIGNALED, FLAG_INLINE_LOCK, FLAG_ENABLE_SIGNAL, FLAG_SEQNO64, FLAG_WAITERS } = L;
const { BLOCK_HEADER_WORDS, B_TAG, B_GEN, GEN_MASK } = A;


/** Block size of a plain fence: one 64-byte class, header included. */
export const FENCE_BLOCK = A.BLOCK_HEADER_BYTES + L.FENCE_BYTES;

export interface FenceInit {
  /** Ops from defineFenceOps; default software ops when absent. */
  ops?: FenceOps;
  context: number;
  seqno: number;
  /** Borrowed lock: a SpinLock (create/at) or the ref of a lock block / raw block (word at offset 0). Absent → inline lock. */
  lock?: number | SpinLock;
  seqno64?: boolean;
}

/** Returned by addCallback; pass to removeCallback. */
export interface FenceCallback {
  readonly fence: Fence;
  /** Payload word index and generation of the node. */
  readonly node: number;
  readonly generation: number;
}

export class Fence {
  readonly arena: Arena;
  /** Word index of the fence payload. */
  readonly fw: number;
  private readonly hw: number;
  private readonly gen: number;
  /**
   * The inline lock word when lock()/unlock() may take the one-CAS fast path, else 0 (a borrowed
   * lock, or a ticket arena whose words need the queue). INLINE_LOCK never changes after init.
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
    this.fastLockIdx = i32[fw + F_FLAGS] & FLAG_INLINE_LOCK && arena.lockKindId !== K.LK_TICKET ? fw + L.F_LOCK : 0;
  }

  /* ───────────── construction ───────────── */

  /**
   * Creates a fence with one reference (kernel dma_fence_init). `lock` given → borrowed lock
   * (extern); absent → the inline lock and the INLINE_LOCK flag.
   * Throws EINVAL (context/seqno/ops/lock), EBADF (stale lock ref), ENOMEM.
   */
  static create(arena: Arena, init: FenceInit): Fence {
    return createFence(arena, init, 0);
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
    const i32 = arena.i32;
    let fw = Atomics.load(i32, L.H_STUB);
    if (fw === 0) {
      while (Atomics.compareExchange(i32, L.H_STUB_LOCK, 0, 1) !== 0) Atomics.wait(i32, L.H_STUB_LOCK, 1, 1);
      try {
        fw = Atomics.load(i32, L.H_STUB);
        if (fw === 0) {
          fw = fenceAlloc(arena, FENCE_BLOCK, { opsId: stubOps.id, context: 0, seqno: 0, seqno64: false, lockIdx: 0, lenderHw: 0 });
          markSignaledLocked(arena, fw, nowNs());
          Atomics.store(i32, L.H_STUB, fw);
        }
      } finally {
        Atomics.store(i32, L.H_STUB_LOCK, 0);
        Atomics.notify(i32, L.H_STUB_LOCK);
      }
    }
    fenceGet(i32, fw);
    return new Fence(arena, fw);
  }

  /** A new signaled fence on its own context (kernel dma_fence_allocate_private_stub). */
  static privateStub(arena: Arena, timestamp?: bigint): Fence {
    if (timestamp !== undefined && (typeof timestamp !== 'bigint' || timestamp < 0n))
      throw Errors.invalid('privateStub timestamp must be a bigint ≥ 0 (ns)');
    const context = contextAlloc(arena, 1);
    const fw = fenceAlloc(arena, FENCE_BLOCK, { opsId: stubOps.id, context, seqno: 0, seqno64: false, lockIdx: 0, lenderHw: 0 });
    markSignaledLocked(arena, fw, timestamp ?? nowNs());
    return new Fence(arena, fw);
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
    const fw = this.v();
    const i32 = this.arena.i32;
    return i32[fw + F_FLAGS] & FLAG_INLINE_LOCK ? fw + L.F_LOCK : i32[fw + L.F_LOCK];
  }
  /** Signal time in monotonic ns, or undefined before signal. */
  get timestamp(): bigint | undefined {
    return timestampOf(this.arena, this.v());
  }
  /** The ops' driver name; `"detached-driver"` once signaled (ops are detached on signal). */
  get driverName(): string {
    const fw = this.v();
    if (isSignaledFlag(this.arena.i32, fw)) return 'detached-driver';
    return opsById(this.arena.i32[fw + F_OPS]).table.getDriverName(this);
  }
  /** The ops' timeline name; `"signaled-timeline"` once signaled. */
  get timelineName(): string {
    const fw = this.v();
    if (isSignaledFlag(this.arena.i32, fw)) return 'signaled-timeline';
    return opsById(this.arena.i32[fw + F_OPS]).table.getTimelineName(this);
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
    const fw = this.v();
    const i32 = this.arena.i32;
    const signaled = isSignaledFlag(i32, fw);
    let timeline = '';
    let driver = '';
    if (!signaled) {
      const t = opsById(i32[fw + F_OPS]).table;
      timeline = t.getTimelineName(this);
      driver = t.getDriverName(this);
    }
    return `${i32[fw + F_CONTEXT]}:${seqnoOf(i32, fw)} ${timeline} ${driver} ${signaled ? '' : 'un'}signalled`;
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

  /** Takes the fence lock (inline or borrowed). Returns false on timeout. Throws EDEADLK if held. */
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
    return fenceLock(this.arena, this.v(), timeoutMs);
  }
  /** Releases the fence lock. Throws EPERM when the caller does not hold it. */
  unlock(): void {
    const i32 = this.i32;
    const idx = this.fastLockIdx;
    const me = this.me;
    if (idx !== 0 && (i32[this.hw + B_GEN] & GEN_MASK) === this.gen && i32[idx] === me) {
      // While we hold the word only a waiter can change it (futex: it sets WAITERS): exchange and
      // wake one if it did.
      if (Atomics.exchange(i32, idx, 0) !== me) Atomics.notify(i32, idx, 1);
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
  /** Runs `fn` under the fence lock (kernel dma_fence_lock_irqsave / unlock_irqrestore). */
  withLock<T>(fn: () => T): T {
    const fw = this.v();
    fenceLock(this.arena, fw);
    try {
      return fn();
    } finally {
      fenceUnlock(this.arena, fw);
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
    this.signalAt(nowNs());
  }

  /** Signals with the given timestamp (monotonic ns). No-op when already signaled. */
  signalTimestamp(ns: bigint): void {
    if (typeof ns !== 'bigint' || ns < 0n) throw Errors.invalid('signalTimestamp needs a bigint ≥ 0 (ns)');
    this.signalAt(ns);
  }

  /** Signals; returns true when the fence was already signaled (kernel dma_fence_check_and_signal). */
  checkAndSignal(): boolean {
    return this.signalAt(nowNs());
  }

  private signalAt(ts: bigint): boolean {
    const arena = this.arena;
    const fw = this.v();
    if (isSignaledFlag(arena.i32, fw)) return true;
    fenceLock(arena, fw);
    let head: number;
    try {
      head = markSignaledLocked(arena, fw, ts);
    } finally {
      fenceUnlock(arena, fw);
    }
    if (head > 0) runDetached(arena, head);
    return head < 0;
  }

  /**
   * Signals with the fence lock held by the caller (kernel dma_fence_signal_locked); callbacks run
   * here, under the lock. Returns true when it was already signaled.
   */
  signalLocked(ts: bigint = nowNs()): boolean {
    const fw = this.v();
    fenceAssertHeld(this.arena, fw);
    const head = markSignaledLocked(this.arena, fw, ts);
    if (head > 0) runDetached(this.arena, head);
    return head < 0;
  }

  /** SIGNALED bit only, without asking the ops (kernel dma_fence_test_signaled_flag). */
  testSignaledFlag(): boolean {
    return isSignaledFlag(this.arena.i32, this.v());
  }

  /** Signaled? Asks ops.signaled when the flag is not set yet and signals when it says so. */
  isSignaled(): boolean {
    const fw = this.v();
    if (isSignaledFlag(this.arena.i32, fw)) return true;
    const t = findOps(this.arena.i32[fw + F_OPS])?.table;
    if (t?.signaled && t.signaled(this)) {
      this.signal();
      return true;
    }
    return false;
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
    const fw = this.v();
    fenceAssertHeld(this.arena, fw);
    if (isSignaledFlag(this.arena.i32, fw)) return true;
    const t = findOps(this.arena.i32[fw + F_OPS])?.table;
    if (t?.signaled && t.signaled(this)) {
      this.signalLocked();
      return true;
    }
    return false;
  }

  /**
   * {@link status} with the fence lock held by the caller (kernel dma_fence_get_status_locked):
   * 0 pending, 1 signaled, negative errno when signaled with an error.
   * Locking: the caller holds the fence lock. Throws EPERM when it is not held, EBADF when released.
   */
  statusLocked(): number {
    this.isSignaledLocked();
    return statusOf(this.arena.i32, this.fw);
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
    const fw = this.v();
    const i32 = this.arena.i32;
    if (Atomics.load(i32, fw + F_FLAGS) & (FLAG_ENABLE_SIGNAL | FLAG_SIGNALED)) return;
    fenceLock(this.arena, fw);
    let head = 0;
    try {
      head = this.enableSignalingLocked(fw);
    } finally {
      fenceUnlock(this.arena, fw);
    }
    if (head > 0) runDetached(this.arena, head);
  }

  /** With the lock held: sets ENABLE_SIGNAL; returns a detached callback list if it signaled. */
  private enableSignalingLocked(fw: number): number {
    const i32 = this.arena.i32;
    const flags = i32[fw + F_FLAGS];
    if (flags & (FLAG_ENABLE_SIGNAL | FLAG_SIGNALED)) return 0;
    // Looked up before the flag is set: a thread without the ops of a fence that has the op is
    // refused (EINVAL) and leaves signaling to be enabled by a thread that has them, instead of
    // skipping the op. FLAG_OPS_ENABLE clear: the table has no enableSignaling to call.
    const t = flags & L.FLAG_OPS_ENABLE ? opsById(i32[fw + F_OPS]).table : undefined;
    const old = Atomics.or(i32, fw + F_FLAGS, FLAG_ENABLE_SIGNAL);
    if (old & (FLAG_ENABLE_SIGNAL | FLAG_SIGNALED)) return 0;
    if (t?.enableSignaling && !t.enableSignaling(this)) return Math.max(0, markSignaledLocked(this.arena, fw, nowNs()));
    return 0;
  }

  /**
   * Passes a deadline hint to ops.setDeadline (kernel dma_fence_set_deadline), unsignaled fences
   * only; arrays and chains forward it to their fences, sw_sync points record it.
   * Threads: any that registered the fence's ops. Throws EINVAL (ns not a bigint ≥ 0, the ops not
   * registered in this thread), EBADF.
   */
  setDeadline(ns: bigint): void {
    if (typeof ns !== 'bigint' || ns < 0n) throw Errors.invalid('setDeadline needs a bigint ≥ 0 (ns)');
    const fw = this.v();
    const flags = Atomics.load(this.arena.i32, fw + F_FLAGS);
    if (flags & FLAG_SIGNALED || !(flags & L.FLAG_OPS_DEADLINE)) return;
    opsById(this.arena.i32[fw + F_OPS]).table.setDeadline?.(this, ns);
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
    const arena = this.arena;
    const fw = this.v();
    if (isSignaledFlag(arena.i32, fw)) return null;
    fenceLock(arena, fw);
    let head = 0;
    let nw = 0;
    try {
      // Enable first, link only if still unsignaled (kernel dma_fence_add_callback): a refusal
      // signals the fence, and the new callback must then not be on the list it runs.
      head = this.enableSignalingLocked(fw);
      if (!isSignaledFlag(arena.i32, fw)) {
        const entry = typeof fn === 'function' ? { fn, view: this, fw, arena } : fn;
        nw = linkCallbackLocked(arena, fw, kind, entry, target);
      }
    } finally {
      fenceUnlock(arena, fw);
    }
    if (head > 0) runDetached(arena, head);
    if (nw === 0) return null;
    return { fence: this, node: nw, generation: arena.generationAt(nw - BLOCK_HEADER_WORDS) };
  }

  /** Removes a callback; true only if it was still pending (it will then never run). */
  removeCallback(cb: FenceCallback): boolean {
    if (!cb || typeof cb.node !== 'number' || cb.fence?.fw !== this.fw) throw Errors.invalid('callback does not belong to this fence');
    const arena = this.arena;
    const fw = this.v();
    fenceLock(arena, fw);
    try {
      return unlinkCallbackLocked(arena, fw, cb.node, cb.generation);
    } finally {
      fenceUnlock(arena, fw);
    }
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
    const fa = a.v();
    const fb = b.v();
    const i32 = a.arena.i32;
    if (i32[fa + F_CONTEXT] !== i32[fb + F_CONTEXT]) throw Errors.invalid('isLater: fences of different contexts are not ordered');
    return seqnoLater(i32, fa, fb);
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

/** Drops one reference on the fence at `fw`; the last one releases it. `view` is reused if given. */
export function putFence(arena: Arena, fw: number, view?: Fence): void {
  const i32 = arena.i32;
  // The last put calls ops.release: a thread that could not is refused before it drops anything,
  // whether or not this put is the last (which only the race decides).
  if (i32[fw + F_FLAGS] & L.FLAG_OPS_RELEASE && findOps(i32[fw + F_OPS]) === undefined) throw opsMissing(i32[fw + F_OPS], 'put');
  const d = pushRelease(arena, fw);
  const old = Atomics.sub(i32, fw + F_REFCOUNT, 1);
  if (old === 1) {
    if (d < L.RELEASE_CAP) i32[arena.slotBase + L.T_RELEASE + 2 * d + 1] |= L.REL_DROPPED;
  } else if (old > 1) {
    i32[arena.slotBase + L.T_RELEASE_DEPTH] = d;
    return;
  }
  if (old < 1) {
    Atomics.add(i32, fw + F_REFCOUNT, 1);
    i32[arena.slotBase + L.T_RELEASE_DEPTH] = d;
    throw Errors.badHandle('fence', fw, `put on a fence with refcount ${old}`);
  }
  releaseFence(arena, fw, view ?? new Fence(arena, fw), d);
}

/** The refusal of an op this thread cannot run: its ops were never registered here. */
function opsMissing(id: number, what: string): Error {
  return Errors.invalid(
    `${what} of a fence whose ops (id ${id >>> 0}) are not registered in this thread: its ops would not run here; ` +
      'call defineFenceOps with the same name in every thread that touches such fences',
  );
}

/**
 * Releases a fence whose last reference the caller has just dropped with its own Atomics.sub
 * after pushRelease returned `depth` (the runtime's ledger and sync files do, to keep no call
 * between forgetting a reference and dropping it).
 */
export function releaseFenceAt(arena: Arena, fw: number, depth: number, view?: Fence): void {
  releaseFence(arena, fw, view ?? new Fence(arena, fw), depth);
}

/**
 * The release after the last put, under release record `d` (see pushRelease), which it pops when
 * the block is freed: kernel dma_fence_release. An unsignaled fence with callbacks is resurrected
 * and signaled with -EDEADLK first; then ops.release runs and the block is freed.
 */
function releaseFence(arena: Arena, fw: number, view: Fence, d: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const state = d < L.RELEASE_CAP ? sb + L.T_RELEASE + 2 * d + 1 : 0;
  if (!(i32[fw + F_FLAGS] & FLAG_SIGNALED) && i32[fw + F_CB_HEAD] !== 0) {
    // Kernel dma_fence_release: callbacks would never run. Resurrect for the signal (remote
    // deliveries take references of their own), then drop our reference again.
    if (state) i32[state] |= L.REL_RESURRECTED;
    Atomics.store(i32, fw + F_REFCOUNT, 1);
    if (!(i32[fw + F_FLAGS] & FLAG_SIGNALED)) i32[fw + F_ERROR] = Errno.EDEADLK;
    try {
      view.signal();
    } finally {
      // The drop, then the flag, in one run (see pushRelease): the reaper sees our reference or a drop.
      const last = Atomics.sub(i32, fw + F_REFCOUNT, 1) === 1;
      if (state) i32[state] &= ~L.REL_RESURRECTED;
      if (last) freeFence(arena, fw, view, d, state);
      else i32[sb + L.T_RELEASE_DEPTH] = d;
    }
    return;
  }
  freeFence(arena, fw, view, d, state);
}

/** ops.release, then the block goes back to the allocator and release record `d` is popped. */
function freeFence(arena: Arena, fw: number, view: Fence, d: number, state: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  if (i32[L.H_STUB] === fw) {
    i32[sb + L.T_RELEASE_DEPTH] = d; // the stub is permanent
    return;
  }
  const id = i32[fw + F_OPS];
  const hasRelease = (i32[fw + F_FLAGS] & L.FLAG_OPS_RELEASE) !== 0;
  const ops = hasRelease ? findOps(id) : undefined;
  // Only a reaper finishing a dead thread's release (or a ledger drop) gets here without the ops:
  // the block is freed, and the missing release is reported rather than skipped without a word.
  if (hasRelease && ops === undefined) process.emitWarning(opsMissing(id, 'release'), { code: 'FENCELAB_OPS_MISSING' });
  const release = ops?.table.release;
  try {
    if (release !== undefined) {
      if (state) i32[state] |= L.REL_IN_RELEASE;
      release(view);
    }
  } finally {
    // A terminate() between the free and the pop leaves a record whose generation has moved on.
    arena.freeBlock(fw - BLOCK_HEADER_WORDS);
    i32[sb + L.T_RELEASE_DEPTH] = d;
  }
}

/**
 * Reap hook: finishes the releases a dead thread had in flight, innermost first. A dropped last
 * reference → the release runs here; the -EDEADLK signal's reference → signal (if the dead thread
 * had not got that far) and put; ops.release already called → the block is freed without calling
 * it again (what it had not released yet stays allocated, and `arena.check()` reports it).
 */
function finishDeadReleases(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: a thread detaches between calls, not inside a release
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const n = Math.min(i32[b + L.T_RELEASE_DEPTH], L.RELEASE_CAP);
  for (let j = n - 1; j >= 0; j--) {
    const fw = i32[b + L.T_RELEASE + 2 * j];
    const gs = i32[b + L.T_RELEASE + 2 * j + 1];
    if (!(gs & L.REL_DROPPED)) continue; // an intent: it died before its drop
    if (!arena.isLive(fw - BLOCK_HEADER_WORDS, gs & GEN_MASK)) continue; // freed before it died
    if (gs & L.REL_IN_RELEASE) {
      arena.freeBlock(fw - BLOCK_HEADER_WORDS);
    } else if (gs & L.REL_RESURRECTED) {
      const view = new Fence(arena, fw);
      if (!isSignaledFlag(i32, fw)) view.signal();
      putFence(arena, fw, view);
    } else {
      const d = pushRelease(arena, fw);
      if (d < L.RELEASE_CAP) i32[arena.slotBase + L.T_RELEASE + 2 * d + 1] |= L.REL_DROPPED;
      releaseFence(arena, fw, new Fence(arena, fw), d);
    }
  }
  i32[b + L.T_RELEASE_DEPTH] = 0;
}
onReap(ReapStage.RELEASES, finishDeadReleases);

/**
 * Reap hook: fence inline locks are not robust-listed (their hot path is one CAS), but they sit at
 * a known place in every fence block, so the heap walk finds the ones the dead thread held.
 */
function releaseDeadInlineLocks(arena: Arena, slot: number): void {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const dead = slot + 1;
  arena.walk((hw, _size, state, type) => {
    const fw = hw + BLOCK_HEADER_WORDS;
    if (state === A.STATE_LIVE && type === A.BlockType.FENCE && i32[fw + L.F_FLAGS] & L.FLAG_INLINE_LOCK) releaseDeadWord(i32, fw + L.F_LOCK, dead);
  });
}
onReap(ReapStage.LOCKS, releaseDeadInlineLocks);

/** Check hook: the stub fence lives as long as the arena; a thread between calls has no release in flight. */
onCheck((arena) => {
  const i32 = arena.i32;
  const problems: string[] = [];
  for (let s = 0; s < arena.maxThreads; s++) {
    const b = arena.slotWord(s);
    if (i32[b + A.T_STATE] === A.SLOT_FREE) continue;
    // The calling thread is between calls: no release of its own can be in flight (others may be).
    const releases = i32[b + L.T_RELEASE_DEPTH];
    if (releases < 0 || (s === arena.slot && releases !== 0)) problems.push(`thread ${s} has ${releases} fence releases in flight`);
  }
  const stub = i32[L.H_STUB];
  return { permanent: stub ? [stub] : [], problems };
});

/**
 * Fence.create; `recordAt` (0 none) is a word that receives the fence's payload word index in the
 * same run as its allocation (see InitArgs.recordAt): the driver's submit records its out-fence so.
 */
export function createFence(arena: Arena, init: FenceInit, recordAt: number): Fence {
  if (init === null || typeof init !== 'object') throw Errors.invalid('Fence.create needs { context, seqno }');
  const seqno64 = init.seqno64 === true;
  checkContextSeqno(init.context, init.seqno, seqno64);
  const ops = init.ops ?? defaultOps;
  if (typeof ops !== 'object' || findOps(ops.id) !== ops) throw Errors.invalid('ops must come from defineFenceOps in this thread');
  let lockIdx = 0;
  let lenderHw = 0;
  if (init.lock !== undefined) {
    let sl: SpinLock | undefined;
    if (init.lock instanceof SpinLock) {
      if (init.lock.arena.buffer !== arena.buffer) throw Errors.invalid('borrowed lock belongs to another arena');
      sl = init.lock;
    } else {
      sl = typeof init.lock === 'number' ? lockFromRef(arena, init.lock) : undefined;
      if (!sl) throw Errors.invalid('lock must be a SpinLock or a lock/raw block ref');
    }
    // The fence takes its lock with the arena's algorithm: one word, one algorithm, or the
    // two would corrupt each other's bits (a ticket word taken by a futex CAS, and so on).
    if (sl.kindId !== arena.lockKindId)
      throw Errors.invalid(`borrowed lock is a ${sl.kind} lock; fences of this arena lock with ${arena.lockKind}`);
    lockIdx = sl.index;
    lenderHw = arena.resolve(sl.ref, -1, 'lock');
  }
  const opsFlags = ops === defaultOps ? 0 : opsFlagsOf(ops.id);
  const fw = fenceAlloc(arena, FENCE_BLOCK, { opsId: ops.id, context: init.context, seqno: init.seqno, seqno64, lockIdx, lenderHw, recordAt, opsFlags });
  return new Fence(arena, fw);
}

setPutHook(
  (arena, fw) => putFence(arena, fw),
  (arena, fw, depth) => releaseFenceAt(arena, fw, depth),
);

/** @internal for containers: wraps a payload word index. */
export function fenceView(arena: Arena, fw: number): Fence {
  return new Fence(arena, fw);
}

/** Helper for borrowed locks given as a number: a LOCK block, or word 0 of a raw/operation block. */
function lockFromRef(arena: Arena, ref: number): SpinLock {
  const hw = arena.resolve(ref, -1, 'lock');
  const type = (arena.i32[hw + A.B_TAG] >>> A.TAG_TYPE_SHIFT) & A.TAG_TYPE_MASK;
  return type === A.BlockType.LOCK ? SpinLock.fromRef(arena, ref) : SpinLock.at(arena, ref, 0);
}

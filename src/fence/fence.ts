/**
 * The Fence: a view over a fence struct in the arena (kernel `struct dma_fence`), with mainline
 * semantics: idempotent signal, callbacks exactly once, error only before signal, ops detached on
 * signal, 32-bit wrap-around ordering unless 64-bit, release of an unsignaled fence with callbacks
 * → -EDEADLK. The lock is inline (in the fence, flag INLINE_LOCK) or borrowed from the exporter's
 * block (the use-after-free when that block is freed first). The view validates and delegates.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errors, isLiveObject } from '../errors.js';
import { contextAlloc, fenceGet, isSignaledFlag, nowNs, nsArg, setErrorChecked, statusOf } from './core.js';
import { createFenceAt, privateStubAt, stubFenceAt, type FenceInit } from './create.js';
import { FenceBase } from './fencebase.js';
import { createTrackedAt, receiveAt, shareAt, withdrawAt, type ShareOptions } from './handover.js';
import { ledgerPutIfTracked, ledgerPutRef } from './ledger.js';
import { aliveHolds } from './keepalive.js';
import { describeFence, driverNameOf, setDeadlineOf, timelineNameOf } from './opcalls.js';
import { holdsFenceLock } from './held.js';
import { putFence, setViewFactory } from './release.js';
import { adoptSignalingAt, signalerOf } from './signaler.js';
import { addCallbackNode, enableSignaling, pollSignaled, pollSignaledLocked, removeCallbackNode, signalFence, signalFenceInline, signalFenceLocked, type FenceCallback } from './signal.js';
import { getSpinMicros, setSpinMicros, waitAnyFence, waitAnyFenceAsync, waitFence, waitFenceAsync, type WaitOptions } from './wait.js';

export type { FenceInit } from './create.js';
export type { FenceCallback } from './signal.js';
export type { ShareOptions } from './handover.js';
export { putFence } from './release.js'; // the put API (release.ts), for importers of the handle-level API

const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

/**
 * A fence (kernel `struct dma_fence`): a one-shot completion signal in the arena that any attached
 * thread can wait on, add callbacks to, or signal. This object is a view: it holds no reference of
 * its own; {@link Fence.create} and {@link Fence.get} hand out references that {@link Fence.put}
 * drops, and the fence is released with its last one. Pass `fence.handle` to other threads, which
 * rebuild a view with {@link Fence.fromHandle}.
 *
 * Threads: any attached thread, through a view made in that thread. A view of a released fence
 * throws EBADF (or UseAfterFreeError with the sanitizer) instead of touching reused memory.
 */
export class Fence extends FenceBase {
  /**
   * Not public (a view built from a word index would skip the handle checks): use
   * {@link Fence.create} / {@link Fence.fromHandle}; the library's other modules use fenceView.
   */
  private constructor(arena: Arena, fw: number) {
    super(arena, fw);
  }

  /* ───────────── construction ───────────── */

  /** @internal A view of the fence at payload word `fw`, unchecked (fenceView below). */
  static view(arena: Arena, fw: number): Fence {
    return new Fence(arena, fw);
  }

  /**
   * Creates a fence with one reference (kernel dma_fence_init). `lock` given → borrowed lock
   * (extern); absent → the inline lock and the INLINE_LOCK flag.
   * Throws EINVAL (context/seqno/ops/lock), EBADF (stale lock ref), ENOMEM.
   */
  static create(arena: Arena, init: FenceInit): Fence {
    return new Fence(arena, createFenceAt(arenaArg(arena, 'Fence.create'), init, 0));
  }

  /** A view of the fence behind `handle` (takes no reference). Throws EBADF / EINVAL. */
  static fromHandle(arena: Arena, handle: number): Fence {
    return new Fence(arena, arenaArg(arena, 'Fence.fromHandle').resolve(handle, A.BlockType.FENCE, 'fence') + BLOCK_HEADER_WORDS);
  }

  /** Reserves `n` fence contexts; the first ever is 1 (0 belongs to the stub). */
  static contextAlloc(arena: Arena, n = 1): number {
    return contextAlloc(arenaArg(arena, 'Fence.contextAlloc'), n);
  }

  /**
   * The arena's permanent signaled stub fence (context 0, seqno 0), with a new reference.
   * Threads: any; the first call in the arena creates it.
   */
  static stub(arena: Arena): Fence {
    return new Fence(arena, stubFenceAt(arenaArg(arena, 'Fence.stub')));
  }

  /** A new signaled fence on its own context (kernel dma_fence_allocate_private_stub). */
  static privateStub(arena: Arena, timestamp?: bigint): Fence {
    return new Fence(arena, privateStubAt(arenaArg(arena, 'Fence.privateStub'), timestamp));
  }

  /** The ops' driver name; `"detached-driver"` once signaled (ops are detached on signal). */
  get driverName(): string {
    return driverNameOf(this, this.v());
  }
  /** The ops' timeline name; `"signaled-timeline"` once signaled. */
  get timelineName(): string {
    return timelineNameOf(this, this.v());
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

  /* ───────────── references ───────────── */

  /** Takes a reference and returns this fence. Throws EBADF on a released fence. */
  get(): Fence {
    fenceGet(this.arena.i32, this.v());
    return this;
  }

  /**
   * Drops a reference; the last one releases the fence: an unsignaled fence with callbacks is first
   * signaled with -EDEADLK (kernel WARN), then ops.release runs and the block is freed. A reference
   * the calling thread's ledger records ({@link createTracked}, {@link receive}) goes first, with its record.
   */
  put(): void {
    const fw = this.v();
    if (!ledgerPutIfTracked(this.arena, fw, this.gen, this)) putFence(this.arena, fw, this);
  }

  /* ───────────── tracked references and hand-over (src/fence/handover.ts) ───────────── */

  /**
   * {@link create}, with the reference recorded in the calling thread's ledger in the allocation's
   * run: if the thread dies at any point, its reaper puts it (nothing leaks). Put it with
   * {@link put} or {@link putTracked}. Threads: the creator. Throws as {@link create} (nothing recorded).
   */
  static createTracked(arena: Arena, init: FenceInit): Fence {
    return new Fence(arena, createTrackedAt(arenaArg(arena, 'Fence.createTracked'), init));
  }

  /**
   * {@link put}, for a reference the calling thread's ledger records ({@link createTracked}, {@link receive},
   * trackRef, importFd): EINVAL when it records none on the fence (nothing is put), EBADF when released.
   */
  putTracked(): void {
    const fw = this.v();
    if (!ledgerPutRef(this.arena, fw, this.gen, this))
      throw Errors.invalid('putTracked: the calling thread tracks no reference on this fence');
  }

  /**
   * Hands a new reference to one other thread: it waits in a transit record of the calling thread
   * (whose reaper drops it if this thread dies first) until {@link receive} claims it. Returns the
   * token, a safe integer wider than 32 bits (a message or a Float64Array/BigInt64Array word, never
   * an Int32Array). `options.signaling`: the receiver also becomes the fence's responsible thread
   * ({@link adoptSignaling}) in its claim's run. The caller keeps its reference. Threads: the
   * sender. Throws EINVAL (options), EBADF (released), ENOMEM.
   */
  share(options?: ShareOptions): number {
    return shareAt(this.arena, this.v(), options);
  }

  /**
   * Claims the reference behind a token from {@link share}, recorded in the calling thread's ledger in the
   * claim's run (put it with {@link put}; this thread's reaper puts it if it dies). Exactly one receive of a token
   * succeeds. Threads: any attached thread. Throws EINVAL (not a token), EBADF (stale: received, withdrawn, or
   * dropped with its dead sender; nothing changes), ENOMEM.
   */
  static receive(arena: Arena, token: number): Fence {
    return new Fence(arena, receiveAt(arenaArg(arena, 'Fence.receive'), token));
  }

  /**
   * Takes back and puts a reference the calling thread shared with {@link share} that nobody has
   * received. Returns true when withdrawn, false when the token names no pending share any more
   * (received or withdrawn). Throws EINVAL or EBADF (never a token), EPERM (another thread's share).
   */
  static withdraw(arena: Arena, token: number): boolean {
    return withdrawAt(arenaArg(arena, 'Fence.withdraw'), token);
  }

  /* ───────────── signaling ───────────── */

  /**
   * Makes the calling thread the one responsible for signaling this fence. Every fence has one:
   * its creator until another thread adopts it (a worker the fence was handed to, a piscina task's
   * worker as the task starts). When that thread dies (`arena.watch` sees it exit, or its slot is
   * reaped), its unsignaled fences are signaled with -EOWNERDEAD and their callbacks run.
   * Locking: takes the fence lock. Threads: any attached thread.
   * Returns false when the fence is already signaled (nothing to adopt). Throws EBADF when released.
   */
  adoptSignaling(): boolean {
    return adoptSignalingAt(this.arena, this.v());
  }

  /**
   * Thread slot responsible for signaling this fence (see {@link adoptSignaling}), or -1 once
   * signaled or when nothing but its children or timeline signals it (arrays, chains, sw_sync
   * points). Threads: any (a snapshot). Throws EBADF when released.
   */
  get signaler(): number {
    return signalerOf(this.arena.i32, this.v());
  }

  /**
   * Signals the fence and runs its pending callbacks.
   * Locking: takes the fence lock; must not be called with it held — use {@link signalLocked}.
   * Threads: any attached thread. Callbacks of the calling thread run before this returns (after
   * the lock is dropped); others are queued to their owner's inbox.
   * Returns nothing; signaling twice is a no-op (see {@link checkAndSignal}).
   */
  signal(): void {
    // The view's one-CAS lock (see lock()) on a live fence; anything else out of line (inline budget).
    const idx = this.fastLockIdx;
    if (idx !== 0 && (this.i32[this.hw + B_GEN] & GEN_MASK) === this.gen && !this.arena.detached) signalFenceInline(this.arena, this.fw, idx);
    else this.signalChecked();
  }
  /** {@link signal} without the one-CAS lock, or of a released view (throws). */
  private signalChecked(): void {
    signalFence(this.arena, this.v(), nowNs());
  }

  /** Signals with the given timestamp (monotonic ns, a bigint in 0..2^63-1, else EINVAL). No-op when already signaled. */
  signalTimestamp(ns: bigint): void {
    nsArg(ns, 'signalTimestamp');
    signalFence(this.arena, this.v(), ns, false);
  }

  /** Signals; returns true when the fence was already signaled (kernel dma_fence_check_and_signal). */
  checkAndSignal(): boolean {
    return signalFence(this.arena, this.v(), nowNs());
  }

  /**
   * Signals with the fence lock held by the caller (kernel dma_fence_signal_locked); callbacks run
   * here, under the lock. Returns true when it was already signaled. `ts` as signalTimestamp's (EINVAL, nothing changed).
   */
  signalLocked(ts?: bigint): boolean {
    return signalFenceLocked(this.arena, this.v(), ts === undefined ? nowNs() : nsArg(ts, 'signalLocked'), ts === undefined);
  }

  /** SIGNALED bit only, without asking the ops (kernel dma_fence_test_signaled_flag). */
  testSignaledFlag(): boolean {
    return isSignaledFlag(this.arena.i32, this.v());
  }

  /** Signaled? Asks ops.signaled when the flag is not set yet and signals when it says so. */
  isSignaled(): boolean {
    return pollSignaled(this, this.v());
  }

  /**
   * 0 pending, 1 signaled, negative errno when signaled with an error. Takes the fence lock:
   * EDEADLK (nothing done) when the caller holds it ({@link statusLocked} is for that).
   */
  status(): number {
    // Refused before the poll: under the caller's own lock the poll's signal (an array's or a
    // chain's) would fail half-way, and the lock below could never be taken anyway.
    if (holdsFenceLock(this.arena, this.v())) throw Errors.deadlock('status() while holding the fence lock: use statusLocked()');
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
   * ops.enableSignaling once, under the fence lock; false from it signals the fence. An op that
   * throws leaves signaling not enabled: the next enable calls it again (an array resumes its arming).
   * Throws EDEADLK (an array or chain over a fence whose lock the caller holds), ENOMEM, EINVAL, EBADF.
   */
  enableSignaling(): void {
    enableSignaling(this, this.v());
  }

  /**
   * Passes a deadline hint to ops.setDeadline (kernel dma_fence_set_deadline), unsignaled fences
   * only; arrays and chains forward it to their fences, sw_sync points record it.
   * Threads: any that registered the fence's ops. Throws EINVAL (ns not a bigint in 0..2^63-1, the
   * ops not registered in this thread), EBADF.
   */
  setDeadline(ns: bigint): void {
    nsArg(ns, 'setDeadline');
    setDeadlineOf(this, this.v(), ns);
  }

  /* ───────────── callbacks ───────────── */

  /**
   * Adds a callback that runs exactly once when the fence signals, in the calling thread (kernel
   * dma_fence_add_callback). Also enables signaling.
   * Returns null — and `fn` is never called — when the fence is already signaled, or when enabling
   * signaling signaled it (ops.enableSignaling refused, an array whose children all signaled): the
   * kernel's -ENOENT. Throws EINVAL (fn not a function, ops not registered here), ENOMEM, EDEADLK.
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
   * @internal A CBK_SHARED node: handler `id` (see defineSharedCallback) runs in the signaling thread
   * with `data`. Returns null when already signaled. `at`: see linkCallbackLocked (cleared at link).
   */
  addShared(id: number, data: number, at = 0): FenceCallback | null {
    return this.addNode(L.CBK_SHARED, id, data, at);
  }

  private addNode(kind: number, fn: ((f: Fence) => void) | number | null, target: number, at = 0): FenceCallback | null {
    return addCallbackNode(this, this.v(), kind, fn, target, at);
  }

  /** Removes a callback; true only if it was still pending (then it never runs). EINVAL: another fence's callback; EPERM: a function callback another thread added. */
  removeCallback(cb: FenceCallback): boolean {
    if (!isLiveObject(cb) || typeof cb.node !== 'number' || !isLiveObject(cb.fence) || cb.fence.fw !== this.fw) throw Errors.invalid('callback does not belong to this fence');
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

  /**
   * Waits until any of `fences` signals (kernel dma_fence_wait_any_timeout). Returns the index of the first signaled
   * one, or -1 on timeout. Blocks the calling thread. Arms a 48-byte wake node on each fence: ENOMEM, arming none, without room for all.
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

  /** Microseconds a waiter of this thread spins before sleeping (default 30). */
  static get spinMicros(): number {
    return getSpinMicros();
  }
  /** Sets this thread's spin (µs, finite, ≥ 0; 0 sleeps at once). Throws EINVAL. */
  static set spinMicros(us: number) {
    setSpinMicros(us);
  }

  /** Async waits and waitAny calls of this thread that currently hold the process alive. */
  static get pendingAsyncWaits(): number {
    return aliveHolds();
  }
}

/** @internal for the library's other modules: wraps a payload word index (no check). */
export const fenceView: (arena: Arena, fw: number) => Fence = Fence.view;
setViewFactory(fenceView);

/**
 * Waiting for fences: one fence (sync and async) and any of several. A waiter spins briefly, then
 * sleeps on the fence's flags word (the futex word) after publishing FLAG_WAITERS, which signal()
 * reads to decide whether to notify. waitAny arms a WAKE node per fence that bumps the calling
 * thread's wake word.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errors, optionsArg, describeValue, isArrayArg, isInstance } from '../errors.js';
import * as TR from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';
import { checkTimeout } from '../timeout.js';
import type { Fence } from './fence.js';
import { isFenceView } from './fencebase.js';
import { holdAlive, releaseAlive } from './keepalive.js';
import { reapGoneThreads } from '../arena/threads.js';
import { heldLockCount } from '../locks/lockword.js';
import type { FenceCallback } from './signal.js';
import { CB_BLOCK } from './callbacks.js';
import { availableBlocks } from '../arena/alloc.js';

const { EV_FENCE_WAIT_END, EV_FENCE_WAIT_START, TC_WAIT, T_WAIT_FENCE, T_WAIT_GEN, T_WAIT_SINCE } = TR;

const { FLAG_ENABLE_SIGNAL, FLAG_SIGNALED, FLAG_WAITERS } = L;

/** How long a waiter spins before sleeping: catches short operations without a futex wake. */
let spinMicros = 30;

export function getSpinMicros(): number {
  return spinMicros;
}

/** Sets the spin (µs, ≥ 0; 0 sleeps at once). Throws EINVAL. */
export function setSpinMicros(us: number): void {
  if (!Number.isFinite(us) || us < 0) throw Errors.invalid('spinMicros must be a finite number ≥ 0');
  spinMicros = us;
}

/**
 * Waits until signaled (kernel dma_fence_wait_timeout): enables signaling, spins briefly, then
 * sleeps on the flags word. Threads: any; on the main thread it blocks the event loop.
 * Returns true when signaled, false on timeout.
 */
export function waitFence(f: Fence, timeoutMs: number): boolean {
  const idx = beginWait(f, timeoutMs);
  if (idx < 0) return true;
  const arena = f.arena;
  const i32 = arena.i32;
  const span = tracing(i32, TC_WAIT) ? traceWaitStart(arena, idx - L.F_FLAGS, 0) : null;
  let outcome = WAIT_FAILED;
  try {
    outcome = waitBlocking(f, arena, idx, timeoutMs) ? WAIT_SIGNALED : WAIT_TIMED_OUT;
  } finally {
    if (span !== null) traceWaitEnd(arena, span, outcome);
  }
  return outcome === WAIT_SIGNALED;
}

/** The blocking part of {@link waitFence}: spin, then sleep on the flags word at `idx`. */
function waitBlocking(f: Fence, arena: Arena, idx: number, timeoutMs: number): boolean {
  const i32 = arena.i32;
  if (spinFor(i32, idx, FLAG_SIGNALED, timeoutMs)) return true;
  const deadline = performance.now() + timeoutMs;
  // While asleep the thread slot says on what, for an arena dump of a hung run (plain writes: ours).
  const sb = arena.slotBase;
  const fw = idx - L.F_FLAGS;
  i32[sb + T_WAIT_GEN] = i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + T_WAIT_SINCE] = Date.now() & 0x7fffffff;
  i32[sb + T_WAIT_FENCE] = fw;
  const patience = timeoutMs === Infinity ? new Patience(performance.now()) : null;
  try {
    for (;;) {
      const v = sleepValue(f, i32, idx, deadline);
      if (v === SIGNALED || v === TIMED_OUT) return v === SIGNALED;
      if (v !== RETRY) Atomics.wait(i32, idx, v, patience ? patience.slice() : deadline - performance.now());
      patience?.look(arena);
    }
  } finally {
    i32[sb + T_WAIT_FENCE] = 0;
  }
}

/** When a wait without timeout first looks for threads that are gone (see {@link Patience}), and its longest gap between looks. */
const PATIENCE_MS = 50;
const PATIENCE_MAX_MS = 1000;

/**
 * A blocking wait without timeout sleeps in slices, and between them reaps the arena's threads that
 * are gone from the process but not reaped (reapGoneThreads): its fence may be one that only such
 * a reap will signal (`-EOWNERDEAD`), and when this thread is the dead worker's parent, the 'exit'
 * event that would reap it waits for this wait to end. First look after PATIENCE_MS, then at
 * doubling gaps up to PATIENCE_MAX_MS (a look reads /proc once per live thread). Not while this
 * thread holds a lock: the reap takes locks.
 */
class Patience {
  private gap = PATIENCE_MS;
  private next: number;
  constructor(now: number) {
    this.next = now + PATIENCE_MS;
  }
  /** How long the next sleep may last: until the next look. */
  slice(): number {
    return Math.max(this.next - performance.now(), 1);
  }
  /** Between sleeps: the look, when due. */
  look(arena: Arena): void {
    const now = performance.now();
    if (now < this.next) return;
    this.gap = Math.min(this.gap * 2, PATIENCE_MAX_MS);
    this.next = now + this.gap;
    if (!arena.isDetached && heldLockCount(arena) === 0) reapGoneThreads(arena);
  }
}

/** Options of the async waits. */
export interface WaitOptions {
  /** Cancels the wait: the promise rejects with `signal.reason` (an AbortError unless given another). */
  signal?: AbortSignal;
}

/**
 * Like {@link waitFence} without blocking: the process stays alive while it is pending. An abort
 * of `opts.signal` rejects with its reason and drops the keep-alive at once.
 */
export async function waitFenceAsync(f: Fence, timeoutMs: number, opts?: WaitOptions): Promise<boolean> {
  const signal = abortSignalOf(opts);
  signal?.throwIfAborted();
  const idx = beginWait(f, timeoutMs);
  if (idx < 0) return true;
  const arena = f.arena;
  const i32 = arena.i32;
  const deadline = performance.now() + timeoutMs;
  const span = tracing(i32, TC_WAIT) ? traceWaitStart(arena, idx - L.F_FLAGS, 1) : null;
  let outcome = WAIT_FAILED;
  const abort = signal ? new AbortRace(signal) : undefined;
  holdAlive();
  try {
    for (;;) {
      const v = sleepValue(f, i32, idx, deadline);
      if (v === SIGNALED || v === TIMED_OUT) {
        outcome = v === SIGNALED ? WAIT_SIGNALED : WAIT_TIMED_OUT;
        return v === SIGNALED;
      }
      if (v === RETRY) continue;
      const r = Atomics.waitAsync(i32, idx, v, deadline - performance.now());
      if (r.async) await (abort ? abort.race(r.value) : r.value);
    }
  } finally {
    abort?.dispose();
    releaseAlive();
    if (span !== null && !arena.isDetached) traceWaitEnd(arena, span, outcome);
  }
}

/** A traced wait's fence, as read when the wait began (the waiter may not hold it to the end). */
type WaitSpan = [fw: number, gen: number, context: number, seqno: number];
const WAIT_SIGNALED = 1;
const WAIT_TIMED_OUT = 0;
const WAIT_FAILED = -1;

/** Records dma_fence_wait_start of fence `fw` (`mode` 0 blocking, 1 async); returns what its end needs. */
function traceWaitStart(arena: Arena, fw: number, mode: number): WaitSpan {
  const i32 = arena.i32;
  const span: WaitSpan = [fw, i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK, i32[fw + L.F_CONTEXT], i32[fw + L.F_SEQNO_LO]];
  traceEvent(arena, EV_FENCE_WAIT_START, span[0], span[1], span[2], span[3], mode);
  return span;
}

/** Records dma_fence_wait_end with the wait's outcome (WAIT_*). */
function traceWaitEnd(arena: Arena, span: WaitSpan, outcome: number): void {
  traceEvent(arena, EV_FENCE_WAIT_END, span[0], span[1], span[2], span[3], outcome);
}

/** `opts.signal`, validated. Throws EINVAL when it is not an AbortSignal. */
function abortSignalOf(opts: WaitOptions | undefined): AbortSignal | undefined {
  if (opts === undefined) return undefined;
  const s = optionsArg(opts, 'wait', ['signal']).signal;
  if (s !== undefined && !isInstance(s, AbortSignal)) throw Errors.invalid('wait options: signal must be an AbortSignal');
  return s;
}

/**
 * Races the waits of one async wait against an AbortSignal. One listener for the whole wait,
 * removed by dispose(): a signal that outlives many waits holds none of them.
 * Why the pending Atomics.waitAsync may be left behind on abort: it cannot be cancelled, but it
 * holds nothing alive (a pending waitAsync keeps no Node handle) and settles on the next notify
 * of its word or its timeout; the keep-alive that did hold the process is dropped at once.
 */
class AbortRace {
  private rejectNow: ((reason: unknown) => void) | undefined;
  private readonly onAbort = (): void => this.rejectNow?.(this.signal.reason);
  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }
  race<T>(p: Promise<T>): Promise<T> {
    if (this.signal.aborted) return Promise.reject(this.signal.reason);
    return new Promise<T>((resolve, reject) => {
      this.rejectNow = reject;
      p.then(resolve, reject);
    });
  }
  dispose(): void {
    this.rejectNow = undefined;
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

const SIGNALED = -1;
const RETRY = 0;
const TIMED_OUT = 1; // never a value to sleep on: those have bit 30 set

/** Validates the timeout and enables signaling; returns the flags word index, or -1 when signaled. */
function beginWait(f: Fence, timeoutMs: number): number {
  checkTimeout(timeoutMs, 'wait timeoutMs');
  if (f.isSignaled()) return -1;
  f.enableSignaling();
  return f.flagsIndex;
}

/**
 * One step of a wait: SIGNALED, TIMED_OUT (`deadline` passed), RETRY (the word changed under us),
 * or the flags value to sleep on. WAITERS is published before sleeping on the value that includes
 * it: signal() reads the bit to decide whether to notify, so a wake-up cannot be lost.
 */
function sleepValue(f: Fence, i32: Int32Array, idx: number, deadline: number): number {
  const v = Atomics.load(i32, idx);
  if (v & FLAG_SIGNALED || f.isSignaled()) return SIGNALED;
  if (performance.now() >= deadline) return TIMED_OUT;
  // Down again: another thread's enable, which this wait relied on, threw and was undone (signal.ts undoEnable).
  if (!(v & FLAG_ENABLE_SIGNAL)) {
    f.enableSignaling();
    return RETRY;
  }
  if (!(v & FLAG_WAITERS) && Atomics.compareExchange(i32, idx, v, v | FLAG_WAITERS) !== v) return RETRY;
  return v | FLAG_WAITERS; // never 0 or -1: bit 30 is set and bit 31 never is
}

/**
 * Waits until any of `fences` signals (kernel dma_fence_wait_any_timeout). Returns the index of
 * the first signaled one, or -1 on timeout. Blocks the calling thread.
 */
export function waitAnyFence(list: Fence[], timeoutMs: number): number {
  const fences = checkAny(list, timeoutMs);
  const first = firstSignaled(fences);
  if (first >= 0) return first;
  const { i32, wake, deadline, cbs } = armWakes(fences, timeoutMs);
  const patience = timeoutMs === Infinity ? new Patience(performance.now()) : null;
  try {
    for (;;) {
      const seen = Atomics.load(i32, wake);
      const i = anyReady(fences, deadline);
      if (i !== SLEEP) return i;
      Atomics.wait(i32, wake, seen, patience ? patience.slice() : deadline - performance.now());
      patience?.look(fences[0].arena);
    }
  } finally {
    disarmWakes(fences, cbs);
  }
}

/**
 * Async {@link waitAnyFence}; keeps the process alive while pending. An abort of `opts.signal`
 * rejects with its reason; the wake nodes are removed from every fence either way.
 */
export async function waitAnyFenceAsync(list: Fence[], timeoutMs: number, opts?: WaitOptions): Promise<number> {
  const signal = abortSignalOf(opts);
  signal?.throwIfAborted();
  const fences = checkAny(list, timeoutMs);
  const first = firstSignaled(fences);
  if (first >= 0) return first;
  const { i32, wake, deadline, cbs } = armWakes(fences, timeoutMs);
  const abort = signal ? new AbortRace(signal) : undefined;
  holdAlive();
  try {
    for (;;) {
      const seen = Atomics.load(i32, wake);
      const i = anyReady(fences, deadline);
      if (i !== SLEEP) return i;
      const r = Atomics.waitAsync(i32, wake, seen, deadline - performance.now());
      if (r.async) await (abort ? abort.race(r.value) : r.value);
    }
  } finally {
    abort?.dispose();
    releaseAlive();
    disarmWakes(fences, cbs);
  }
}

const SLEEP = -2;
/** Bytes of a wake node's block: a callback node rounded up to its size class. */
const WAKE_BYTES = A.SIZE_CLASSES.find((bytes) => bytes >= CB_BLOCK);

/** One step of a waitAny: the index of a signaled fence, -1 when `deadline` passed, else SLEEP. */
function anyReady(fences: Fence[], deadline: number): number {
  const i = firstSignaled(fences);
  if (i >= 0) return i;
  return performance.now() >= deadline ? -1 : SLEEP;
}

/**
 * Validates waitAny's arguments and returns the fences as a copy of the caller's array, each element
 * read once: the wait and its clean-up use the copy, so a caller that changes its array while an
 * async wait is pending (clears it to reuse it) cannot strand the wait or its wake nodes.
 */
function checkAny(list: Fence[], timeoutMs: number): Fence[] {
  checkTimeout(timeoutMs, 'waitAny timeoutMs');
  if (!isArrayArg(list) || list.length === 0) throw Errors.invalid(`waitAny needs a non-empty array of fences, got ${describeValue(list)}`);
  const fences: Fence[] = Array.prototype.slice.call(list);
  for (const f of fences) {
    if (!isFenceView(f)) throw Errors.invalid('waitAny: every element must be a Fence');
    if (f.arena !== fences[0].arena) throw Errors.invalid('waitAny: fences of different arenas');
  }
  return fences;
}

/**
 * Arms a WAKE node on each fence that bumps this thread's wake word when it signals (stopping at
 * the first fence already signaled). The caller waits on the word and disarms in `finally`.
 * Throws ENOMEM before arming anything when the arena has no room for a node on every fence.
 */
function armWakes(fences: Fence[], timeoutMs: number) {
  const arena = fences[0].arena;
  // Room for every node first, as the kernel allocates its callbacks before adding any. Blocks are
  // never split or merged: nodes carved from the heap by a call that ran out part way would stay
  // callback-sized blocks once freed, and the arena would no longer hold what it held before.
  // (Another thread allocating meanwhile can still make an arming fail part way.)
  const room = availableBlocks(arena, CB_BLOCK);
  if (room < fences.length) throw Errors.noRoom(`waitAny over ${fences.length} fences needs a wake node of ${WAKE_BYTES} bytes on each`, room);
  const wake = arena.slotBase + L.T_WAKE;
  const cbs: (FenceCallback | null)[] = [];
  try {
    for (const f of fences) {
      const cb = f.addWake(wake);
      cbs.push(cb);
      if (!cb) break;
    }
  } catch (e) {
    disarmWakes(fences, cbs);
    throw e;
  }
  return { i32: arena.i32, wake, deadline: performance.now() + timeoutMs, cbs };
}

function disarmWakes(fences: Fence[], cbs: (FenceCallback | null)[]): void {
  cbs.forEach((cb, i) => cb && fences[i].removeCallback(cb));
}

function firstSignaled(fences: Fence[]): number {
  for (let i = 0; i < fences.length; i++) if (fences[i].isSignaled()) return i;
  return -1;
}

/** Spins up to spinMicros (and the timeout) for `bit` in word `idx`. */
function spinFor(i32: Int32Array, idx: number, bit: number, timeoutMs: number): boolean {
  if (spinMicros <= 0) return false;
  const end = performance.now() + Math.min(spinMicros / 1000, timeoutMs);
  for (;;) {
    for (let k = 0; k < 64; k++) if (Atomics.load(i32, idx) & bit) return true;
    if (performance.now() >= end) return false;
  }
}


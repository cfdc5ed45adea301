/**
 * Signaling at handle level: signal (kernel dma_fence_signal*), enable signaling (ops.enableSignaling,
 * once), the ops' `signaled` poll, and adding or removing callbacks (which enables signaling). The
 * Fence methods are these with a view; the view is what the ops and callbacks are handed.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { linkCallbackLocked, unlinkCallbackLocked } from './callbacks.js';
import { runDetached } from './inbox.js';
import { attempt, Errors, FenceError, NO_ERROR, rethrowFirst } from '../errors.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import './callbackreap.js'; // registers the callbacks' reap hooks
import './linkcheck.js'; // registers the callback lists' part of arena.check()
import { isSignaledFlag, markSignaledLocked, nowNs, traceFence } from './core.js';
import { fenceAssertHeld, fenceLock, fenceUnlock } from './lock.js';
import * as TR from '../trace/layout.js';
import { tracing } from '../trace/ring.js';
import { acquireInlineSeen, releaseInlineExchanged } from '../locks/lockword.js';
import { T_INLINE_HELD } from '../locks/layout.js';
import { holdsFenceLock } from './held.js';
import type { Fence } from './fence.js';
import { findOps, opsById } from './ops.js';
import { FH } from './hot.js';
import './hot.js'; // its load-time check of FH (tsc drops the import above: const enum members only)

const { EV_FENCE_ENABLE_SIGNAL, TC_FENCE } = TR;
const { CB_FENCE, CB_NEXT, SIGNAL_INLINE, SIG_NEXT, SIG_NGEN, SIG_NODE, SIG_WORDS, T_SIGNAL, T_SIGNAL_DEFER, T_SIGNAL_DEFER_TAIL, T_SIGNAL_DEPTH } = L;

/** Returned by addCallback; pass to removeCallback. */
export interface FenceCallback {
  /** The fence the callback was added to. */
  readonly fence: Fence;
  /** @internal Payload word index of the node. */
  readonly node: number;
  /** @internal Generation of the node's block when it was added. */
  readonly generation: number;
}

/**
 * Signals fence `fw` with timestamp `ts` and runs its detached callbacks.
 * Locking: takes and drops the fence lock; callbacks run after it is dropped.
 * Threads: any attached thread. Returns true when it was already signaled (nothing happens).
 * `tsIsNow` false: `ts` is a time the caller chose (see markSignaledLocked).
 */
export function signalFence(arena: Arena, fw: number, ts: bigint, tsIsNow = true): boolean {
  if (isSignaledFlag(arena.i32, fw)) return true;
  let head: number;
  fenceLock(arena, fw);
  try {
    head = markSignaledLocked(arena, fw, ts, tsIsNow, true);
  } finally {
    fenceUnlock(arena, fw);
  }
  if (head > 0) runRecorded(arena, head);
  return head < 0;
}

/**
 * {@link signalFence} for a view whose inline lock takes the one-CAS path (Fence.signal: an inline
 * lock word `idx`, an arena that neither uses ticket locks nor sanitizes): the lock taken and
 * dropped as Fence.lock/unlock do, without fenceLock's dispatch. Same contract as signalFence,
 * stamped now.
 *
 * The clock is read here, under the lock (as the kernel's dma_fence_signal reads ktime_get()), not
 * passed in: where the caller's optimized code calls this function instead of inlining it (with
 * tracing on, the signaled event makes it too large to inline), a BigInt argument is allocated
 * on every signal; read and stored in one compiled function it never is.
 */
export function signalFenceInline(arena: Arena, fw: number, idx: number): boolean {
  const i32 = arena.i32;
  if (Atomics.load(i32, fw + FH.F_FLAGS) & FH.FLAG_SIGNALED) return true; // FH: see hot.ts
  const me = arena.me;
  const seen = Atomics.compareExchange(i32, idx, 0, me);
  if (seen !== 0) acquireInlineSeen(arena, idx, arena.lockKindId, seen);
  const held = arena.slotBase + T_INLINE_HELD;
  i32[held]++;
  let head: number;
  try {
    head = markSignaledLocked(arena, fw, nowNs(), true, true);
  } finally {
    // Held by us since the acquire above: one exchange frees it (as Fence.unlock), then a waiter
    // the word's bit announces is woken.
    const was = Atomics.exchange(i32, idx, 0);
    if (was !== me) releaseInlineExchanged(arena, idx, was);
    i32[held]--;
  }
  if (head > 0) runRecorded(arena, head);
  return head < 0;
}

/**
 * Runs detached list `head` under the signal record markSignaledLocked (with `record`) pushed for
 * it — the top of the calling thread's stack — then pops it. For signalers that mark a fence under
 * a lock of their own and run its callbacks after dropping it (sw_sync's timeline signaling).
 * A signal nested deeper than SIGNAL_INLINE does not run its list: it is deferred, and the signal at
 * depth SIGNAL_INLINE runs it (and whatever its callbacks defer in turn) before returning.
 */
export function runRecorded(arena: Arena, head: number): void {
  const at = arena.slotBase + T_SIGNAL_DEPTH;
  const d = arena.i32[at] - 1;
  if (d >= SIGNAL_INLINE) return deferHolding(arena, head, d);
  const rec = arena.slotBase + T_SIGNAL + d * SIG_WORDS;
  let first = attempt(runDetached, arena, head, rec, NO_ERROR);
  if (d === SIGNAL_INLINE - 1) first = attempt(runDeferred, arena, rec, 0, first);
  arena.i32[at] = d;
  rethrowFirst(first);
}

/**
 * The fences whose deferred lists hold a reference of the calling thread (its ledger records each),
 * with their arena: put once their lists ran (see {@link deferHolding}).
 */
const heldForDeferred: { arena: Arena; fw: number }[] = [];

/** A tracked reference's get and put (src/fence/ledger.ts installs its own: it sits above this module). */
let trackedGet: (arena: Arena, fw: number) => void = () => {
  throw Errors.invalid('no reference ledger loaded');
};
let trackedPut: (arena: Arena, fw: number, gen: number) => boolean = () => false;
/** @internal ledger.ts installs ledgerGetRef and ledgerPutRef at load. */
export function setTrackedRefs(get: typeof trackedGet, put: typeof trackedPut): void {
  trackedGet = get;
  trackedPut = put;
}

/**
 * {@link deferList} with a reference on the list's fence for the time until its callbacks run: the
 * signal returns first, and its caller may drop the last reference in between (a release signals an
 * unsignaled fence with -EDEADLK, then frees it), which would hand the callbacks a freed fence. The
 * reference is taken with its ledger entry in one run before the move, so a thread terminated
 * anywhere leaves its reaper the list (run at SIGNALS, the fence still alive) and the reference
 * (dropped at LEDGER, after). With no ledger room (ENOMEM) or no reference left to take (EBADF: a
 * signal of a fence nobody holds) the list is deferred without one, as before.
 */
function deferHolding(arena: Arena, head: number, d: number): void {
  const fw = arena.i32[head + CB_FENCE];
  let held = true;
  try {
    trackedGet(arena, fw);
  } catch (e) {
    if (!(e instanceof FenceError)) throw e;
    held = false;
  }
  deferList(arena, head, d);
  if (held) heldForDeferred.push({ arena, fw });
}

/** Takes the references {@link deferHolding} took for `arena`'s deferred lists so far. */
function takeHeldForDeferred(arena: Arena): number[] {
  const mine: number[] = [];
  for (let i = heldForDeferred.length - 1; i >= 0; i--) {
    if (heldForDeferred[i].arena === arena) mine.push(heldForDeferred.splice(i, 1)[0].fw);
  }
  return mine;
}

/** Puts the ledger-recorded reference on `fw` that its deferred list held (its callbacks have run). */
function putHeldForDeferred(arena: Arena, fw: number): void {
  trackedPut(arena, fw, arena.i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK);
}

/**
 * Moves list `head` of the calling thread's last signal record (`d`: over the inline depth) to the
 * end of its deferred list and pops the record. The walk to the list's tail only reads (the record
 * still names the list); the move is one run of plain writes, so a reaper finds the list in exactly
 * one of the two places.
 */
function deferList(arena: Arena, head: number, d: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  let tail = head;
  let hops = maxBlocks(arena);
  for (let nw = i32[head + CB_NEXT]; nw !== 0; nw = i32[nw + CB_NEXT]) {
    if (hops-- === 0) throw Errors.corruptArena('a deferred callback list does not end');
    linkedPayload(arena, nw, A.BlockType.CALLBACK, 'callback node');
    tail = nw;
  }
  const last = i32[sb + T_SIGNAL_DEFER_TAIL];
  if (i32[sb + T_SIGNAL_DEFER] !== 0) i32[last + CB_NEXT] = head;
  else i32[sb + T_SIGNAL_DEFER] = head;
  i32[sb + T_SIGNAL_DEFER_TAIL] = tail;
  i32[sb + T_SIGNAL_DEPTH] = d;
}

/**
 * Runs the calling thread's deferred lists under record `rec` (the last inline one, its own list
 * done), until its callbacks defer no more. Each list moves from the deferred words into the record
 * in one run of plain writes. A throwing callback does not stop the others; the first error is rethrown.
 */
function runDeferred(arena: Arena, rec: number): void {
  const i32 = arena.i32;
  const q = arena.slotBase + T_SIGNAL_DEFER;
  let first: unknown = NO_ERROR;
  for (let head = i32[q]; head !== 0; head = i32[q]) {
    // The references the lists joined here hold (later deferrals are the next batch's).
    const held = takeHeldForDeferred(arena);
    i32[rec + SIG_NODE] = head;
    i32[rec + SIG_NGEN] = i32[head - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
    i32[rec + SIG_NEXT] = i32[head + CB_NEXT];
    i32[q] = 0;
    i32[q + 1] = 0; // T_SIGNAL_DEFER_TAIL
    first = attempt(runDetached, arena, head, rec, first);
    for (const fw of held) first = attempt(putHeldForDeferred, arena, fw, 0, first);
  }
  rethrowFirst(first);
}

/**
 * {@link signalFence} with the fence lock held by the caller (kernel dma_fence_signal_locked):
 * callbacks run here, under the lock. Throws EPERM when the caller does not hold it.
 */
export function signalFenceLocked(arena: Arena, fw: number, ts: bigint, tsIsNow = true): boolean {
  fenceAssertHeld(arena, fw);
  const head = markSignaledLocked(arena, fw, ts, tsIsNow, true);
  if (head > 0) runRecorded(arena, head);
  return head < 0;
}

/** Signaled? Asks ops.signaled (with `view`) when the flag is not set yet, and signals when it says so. */
export function pollSignaled(view: Fence, fw: number): boolean {
  return poll(view, fw, false);
}

/**
 * {@link pollSignaled} with the fence lock held by the caller (kernel dma_fence_is_signaled_locked):
 * when ops.signaled says so, signals with {@link signalFenceLocked} (callbacks run here, under the
 * lock). Throws EPERM when the lock is not held.
 */
export function pollSignaledLocked(view: Fence, fw: number): boolean {
  fenceAssertHeld(view.arena, fw);
  return poll(view, fw, true);
}

/**
 * The SIGNALED flag, else ops.signaled's verdict; a fence its ops call signaled is signaled here,
 * with {@link signalFenceLocked} when the caller holds the lock (`locked`), else {@link signalFence}.
 */
function poll(view: Fence, fw: number, locked: boolean): boolean {
  const arena = view.arena;
  if (isSignaledFlag(arena.i32, fw)) return true;
  const t = findOps(arena.i32[fw + L.F_OPS])?.table;
  if (!t?.signaled || !t.signaled(view)) return false;
  if (locked) signalFenceLocked(arena, fw, nowNs());
  else signalFence(arena, fw, nowNs());
  return true;
}

/**
 * Kernel dma_fence_enable_sw_signaling: calls ops.enableSignaling(view) once, under the fence
 * lock; false from it signals the fence. Locking: takes the fence lock.
 */
export function enableSignaling(view: Fence, fw: number): void {
  const arena = view.arena;
  const flags = Atomics.load(arena.i32, fw + L.F_FLAGS);
  if (flags & (L.FLAG_ENABLE_SIGNAL | L.FLAG_SIGNALED)) return;
  // No op to call: the flag alone, without the lock, which guards the op's one call (kernel
  // __dma_fence_enable_signaling): a waiter does not contend with the fence's signaler for it. A
  // sanitizing arena takes the lock as ever (its checks of a borrowed lock's lender run there).
  if (!(flags & L.FLAG_OPS_ENABLE) && !arena.sanitize) return enableFlag(arena, fw);
  fenceLock(arena, fw);
  let head = 0;
  try {
    head = enableSignalingLocked(view, fw);
  } finally {
    fenceUnlock(arena, fw);
  }
  if (head > 0) runRecorded(arena, head);
}

/**
 * Sets ENABLE_SIGNAL of a fence whose ops have no enableSignaling. Throws EDEADLK, as the lock's
 * taking would, when the calling thread holds the fence's lock (a wait under it could not end).
 */
function enableFlag(arena: Arena, fw: number): void {
  if (holdsFenceLock(arena, fw)) {
    throw Errors.deadlock(`the calling thread holds the lock of fence @${fw * 4}: signaling cannot be enabled (nor waited for) under it`);
  }
  const old = Atomics.or(arena.i32, fw + L.F_FLAGS, L.FLAG_ENABLE_SIGNAL);
  if (!(old & (L.FLAG_ENABLE_SIGNAL | L.FLAG_SIGNALED)) && tracing(arena.i32, TC_FENCE)) traceFence(arena, EV_FENCE_ENABLE_SIGNAL, fw, 0);
}

/**
 * With the lock held: sets ENABLE_SIGNAL; returns a detached callback list if it signaled (its
 * signal record pushed: the caller runs it with runRecorded).
 */
function enableSignalingLocked(view: Fence, fw: number): number {
  const arena = view.arena;
  const i32 = arena.i32;
  const flags = i32[fw + L.F_FLAGS];
  if (flags & (L.FLAG_ENABLE_SIGNAL | L.FLAG_SIGNALED)) return 0;
  // Looked up before the flag is set: a thread without the ops of a fence that has the op is
  // refused (EINVAL) and leaves signaling to be enabled by a thread that has them, instead of
  // skipping the op. FLAG_OPS_ENABLE clear: the table has no enableSignaling to call.
  const t = flags & L.FLAG_OPS_ENABLE ? opsById(i32[fw + L.F_OPS]).table : undefined;
  if (t?.enableSignaling && enableRecorder !== null) return enableRecorder(arena, fw, () => enableNow(view, fw, t));
  return enableNow(view, fw, t);
}

/**
 * What records an `ops.enableSignaling` for a reaper, around the flag and the op (see
 * {@link setEnableRecorder}); null: nothing does.
 */
type EnableRecorder = (arena: Arena, fw: number, enable: () => number) => number;
let enableRecorder: EnableRecorder | null = null;

/**
 * Installs what runs the flag and the op of an enable on a fence with `ops.enableSignaling` (a
 * container's: an array records its arming before the flag goes up, src/containers/arraychildren.ts).
 */
export function setEnableRecorder(fn: EnableRecorder): void {
  enableRecorder = fn;
}

/** enableSignalingLocked from the flag on: sets it, calls the op (`t`'s), signals on a refusal. */
function enableNow(view: Fence, fw: number, t: ReturnType<typeof opsById>['table'] | undefined): number {
  const arena = view.arena;
  const i32 = arena.i32;
  const old = Atomics.or(i32, fw + L.F_FLAGS, L.FLAG_ENABLE_SIGNAL);
  if (old & (L.FLAG_ENABLE_SIGNAL | L.FLAG_SIGNALED)) return 0;
  if (tracing(i32, TC_FENCE)) traceFence(arena, EV_FENCE_ENABLE_SIGNAL, fw, 0);
  if (!t?.enableSignaling) return 0;
  let armed: boolean;
  try {
    armed = t.enableSignaling(view);
  } catch (e) {
    undoEnable(i32, fw);
    throw e;
  }
  // The refusal signals with a record, as signal() does: its waiters' wake and (nested in a
  // callback) the depth bookkeeping are the reaper's if the thread dies before runRecorded.
  return armed ? 0 : Math.max(0, markSignaledLocked(arena, fw, nowNs(), true, true));
}

/**
 * An `ops.enableSignaling` that threw did not enable signaling: the flag goes down again, so the
 * next enable calls the op again (an array resumes its arming where it stopped). A fence that
 * signaled meanwhile keeps it. A waiter asleep on the flags word had relied on this enable: it is
 * woken, finds the flag down and enables signaling itself (src/fence/wait.ts sleepValue).
 */
function undoEnable(i32: Int32Array, fw: number): void {
  const old = Atomics.and(i32, fw + L.F_FLAGS, ~L.FLAG_ENABLE_SIGNAL);
  if (old & L.FLAG_SIGNALED) Atomics.or(i32, fw + L.F_FLAGS, L.FLAG_ENABLE_SIGNAL);
  else if (old & L.FLAG_WAITERS) Atomics.notify(i32, fw + L.F_FLAGS);
}

/**
 * Links a callback node of `kind` (CBK_FN with `fn`, CBK_WAKE, CBK_SHARED with handler id `fn`)
 * and enables signaling (kernel dma_fence_add_callback). Locking: takes the fence lock.
 * Returns null — and the callback is never run — when the fence is already signaled, or when
 * enabling signaling signaled it (ops.enableSignaling refused): the kernel's -ENOENT.
 * `at` (0 none): a word cleared in the link's run (see linkCallbackLocked); left set when nothing was linked.
 * Throws EINVAL (the fence's ops not registered in this thread), ENOMEM.
 */
export function addCallbackNode(
  view: Fence,
  fw: number,
  kind: number,
  fn: ((f: Fence) => void) | number | null,
  target: number,
  at = 0,
): FenceCallback | null {
  const arena = view.arena;
  if (isSignaledFlag(arena.i32, fw)) return null;
  fenceLock(arena, fw);
  let head = 0;
  let nw = 0;
  try {
    // Enable first, link only if still unsignaled (kernel dma_fence_add_callback): a refusal
    // signals the fence, and the new callback must then not be on the list it runs.
    head = enableSignalingLocked(view, fw);
    if (!isSignaledFlag(arena.i32, fw)) {
      const entry = typeof fn === 'function' ? { fn, view, fw, arena } : fn;
      nw = linkCallbackLocked(arena, fw, kind, entry, target, at);
    }
  } finally {
    fenceUnlock(arena, fw);
  }
  if (head > 0) runRecorded(arena, head);
  if (nw === 0) return null;
  return { fence: view, node: nw, generation: arena.generationAt(nw - A.BLOCK_HEADER_WORDS) };
}

/**
 * Removes callback `cb` (one of fence `fw`'s, checked by the caller). Locking: takes the fence
 * lock. Returns true only if it was still pending (it will then never run). `at`: see
 * unlinkCallbackLocked (1 there in the unlink's run).
 */
export function removeCallbackNode(arena: Arena, fw: number, cb: FenceCallback, at = 0): boolean {
  fenceLock(arena, fw);
  try {
    return unlinkCallbackLocked(arena, fw, cb.node, cb.generation, at);
  } finally {
    fenceUnlock(arena, fw);
  }
}

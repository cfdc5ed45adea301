/**
 * Lock algorithms over one Int32 word, all recording the holder's thread slot (+1) in the word so
 * that misuse is detected and a dead holder can be recovered (robust-futex style: every holder
 * lists its words in its thread slot; the reaper releases them with LOCK_DIED set).
 *
 * Word layout (see layout.ts): bits 0–9 owner, bit 10 waiters (futex), bit 11 owner died,
 * bits 16–23 next ticket, bits 24–31 ticket being served (ticket kind only).
 */
import type { Arena } from '../arena/arena.js';
import { onDetach, onReap, ReapStage } from '../arena/hooks.js';
import { releaseDeadWord, ticketReleased } from './futex.js';
import { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT, futexLock, futexTryLock, futexUnlock } from './futex.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { deadlineOf } from '../timeout.js';

export { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT };

const OWNER = L.LOCK_OWNER_MASK;
const TM = L.LOCK_TICKET_MASK;
const NEXT = L.LOCK_TICKET_NEXT_SHIFT;
const SERVING = L.LOCK_TICKET_SERVING_SHIFT;
/** How many spin iterations pass between deadline checks. */
const CHECK_EVERY = 1024;

/**
 * The lock's deadline. The fast paths test a timeout inline (undefined, or a number ≥ 0) so that
 * they stay small enough to inline; everything else comes here, where a bad one is refused.
 */
function lockDeadline(timeoutMs: number | undefined): number {
  return deadlineOf(timeoutMs, 'lock timeoutMs');
}

/**
 * Acquires the lock word at `idx` with algorithm `kind` for the calling thread.
 * Locking: the caller must not already hold it (EDEADLK is thrown instead of deadlocking).
 * Threads: any attached thread. Returns ACQ_OK, ACQ_OWNER_DIED (took over from a dead holder) or
 * ACQ_TIMEOUT when `timeoutMs` passed first.
 */
export function acquireWord(arena: Arena, idx: number, kind: number, timeoutMs?: number): number {
  // Fast path, small enough for V8 to inline into callers: a free word, one CAS.
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const c = i32[sb + L.T_ROBUST_COUNT];
  if (kind !== L.LK_TICKET && c < L.ROBUST_CAP && (timeoutMs === undefined || (typeof timeoutMs === 'number' && timeoutMs >= 0))) {
    // Publish the word before trying: if we die between the CAS and the count update, the reaper
    // still finds it (it scans one entry past the count and releases only words we own).
    i32[sb + L.T_ROBUST + c] = idx;
    if (Atomics.compareExchange(i32, idx, 0, arena.me) === 0) {
      i32[sb + L.T_ROBUST_COUNT] = c + 1;
      return ACQ_OK;
    }
  }
  return acquireWordSlow(arena, idx, kind, timeoutMs);
}

function acquireWordSlow(arena: Arena, idx: number, kind: number, timeoutMs: number | undefined): number {
  // A bad timeout is misuse whether or not the lock is free.
  const deadline = lockDeadline(timeoutMs);
  const i32 = arena.i32;
  const me = arena.me;
  const sb = arena.slotBase;
  const c = publishRobust(i32, sb, idx);
  let r: number;
  if (kind !== L.LK_TICKET && Atomics.compareExchange(i32, idx, 0, me) === 0) {
    r = ACQ_OK;
  } else {
    const w = Atomics.load(i32, idx);
    if ((w & OWNER) === me) throw Errors.deadlock(`lock word @${idx * 4} is already held by the calling thread ${arena.slot}`);
    r = acquireSlow(i32, idx, kind, me, deadline);
    if (r === ACQ_TIMEOUT) return r;
  }
  i32[sb + L.T_ROBUST_COUNT] = c + 1;
  return r;
}

/**
 * Publishes `idx` one entry past the robust list of the slot at `sb` (if it fits) before the
 * caller tries to take it: if the caller dies between its CAS and the count update, the reaper
 * still finds the word (it scans one entry past the count and releases only words the dead
 * thread owns). Returns the count, which the caller sets to count + 1 once it holds the word.
 */
function publishRobust(i32: Int32Array, sb: number, idx: number): number {
  const c = i32[sb + L.T_ROBUST_COUNT];
  if (c < L.ROBUST_CAP) i32[sb + L.T_ROBUST + c] = idx;
  return c;
}

/** Tries once; ACQ_TIMEOUT when somebody holds it. */
export function tryAcquireWord(arena: Arena, idx: number, kind: number): number {
  const i32 = arena.i32;
  const me = arena.me;
  const sb = arena.slotBase;
  const c = publishRobust(i32, sb, idx);
  let r: number;
  if (kind === L.LK_TICKET) {
    const old = Atomics.load(i32, idx);
    const next = (old >>> NEXT) & TM;
    if ((old >>> SERVING) & TM ^ next || old & OWNER) return ACQ_TIMEOUT;
    const taken = ((old & ~(TM << NEXT)) | (((next + 1) & TM) << NEXT) | me) & ~L.LOCK_DIED;
    if (Atomics.compareExchange(i32, idx, old, taken) !== old) return ACQ_TIMEOUT;
    r = old & L.LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
  } else {
    r = futexTryLock(i32, idx, me);
    if (r === ACQ_TIMEOUT) return r;
  }
  i32[sb + L.T_ROBUST_COUNT] = c + 1;
  return r;
}

function acquireSlow(i32: Int32Array, idx: number, kind: number, me: number, deadline: number): number {
  switch (kind) {
    case L.LK_FUTEX:
      return futexLock(i32, idx, me, deadline);
    case L.LK_TICKET:
      return ticketLock(i32, idx, me, deadline);
    default:
      return spinLock(i32, idx, me, deadline, kind === L.LK_TTAS);
  }
}

/** Test-and-set (every attempt a CAS) or test-and-test-and-set with exponential backoff. */
function spinLock(i32: Int32Array, idx: number, me: number, deadline: number, ttas: boolean): number {
  let backoff = 1;
  for (let n = 1; ; n++) {
    const old = ttas ? Atomics.load(i32, idx) : Atomics.compareExchange(i32, idx, 0, me);
    if ((old & OWNER) === 0) {
      if (!ttas && old === 0) return ACQ_OK;
      if (Atomics.compareExchange(i32, idx, old, me) === old) return old & L.LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
      if (ttas) {
        for (let k = 0; k < backoff; k++) Atomics.load(i32, idx);
        if (backoff < 1024) backoff <<= 1;
      }
    }
    if (n % CHECK_EVERY === 0 && performance.now() >= deadline) return ACQ_TIMEOUT;
  }
}

/**
 * Ticket lock packed in the word: take `next`, wait until `serving` reaches it. A timeout can only
 * give the ticket back while nobody queued behind it; otherwise we wait for our turn and pass the
 * lock straight on (the call still returns ACQ_TIMEOUT, late).
 */
function ticketLock(i32: Int32Array, idx: number, me: number, deadline: number): number {
  let mine: number;
  for (;;) {
    const old = Atomics.load(i32, idx);
    mine = (old >>> NEXT) & TM;
    if ((((mine + 1) & TM) ^ ((old >>> SERVING) & TM)) === 0) throw Errors.busy('ticket lock has 255 waiters');
    const taken = (old & ~(TM << NEXT)) | (((mine + 1) & TM) << NEXT);
    if (Atomics.compareExchange(i32, idx, old, taken) === old) break;
  }
  let gaveUp = false;
  for (let n = 1; ; n++) {
    const w = Atomics.load(i32, idx);
    if (((w >>> SERVING) & TM) === mine && (w & OWNER) === 0) {
      // Our turn: nobody else may touch the owner bits now, only `next`.
      const old = Atomics.add(i32, idx, me);
      const died = (old & L.LOCK_DIED) !== 0;
      if (died) Atomics.and(i32, idx, ~L.LOCK_DIED);
      if (!gaveUp) return died ? ACQ_OWNER_DIED : ACQ_OK;
      releaseTicket(i32, idx);
      return ACQ_TIMEOUT;
    }
    if (!gaveUp && n % CHECK_EVERY === 0 && performance.now() >= deadline) {
      const undo = (w & ~(TM << NEXT)) | (mine << NEXT);
      if (((w >>> NEXT) & TM) === ((mine + 1) & TM) && Atomics.compareExchange(i32, idx, w, undo) === w) return ACQ_TIMEOUT;
      gaveUp = true;
    }
  }
}

function releaseTicket(i32: Int32Array, idx: number): void {
  for (;;) {
    const old = Atomics.load(i32, idx);
    if (Atomics.compareExchange(i32, idx, old, ticketReleased(old)) === old) return;
  }
}

/**
 * Releases a lock word the calling thread holds. Throws EPERM when another thread (or nobody)
 * holds it: the word is left untouched.
 */
export function releaseWord(arena: Arena, idx: number, kind: number): void {
  // Fast path, inlinable: ours, no waiter bits, last in the robust list → one CAS.
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const c = i32[sb + L.T_ROBUST_COUNT] - 1;
  if (
    kind !== L.LK_TICKET && c >= 0 && c < L.ROBUST_CAP && i32[sb + L.T_ROBUST + c] === idx &&
    Atomics.compareExchange(i32, idx, arena.me, 0) === arena.me
  ) {
    i32[sb + L.T_ROBUST_COUNT] = c;
    return;
  }
  releaseWordSlow(arena, idx, kind);
}

/** Lock words the calling thread holds in `arena` (robust-listed and inline fence locks). */
export function heldLockCount(arena: Arena): number {
  return arena.i32[arena.slotBase + L.T_ROBUST_COUNT] + arena.inlineLocksHeld;
}

/**
 * Reap hook: releases every robust-listed word the dead thread held, marked owner-died, and the
 * one it was acquiring. Scans one entry past the count: a word is published before its CAS (see
 * acquireWord), and only words the dead thread owns are touched.
 */
function releaseDeadLocks(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: refused while locks are held (below)
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const dead = slot + 1;
  const pending = i32[b + L.T_ROBUST_PENDING];
  if (pending > 0) releaseDeadWord(i32, pending, dead);
  const n = Math.min(i32[b + L.T_ROBUST_COUNT] + 1, L.ROBUST_CAP);
  for (let j = 0; j < n; j++) releaseDeadWord(i32, i32[b + L.T_ROBUST + j], dead);
}
onReap(ReapStage.LOCKS, releaseDeadLocks);
onDetach((arena) => (heldLockCount(arena) > 0 ? 'detach while holding locks' : null));

/**
 * acquireWord for a fence's inline lock word. Inline words skip the robust list: they sit at a
 * known place in every fence block, so the reaper finds a dead holder's by walking the heap, and
 * the hot path is one CAS. Same results and errors as acquireWord.
 */
export function acquireInline(arena: Arena, idx: number, kind: number, timeoutMs?: number): number {
  if (kind !== L.LK_TICKET && (timeoutMs === undefined || (typeof timeoutMs === 'number' && timeoutMs >= 0)) && Atomics.compareExchange(arena.i32, idx, 0, arena.me) === 0) {
    arena.inlineLocksHeld++;
    return ACQ_OK;
  }
  const deadline = lockDeadline(timeoutMs);
  const w = Atomics.load(arena.i32, idx);
  if ((w & OWNER) === arena.me) throw Errors.deadlock(`lock word @${idx * 4} is already held by the calling thread ${arena.slot}`);
  const r = acquireSlow(arena.i32, idx, kind, arena.me, deadline);
  if (r !== ACQ_TIMEOUT) arena.inlineLocksHeld++;
  return r;
}

/** releaseWord for a fence's inline lock word (see acquireInline). */
export function releaseInline(arena: Arena, idx: number, kind: number): void {
  const i32 = arena.i32;
  const me = arena.me;
  if (kind === L.LK_TICKET || Atomics.compareExchange(i32, idx, me, 0) !== me) {
    const w = Atomics.load(i32, idx);
    if ((w & OWNER) !== me) throw Errors.notOwner(`lock word @${idx * 4}`, (w & OWNER) - 1, arena.slot);
    if (kind === L.LK_FUTEX) futexUnlock(i32, idx);
    else if (kind === L.LK_TICKET) releaseTicket(i32, idx);
    else Atomics.store(i32, idx, 0);
  }
  arena.inlineLocksHeld--;
}

function releaseWordSlow(arena: Arena, idx: number, kind: number): void {
  const i32 = arena.i32;
  const me = arena.me;
  const sb = arena.slotBase;
  const w = Atomics.load(i32, idx);
  if ((w & OWNER) !== me) {
    // We may have held it and lost it (the word was overwritten — a dangling borrowed lock):
    // forget it so the robust list does not keep a word we no longer own.
    const c = i32[sb + L.T_ROBUST_COUNT] - 1;
    if (c >= 0) dropRobust(i32, sb, idx, c);
    throw Errors.notOwner(`lock word @${idx * 4}`, (w & OWNER) - 1, arena.slot);
  }
  if (kind === L.LK_FUTEX) futexUnlock(i32, idx);
  else if (kind === L.LK_TICKET) releaseTicket(i32, idx);
  else Atomics.store(i32, idx, 0);
  const c = i32[sb + L.T_ROBUST_COUNT] - 1;
  if (c < L.ROBUST_CAP && i32[sb + L.T_ROBUST + c] === idx) i32[sb + L.T_ROBUST_COUNT] = c;
  else dropRobust(i32, sb, idx, c);
}

/**
 * Out-of-order unlock: remove `idx` from the robust list wherever it is (`last` = count - 1).
 * Past ROBUST_CAP nested locks the extra ones were never listed: only the count goes down.
 */
function dropRobust(i32: Int32Array, sb: number, idx: number, last: number): void {
  const listed = Math.min(last, L.ROBUST_CAP - 1);
  for (let j = listed; j >= 0; j--) {
    if (i32[sb + L.T_ROBUST + j] === idx) {
      i32.copyWithin(sb + L.T_ROBUST + j, sb + L.T_ROBUST + j + 1, sb + L.T_ROBUST + listed + 1);
      i32[sb + L.T_ROBUST_COUNT] = last;
      return;
    }
  }
  if (last >= L.ROBUST_CAP) i32[sb + L.T_ROBUST_COUNT] = last;
}

/** Thread slot holding the word, or -1. */
export function wordOwner(i32: Int32Array, idx: number): number {
  return (Atomics.load(i32, idx) & OWNER) - 1;
}

export function lockKindId(kind: L.LockKind | undefined, fallback: number): number {
  if (kind === undefined) return fallback;
  const k = L.LOCK_KINDS.indexOf(kind);
  if (k < 0) throw Errors.invalid(`unknown lock kind ${String(kind)} (one of ${L.LOCK_KINDS.join(', ')})`);
  return k;
}

/**
 * Lock algorithms over one Int32 word, all recording the holder's thread slot (+1) in the word so
 * that misuse is detected and a dead holder can be recovered (robust-futex style: every holder
 * lists its words in its thread slot; the reaper releases them with LOCK_DIED set).
 *
 * Word layout (see layout.ts): bits 0–9 owner, bit 10 waiters (futex), bit 11 owner died,
 * bits 16–23 next ticket, bits 24–31 ticket being served (ticket kind only; see ticket.ts for how
 * a ticket taken by a thread that never takes its turn is recovered).
 *
 * The robust list (T_ROBUST, T_ROBUST_COUNT) holds every word taken through acquireWord, in any
 * order of release. It is bounded: the public lock calls refuse a word past MAX_HELD_LOCKS
 * (ENOLCK), the library's internal ones past ROBUST_CAP; an unlisted word of a dead thread would
 * stay locked forever. Fence inline locks are not listed (the reaper finds them by walking the heap).
 */
import type { Arena } from '../arena/arena.js';
import { onDetach, onHeldWords, onThreadCheck } from '../arena/hooks.js';
import { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT, futexLock, futexTryLock, futexUnlock } from './futex.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { watchOwner } from './owners.js';
import { releaseTicket, ticketLock, ticketTryLock } from './ticket.js';
import './deadreap.js'; // registers the reap of a dead thread's robust-listed words
import { Errors, describeValue } from '../errors.js';
import { deadlineOf } from '../timeout.js';
import * as TR from '../trace/layout.js';
import { noteTracedHold, traceEvent, tracedHoldCount, traceRelease, tracing } from '../trace/ring.js';

const { EV_LOCK_ACQUIRED, EV_LOCK_CONTENDED, EV_LOCK_OWNER_DIED, TC_LOCK, T_WAIT_LOCK } = TR;

export { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT };

const OWNER = L.LOCK_OWNER_MASK;
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
 * Acquires the lock word at `idx` with algorithm `kind` for the calling thread and lists it on
 * the thread's robust list.
 * Locking: the caller must not already hold it (EDEADLK is thrown instead of deadlocking). A
 * thread lists at most `cap` words at once: the public lock calls pass MAX_HELD_LOCKS, the
 * library's own short internal locks the default ROBUST_CAP; past it → ENOLCK, nothing changed.
 * Threads: any attached thread. Returns ACQ_OK, ACQ_OWNER_DIED (took over from a dead holder) or
 * ACQ_TIMEOUT when `timeoutMs` passed first. Throws EINVAL (bad timeout), EBUSY (255 tickets out),
 * ENOTRECOVERABLE (no timeout, and the word names a holder that cannot exist).
 */
export function acquireWord(arena: Arena, idx: number, kind: number, timeoutMs?: number, cap: number = L.ROBUST_CAP): number {
  // Fast path, small enough for V8 to inline into callers: a free word, one CAS.
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const c = i32[sb + L.T_ROBUST_COUNT];
  if (kind !== L.LK_TICKET && c < cap && (timeoutMs === undefined || (typeof timeoutMs === 'number' && timeoutMs >= 0))) {
    // Publish the word before trying: if we die between the CAS and the count update, the reaper
    // still finds it (it scans one entry past the count and releases only words we own).
    i32[sb + L.T_ROBUST + c] = idx;
    if (Atomics.compareExchange(i32, idx, 0, arena.me) === 0) {
      i32[sb + L.T_ROBUST_COUNT] = c + 1;
      return ACQ_OK;
    }
  }
  return acquireWordSlow(arena, idx, kind, timeoutMs, cap);
}

function acquireWordSlow(arena: Arena, idx: number, kind: number, timeoutMs: number | undefined, cap: number): number {
  // A bad timeout is misuse whether or not the lock is free.
  const deadline = lockDeadline(timeoutMs);
  const i32 = arena.i32;
  const me = arena.me;
  const sb = arena.slotBase;
  const c = i32[sb + L.T_ROBUST_COUNT];
  // A negative count (the fast path only compares it with the cap) indexes words before the list.
  if (c < 0) throw Errors.corruptArena(`thread ${arena.slot} counts ${c} held lock words`);
  // The fast path may have published the word: unpublish it until we try again (see unlist).
  if (c < L.ROBUST_CAP) i32[sb + L.T_ROBUST + c] = 0;
  if ((Atomics.load(i32, idx) & OWNER) === me) throw Errors.deadlock(`lock word @${idx * 4} is already held by the calling thread ${arena.slot}`);
  if (c >= cap) throw Errors.tooManyLocks(c);
  i32[sb + L.T_ROBUST + c] = idx;
  let r: number;
  try {
    r = kind === L.LK_TICKET ? ticketTryLock(i32, idx, me) : Atomics.compareExchange(i32, idx, 0, me) === 0 ? ACQ_OK : ACQ_TIMEOUT;
    if (r === ACQ_TIMEOUT) r = acquireContended(arena, idx, kind, deadline);
  } catch (e) {
    i32[sb + L.T_ROBUST + c] = 0; // thrown before the word was taken (EBUSY, ENOTRECOVERABLE)
    throw e;
  }
  if (r === ACQ_TIMEOUT) {
    i32[sb + L.T_ROBUST + c] = 0;
    return r;
  }
  i32[sb + L.T_ROBUST_COUNT] = c + 1;
  return r;
}

/**
 * Tries once; ACQ_TIMEOUT when somebody (the caller included) holds it. Lists the word like
 * acquireWord and refuses past `cap` words with ENOLCK.
 */
export function tryAcquireWord(arena: Arena, idx: number, kind: number, cap: number = L.ROBUST_CAP): number {
  const i32 = arena.i32;
  const me = arena.me;
  const sb = arena.slotBase;
  const c = i32[sb + L.T_ROBUST_COUNT];
  if (c >= cap) throw Errors.tooManyLocks(c);
  i32[sb + L.T_ROBUST + c] = idx;
  const r = kind === L.LK_TICKET ? ticketTryLock(i32, idx, me) : futexTryLock(i32, idx, me);
  if (r === ACQ_TIMEOUT) {
    i32[sb + L.T_ROBUST + c] = 0;
    return r;
  }
  i32[sb + L.T_ROBUST_COUNT] = c + 1;
  if (r === ACQ_OWNER_DIED && tracing(i32, TC_LOCK)) traceEvent(arena, EV_LOCK_OWNER_DIED, idx, 0, 0, 0, 0);
  return r;
}

/**
 * The waiting part of an acquisition, with the thread slot saying which word the thread waits for
 * (an arena dump of a hung run names it and its holder) and, when tracing, the contention events:
 * contended (with the holder seen), acquired, owner died. A contended hold is traced to its release.
 * `seen`: the non-zero word a failed compare-exchange of the caller's returned, if any (see futexLock).
 */
function acquireContended(arena: Arena, idx: number, kind: number, deadline: number, seen?: number, spun = false): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const holder = ((seen ?? Atomics.load(i32, idx)) & OWNER) - 1;
  const traced = holder >= 0 && tracing(i32, TC_LOCK);
  if (traced) traceEvent(arena, EV_LOCK_CONTENDED, idx, holder, kind, 0, 0);
  i32[sb + T_WAIT_LOCK] = idx;
  let r: number;
  try {
    r = acquireSlow(arena, idx, kind, deadline, seen, spun);
  } finally {
    i32[sb + T_WAIT_LOCK] = 0;
  }
  if (traced) {
    traceEvent(arena, EV_LOCK_ACQUIRED, idx, r, 0, 0, 0);
    if (r !== ACQ_TIMEOUT) {
      noteTracedHold(idx);
      // A waiter bit of our own sends this hold's release down the slow path, where it is recorded:
      // the fast paths then carry no tracing check. A ticket word always releases slowly; for the
      // others a spurious bit costs one notify nobody waits for.
      if (kind !== L.LK_TICKET) Atomics.or(i32, idx, L.LOCK_WAITERS);
    }
  }
  if (r === ACQ_OWNER_DIED && tracing(i32, TC_LOCK)) traceEvent(arena, EV_LOCK_OWNER_DIED, idx, 0, 0, 0, 0);
  return r;
}

/**
 * The algorithm's wait; `seen`: the non-zero word a failed compare-exchange returned, if any, and
 * `spun`: the caller ran futexSpin already (see futexLock).
 */
function acquireSlow(arena: Arena, idx: number, kind: number, deadline: number, seen: number | undefined, spun: boolean): number {
  switch (kind) {
    case L.LK_FUTEX:
      return futexLock(arena.i32, idx, arena.me, deadline, seen, spun);
    case L.LK_TICKET:
      return ticketLock(arena.i32, idx, arena.me, arena.slotBase, deadline);
    default:
      return spinLock(arena.i32, idx, arena.me, deadline, kind === L.LK_TTAS);
  }
}

/**
 * Test-and-set (every attempt a CAS) or test-and-test-and-set with exponential backoff. Without a
 * deadline, gives up with ENOTRECOVERABLE on a holder that cannot exist (see owners.ts).
 */
function spinLock(i32: Int32Array, idx: number, me: number, deadline: number, ttas: boolean): number {
  let backoff = 1;
  let since = -1;
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
    if (n % CHECK_EVERY === 0) {
      const now = performance.now();
      if (now >= deadline) return ACQ_TIMEOUT;
      if (deadline === Infinity) since = watchOwner(i32, idx, old, now, since);
    }
  }
}

/**
 * Releases a lock word the calling thread holds and drops it from the robust list (wherever it is
 * in the list: any release order). Throws EPERM when another thread (or nobody) holds it: the
 * word is left untouched.
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
    i32[sb + L.T_ROBUST + c] = 0; // see unlist
    return;
  }
  releaseWordSlow(arena, idx, kind);
}

/** Lock words the calling thread holds in `arena` (robust-listed and inline fence locks). */
export function heldLockCount(arena: Arena): number {
  return arena.i32[arena.slotBase + L.T_ROBUST_COUNT] + arena.i32[arena.slotBase + L.T_INLINE_HELD];
}

onDetach((arena) => (heldLockCount(arena) > 0 ? 'detach while holding locks' : null));

/** The held-words search arena.free asks (hooks.ts heldWords): a robust-listed word of the calling thread's inside block `hw`. */
onHeldWords(L.T_ROBUST_COUNT, (arena, hw) => {
  const i32 = arena.i32;
  const b = arena.slotBase;
  const end = hw + A.BLOCK_HEADER_WORDS + (arena.payloadBytes(hw) >>> 2);
  const n = Math.min(i32[b + L.T_ROBUST_COUNT], L.ROBUST_CAP);
  for (let j = 0; j < n; j++) {
    const idx = i32[b + L.T_ROBUST + j];
    if (idx >= hw && idx < end) return idx;
  }
  return -1;
});

/**
 * What is wrong with the `count` listed words of slot `s` (at slot word `b`): each must be a word of
 * the arena, and the calling thread (between calls) must hold each of its own — a listed word it
 * does not hold is a corrupted list (an unlock would not find it, a reaper would skip it).
 */
function robustListProblems(arena: Arena, s: number, b: number, count: number): string[] {
  const i32 = arena.i32;
  const problems: string[] = [];
  for (let j = 0; j < count; j++) {
    const idx = i32[b + L.T_ROBUST + j];
    // Another live thread's list may change under this read: a release in flight lowers the count
    // and clears the entry (and a new acquire refills it), so its 0 is a moment, not a corruption.
    if (idx === 0 && s !== arena.slot) continue;
    if (!(idx > 0 && idx < i32.length)) problems.push(`thread ${s} lists lock word ${j} at word ${idx}, outside the arena`);
    else if (s === arena.slot && (Atomics.load(i32, idx) & OWNER) !== arena.me) problems.push(`thread ${s} lists lock word @${idx * 4}, which it does not hold`);
  }
  return problems;
}

/**
 * Check hook: every occupied slot's robust list is within its bounds and its inline-lock count not
 * below 0, and the calling thread —
 * between calls — has no ticket record left (others may be waiting in a ticket queue right now).
 */
onThreadCheck((arena, s, b) => {
  const i32 = arena.i32;
  const count = i32[b + L.T_ROBUST_COUNT];
  const problems = count < 0 || count > L.ROBUST_CAP ? [`thread ${s} counts ${count} held lock words (0..${L.ROBUST_CAP})`] : robustListProblems(arena, s, b, count);
  // Below 0 a thread that holds locks would read as holding none (container work run under them).
  const inline = i32[b + L.T_INLINE_HELD];
  if (inline < 0) problems.push(`thread ${s} counts ${inline} held fence inline locks`);
  const rec = i32[b + L.T_ROBUST_TICKET];
  if (s === arena.slot && rec !== 0) problems.push(`thread ${s} has a ticket record left between calls (0x${rec.toString(16)})`);
  return problems;
});

/**
 * acquireWord for a fence's inline lock word. Inline words skip the robust list: they sit at a
 * known place in every fence block, so the reaper finds a dead holder's by walking the heap, and
 * the hot path is one CAS. Same results and errors as acquireWord (no ENOLCK: not listed).
 */
export function acquireInline(arena: Arena, idx: number, kind: number, timeoutMs?: number): number {
  if (kind !== L.LK_TICKET && (timeoutMs === undefined || (typeof timeoutMs === 'number' && timeoutMs >= 0)) && Atomics.compareExchange(arena.i32, idx, 0, arena.me) === 0) {
    arena.i32[arena.slotBase + L.T_INLINE_HELD]++;
    return ACQ_OK;
  }
  const deadline = lockDeadline(timeoutMs);
  const w = Atomics.load(arena.i32, idx);
  if ((w & OWNER) === arena.me) throw Errors.deadlock(`lock word @${idx * 4} is already held by the calling thread ${arena.slot}`);
  let r = kind === L.LK_TICKET ? ticketTryLock(arena.i32, idx, arena.me) : ACQ_TIMEOUT;
  if (r === ACQ_TIMEOUT) r = acquireContended(arena, idx, kind, deadline);
  if (r !== ACQ_TIMEOUT) arena.i32[arena.slotBase + L.T_INLINE_HELD]++;
  return r;
}

/**
 * acquireInline without a timeout, for a caller whose compare-exchange on the inline word at `idx`
 * found it held (`seen`, non-zero): straight to the algorithm's wait, with no second
 * compare-exchange on a word another thread holds. Not for ticket words. Does not count the lock
 * in the slot's T_INLINE_HELD: the caller does. `spun`: the caller ran futexSpin on a futex word and it
 * gave up (see {@link inlineSpins}); the wait goes straight to sleeping.
 * Locking: EDEADLK when `seen` says the calling thread holds it. Returns ACQ_OK or ACQ_OWNER_DIED.
 */
export function acquireInlineSeen(arena: Arena, idx: number, kind: number, seen: number, spun = false): number {
  if ((seen & OWNER) === arena.me) throw Errors.deadlock(`lock word @${idx * 4} is already held by the calling thread ${arena.slot}`);
  return acquireContended(arena, idx, kind, Infinity, seen, spun);
}

/**
 * True when a caller whose compare-exchange on an inline word found it held (`seen`) may run
 * futexSpin itself before acquireInlineSeen: a futex word held by another thread, lock tracing off
 * (a traced acquisition records its contention in acquireContended). The word is not yet waited
 * for in the thread slot (T_WAIT_LOCK) during that spin, only once the thread sleeps.
 */
export function inlineSpins(i32: Int32Array, kind: number, seen: number, me: number): boolean {
  return kind === L.LK_FUTEX && (seen & OWNER) !== me && !tracing(i32, TC_LOCK);
}

/**
 * The rest of a release for a caller that held the word and exchanged it to free, reading `seen`
 * (its owner id with the waiters' bit set): wakes one waiter, and records the end of a traced hold
 * (a traced hold sets that bit: see acquireContended). Does not count the lock out of
 * T_INLINE_HELD: the caller does.
 */
export function releaseInlineExchanged(arena: Arena, idx: number, seen: number): void {
  if (seen & L.LOCK_WAITERS) Atomics.notify(arena.i32, idx, 1);
  if (tracedHoldCount !== 0) traceRelease(arena, idx);
}

/** releaseWord for a fence's inline lock word (see acquireInline). */
export function releaseInline(arena: Arena, idx: number, kind: number): void {
  const i32 = arena.i32;
  const me = arena.me;
  if (kind === L.LK_TICKET || Atomics.compareExchange(i32, idx, me, 0) !== me) {
    const w = Atomics.load(i32, idx);
    if ((w & OWNER) !== me) throw Errors.notOwner(`lock word @${idx * 4}`, (w & OWNER) - 1, arena.slot);
    releaseHeld(i32, idx, kind);
    if (tracedHoldCount !== 0) traceRelease(arena, idx); // a traced hold releases here (see acquireContended)
  }
  i32[arena.slotBase + L.T_INLINE_HELD]--;
}

/** Releases a word the caller was found to hold, by its algorithm. */
function releaseHeld(i32: Int32Array, idx: number, kind: number): void {
  if (kind === L.LK_FUTEX) futexUnlock(i32, idx);
  else if (kind === L.LK_TICKET) releaseTicket(i32, idx);
  else Atomics.store(i32, idx, 0);
}

function releaseWordSlow(arena: Arena, idx: number, kind: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const w = Atomics.load(i32, idx);
  const held = (w & OWNER) === arena.me;
  // The word first, the list after: a thread terminated between the two leaves a listed word it
  // does not own (skipped by the reaper), never an owned word that is not listed.
  if (held) releaseHeld(i32, idx, kind);
  // Not held: we may have held it and lost it (the word was overwritten — a dangling borrowed
  // lock); the list must not keep it either way.
  unlist(i32, sb, idx);
  if (tracedHoldCount !== 0) traceRelease(arena, idx);
  if (!held) throw Errors.notOwner(`lock word @${idx * 4}`, (w & OWNER) - 1, arena.slot);
}

/**
 * Removes `idx` from the robust list wherever it is (an out-of-order release) and counts it out.
 * A word that is not listed (released after it was lost) changes nothing.
 *
 * The entry just past the count is cleared too: the reaper scans one entry past the count (a word
 * is published there before its compare-exchange), and a stale index there — a word released
 * long ago, its block since freed and reused for data — would have the reaper "release" whatever
 * data word happened to hold the dead thread's id.
 */
function unlist(i32: Int32Array, sb: number, idx: number): void {
  const n = Math.min(i32[sb + L.T_ROBUST_COUNT], L.ROBUST_CAP);
  if (n > 0 && i32[sb + L.T_ROBUST + n - 1] === idx) {
    // The usual case: the last one taken. Plain writes only, no call: terminate() cannot split them.
    i32[sb + L.T_ROBUST_COUNT] = n - 1;
    i32[sb + L.T_ROBUST + n - 1] = 0;
    return;
  }
  for (let j = n - 2; j >= 0; j--) {
    if (i32[sb + L.T_ROBUST + j] !== idx) continue;
    // Terminated at the copy, the list still has the released word (skipped by the reaper: not
    // owned); after it, the two writes below run together.
    i32.copyWithin(sb + L.T_ROBUST + j, sb + L.T_ROBUST + j + 1, sb + L.T_ROBUST + n);
    i32[sb + L.T_ROBUST_COUNT] = n - 1;
    i32[sb + L.T_ROBUST + n - 1] = 0;
    return;
  }
}

/** Thread slot holding the word, or -1. */
export function wordOwner(i32: Int32Array, idx: number): number {
  return (Atomics.load(i32, idx) & OWNER) - 1;
}

export function lockKindId(kind: L.LockKind | undefined, fallback: number): number {
  if (kind === undefined) return fallback;
  const k = L.LOCK_KINDS.indexOf(kind);
  if (k < 0) throw Errors.invalid(`unknown lock kind ${describeValue(kind)} (one of ${L.LOCK_KINDS.join(', ')})`);
  return k;
}

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
 * And a waiter that watches the holder (src/arena/watching.ts) takes the word over when
 * the holder's thread is gone from the process (the kernel's view: src/arena/osthread.ts) but not
 * reaped yet. A worker's reap runs on its watcher's event loop, at its 'exit' event; a watcher
 * blocked in this wait — an allocation needing a free-list lock the worker held, a lock() on a fence
 * the worker was signaling — would otherwise wait for a reap that can only come after the wait.
 * The word is released as the reap's LOCKS stage releases it (marked owner-died, so this waiter is
 * told) and listed in the dead slot (T_TAKEN), so that the reap, when it comes, still knows the dead
 * thread held it (src/fence/signaler.ts needs that). Other waiters wait for the reap as before: the
 * watcher's 'exit' listeners run before any of them enters (an application's own clean-up there
 * sees the critical section as the dead thread left it).
 *
 * Word-level like futex.ts: the arena's own free-list locks use it through futexLock.
 */
import { H_MAX_THREADS, H_THREAD_STRIDE, H_THREAD_TABLE, MAX_THREADS_LIMIT, SLOT_FREE, T_OS_START, T_OS_TID, T_STATE, T_THREAD_ID, T_TAKEN, T_TAKEN_COUNT, TAKEN_CAP } from '../arena/layout.js';
import { osThreadGone } from '../arena/osthread.js';
import { watches } from '../arena/watching.js';
import { Errors } from '../errors.js';
import { LOCK_DIED, LOCK_OWNER_MASK, LOCK_TICKET_MASK, LOCK_TICKET_NEXT_SHIFT, LOCK_TICKET_SERVING_SHIFT } from './layout.js';

/** How long a word may name a free thread slot as its holder before a wait without deadline gives up. */
export const ORPHAN_GRACE_MS = 250;
/** How long a wait without deadline watches a live-looking holder before it asks the kernel whether its thread still exists, and how often after. */
export const GONE_CHECK_MS = 20;

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
 * the caller undoes what it had begun (a ticket) before letting it through. When the holder's
 * thread is gone, releases the word (see above): the caller's next look finds it free.
 */
export function watchOwner(i32: Int32Array, idx: number, w: number, now: number, since: number): number {
  const owner = w & LOCK_OWNER_MASK;
  if (owner === 0) return -1;
  const slots = slotCount(i32);
  if (owner > slots) throw Errors.corruptLock(idx, w, `its owner field names thread ${owner - 1}; the arena has ${slots} thread slots`);
  const b = slotBaseOf(i32, owner - 1);
  if (Atomics.load(i32, b + T_STATE) !== SLOT_FREE) {
    if (watchedThreadGone(i32, idx, owner, now)) takeOver(i32, idx, owner, b);
    return -1;
  }
  if (since < 0) return now;
  if (now - since >= ORPHAN_GRACE_MS)
    throw Errors.corruptLock(idx, w, `its owner field names thread ${owner - 1}, whose slot has been free for ${Math.round(now - since)} ms`);
  return since;
}

/**
 * The holder this thread's wait watches (a thread waits on one word at a time): word, owner, and
 * when the kernel is next asked about it.
 */
let watchedWord = -1;
let watchedOwner = 0;
let nextAsk = 0;

/**
 * True when the thread of `owner` (thread slot + 1), which this wait on word `idx` has watched for
 * GONE_CHECK_MS (as its holder, or a ticket waiting ahead), is a worker this thread watches and is
 * gone. Asks the kernel at most every GONE_CHECK_MS.
 */
export function watchedThreadGone(i32: Int32Array, idx: number, owner: number, now: number): boolean {
  if (idx !== watchedWord || owner !== watchedOwner) {
    watchedWord = idx;
    watchedOwner = owner;
    nextAsk = now + GONE_CHECK_MS;
    return false;
  }
  if (now < nextAsk) return false;
  nextAsk = now + GONE_CHECK_MS;
  const b = slotBaseOf(i32, owner - 1);
  return watches(i32[b + T_THREAD_ID]) && osThreadGone(i32[b + T_OS_TID], i32[b + T_OS_START]);
}

/** Releases `idx` from dead `owner` (slot word `b`) and lists it there for the reap; once, if several waiters see it. */
function takeOver(i32: Int32Array, idx: number, owner: number, b: number): void {
  if (!releaseDeadWord(i32, idx, owner)) return;
  const n = Atomics.add(i32, b + T_TAKEN_COUNT, 1);
  if (n < TAKEN_CAP) Atomics.store(i32, b + T_TAKEN + n, idx);
  watchedWord = -1;
}

/**
 * The lock words waiters took over from the dead thread of slot word `b` before its reap (see
 * {@link watchOwner}): it held each of them when it died. Read by the reap's LOCKS stage.
 */
export function takenWords(i32: Int32Array, b: number): number[] {
  const n = Math.min(Math.max(Atomics.load(i32, b + T_TAKEN_COUNT), 0), TAKEN_CAP);
  const out: number[] = [];
  for (let j = 0; j < n; j++) {
    const idx = Atomics.load(i32, b + T_TAKEN + j);
    if (idx > 0 && idx < i32.length) out.push(idx);
  }
  return out;
}

/**
 * Releases any kind of lock word held by `dead` (ticket words advance their serving count), marked
 * owner-died. Returns true when this call released it (false: `dead` did not hold it).
 */
export function releaseDeadWord(i32: Int32Array, idx: number, dead: number): boolean {
  for (;;) {
    const old = Atomics.load(i32, idx);
    if ((old & LOCK_OWNER_MASK) !== dead) return false;
    // A held ticket word has next ≠ serving; other kinds keep those bits zero.
    const isTicket =
      ((old >>> LOCK_TICKET_NEXT_SHIFT) & LOCK_TICKET_MASK) !== ((old >>> LOCK_TICKET_SERVING_SHIFT) & LOCK_TICKET_MASK);
    const next = (isTicket ? ticketReleased(old) : old & ~LOCK_OWNER_MASK) | LOCK_DIED;
    if (Atomics.compareExchange(i32, idx, old, next) === old) {
      Atomics.notify(i32, idx);
      return true;
    }
  }
}

/** A ticket word with its owner cleared and its serving count advanced. */
export function ticketReleased(old: number): number {
  const serving = ((old >>> LOCK_TICKET_SERVING_SHIFT) + 1) & LOCK_TICKET_MASK;
  return ((old & ~LOCK_OWNER_MASK & 0x00ffffff) | (serving << LOCK_TICKET_SERVING_SHIFT)) | 0;
}

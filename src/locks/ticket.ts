/**
 * The ticket lock, packed in one word with its holder: `next` (bits 16–23) is the next ticket to
 * hand out, `serving` (bits 24–31) the ticket whose turn it is, and the holder adds its owner id
 * (thread slot + 1, bits 0–9) when its turn comes. Tickets in the queue are [serving, next).
 *
 * A ticket is a promise to take a turn. A thread that stops between taking one and writing its
 * owner id — terminated while it waits, at the very moment its turn comes, or giving up on its
 * timeout — would stop the queue forever, and the reaper cannot find it by the owner field (it is
 * not written yet). So every ticket has a record in its taker's thread slot: T_ROBUST_PENDING = the
 * word, T_ROBUST_TICKET = state | ticket, written
 *  - TICKET_INTENT before the compare-exchange that takes the ticket,
 *  - TICKET_TAKEN right after it, in the same run of statements (terminate() lands at calls, loop
 *    back-edges and before an Atomics op runs, never between an Atomics op and the next write),
 *  - 0 right after the Atomics.add that writes the owner id, or when the waiter gives up.
 *
 * A ticket in the queue that no occupied thread slot has a record of is orphaned: its taker timed
 * out, or died and was reaped. Nobody will take its turn, so it is passed over:
 *  - by a waiter behind it, once it has seen it at the head, unowned, at two checks in a row
 *    (that waiter's own ticket is still in the queue, so `serving` cannot wrap around 256 tickets
 *    between its look and its compare-exchange: no ABA);
 *  - by the last waiter in the queue when it times out: it hands back its own ticket and the
 *    orphaned ones right below it;
 *  - by the reaper of a thread that died holding a TAKEN ticket: served if at the head, handed back
 *    if last in the queue; in between, the waiter behind it passes it once the slot is freed.
 * A ticket with an INTENT record is left alone: its taker may have taken it a moment ago (the
 * record is written before the compare-exchange precisely so that it is never missing), or died
 * before its compare-exchange ran.
 */
import { SLOT_FREE, T_STATE } from '../arena/layout.js';
import { Errors } from '../errors.js';
import { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT } from './futex.js';
import * as L from './layout.js';
import { releaseDeadWord, slotBaseOf, slotCount, ticketReleased, watchedThreadGone, watchOwner } from './owners.js';

const OWNER = L.LOCK_OWNER_MASK;
const TM = L.LOCK_TICKET_MASK;
const NEXT = L.LOCK_TICKET_NEXT_SHIFT;
const SERVING = L.LOCK_TICKET_SERVING_SHIFT;
const RECORDED = L.TICKET_INTENT | L.TICKET_TAKEN;
/** Spins between two checks of a waiting ticket (deadline, orphaned head, impossible states). */
export const TICKET_CHECK_EVERY = 1024;
/** A waiter whose queue did not move between two checks sleeps this long (ms) before spinning on. */
const STALL_SLEEP_MS = 0.05;

function servingOf(w: number): number {
  return (w >>> SERVING) & TM;
}
function nextOf(w: number): number {
  return (w >>> NEXT) & TM;
}
/** True when ticket `t` is in the queue of word `w`: in [serving, next). */
function queued(w: number, t: number): boolean {
  const serving = servingOf(w);
  return ((t - serving) & TM) < ((nextOf(w) - serving) & TM);
}
/** `w` with the head ticket passed over (serving + 1; the owner-died mark stays for the next holder). */
function passHead(w: number): number {
  return (w + (1 << SERVING)) | 0;
}
function withNext(w: number, next: number): number {
  return (w & ~(TM << NEXT)) | (next << NEXT);
}

/**
 * True when an occupied thread slot has a record (intent or taken) of ticket `t` of word `idx`.
 * A dead thread not reaped yet still counts: its reaper decides about its ticket.
 */
function ticketRecorded(i32: Int32Array, idx: number, t: number): boolean {
  return ticketRecorder(i32, idx, t) >= 0;
}

/** The occupied thread slot whose record holds ticket `t` of word `idx`, or -1 (see ticketRecorded). */
function ticketRecorder(i32: Int32Array, idx: number, t: number): number {
  for (let s = 0, n = slotCount(i32); s < n; s++) {
    const b = slotBaseOf(i32, s);
    if (Atomics.load(i32, b + T_STATE) === SLOT_FREE) continue;
    const rec = Atomics.load(i32, b + L.T_ROBUST_TICKET);
    if ((rec & RECORDED) !== 0 && (rec & TM) === t && Atomics.load(i32, b + L.T_ROBUST_PENDING) === idx) return s;
  }
  return -1;
}

/**
 * The lowest ticket f such that every ticket in [f, t) of word `w` is orphaned: handing back
 * `next` to f returns them all. The head counts only while unowned (a holder has no record).
 * Call only while ticket `t` is held in the queue (by the caller, or by a dead thread whose
 * reaper is the caller): then `serving` stays at or below t.
 */
function orphanFloor(i32: Int32Array, idx: number, w: number, t: number): number {
  const serving = servingOf(w);
  let f = t;
  while (f !== serving) {
    const below = (f - 1) & TM;
    if (below === serving && (w & OWNER) !== 0) break;
    if (ticketRecorded(i32, idx, below)) break;
    f = below;
  }
  return f;
}

/**
 * Takes a ticket for word `idx` and waits for its turn; `sb` is the caller's thread-slot base
 * (for the ticket record), `me` its owner id.
 * Threads: any attached thread; spins (the main thread's event loop is blocked meanwhile).
 * Returns ACQ_OK, ACQ_OWNER_DIED (the last holder died), or ACQ_TIMEOUT once `deadline` passes:
 * the ticket is handed back when it is the last one, else left for the waiters behind to pass
 * over — the call returns on time either way — and at once if the word was rewritten under the
 * waiter (its ticket left the queue without its turn: a freed and reused lock word).
 * Throws EBUSY when 255 tickets are out, and — without a deadline only — ENOTRECOVERABLE when the
 * word is in no state a ticket lock can be in (instead of waiting forever).
 */
export function ticketLock(i32: Int32Array, idx: number, me: number, sb: number, deadline: number): number {
  let mine = 0;
  for (;;) {
    const old = Atomics.load(i32, idx);
    mine = nextOf(old);
    if (((mine + 1) & TM) === servingOf(old)) {
      // 255 tickets out. Orphans could fill the queue (a corrupted word): pass the head if it is one.
      // Holding no ticket, we are not protected from `serving` wrapping around between the look and
      // the compare-exchange; that takes 256 turns within one scan of the thread table, and a
      // ticket passed by mistake makes its waiter give up (its ticket left the queue), not hang.
      if ((old & OWNER) === 0 && !ticketRecorded(i32, idx, servingOf(old))) {
        Atomics.compareExchange(i32, idx, old, passHead(old));
        continue;
      }
      i32[sb + L.T_ROBUST_TICKET] = 0; // an intent of an earlier round
      throw Errors.busy(`ticket lock @${idx * 4} has 255 waiters`);
    }
    // The record first: a waiter that sees this ticket taken must find it recorded (ticketRecorded).
    i32[sb + L.T_ROBUST_PENDING] = idx;
    i32[sb + L.T_ROBUST_TICKET] = L.TICKET_INTENT | mine;
    if (Atomics.compareExchange(i32, idx, old, withNext(old, (mine + 1) & TM)) === old) {
      // Same run as the compare-exchange: a reaper reading TAKEN knows the ticket is ours.
      i32[sb + L.T_ROBUST_TICKET] = L.TICKET_TAKEN | mine;
      break;
    }
  }
  let last = 0; // the word at the previous check
  let since = -1; // see watchOwner
  for (let n = 1; ; n++) {
    const w = Atomics.load(i32, idx);
    if (servingOf(w) === mine && (w & OWNER) === 0) {
      // Our turn: nobody else touches the owner bits now, only `next`.
      const old = Atomics.add(i32, idx, me);
      // Same run as the add: from here the owner field says who holds the word.
      i32[sb + L.T_ROBUST_TICKET] = 0;
      if ((old & L.LOCK_DIED) === 0) return ACQ_OK;
      Atomics.and(i32, idx, ~L.LOCK_DIED);
      return ACQ_OWNER_DIED;
    }
    if (n % TICKET_CHECK_EVERY !== 0) continue;
    if (!queued(w, mine)) {
      // Our ticket left the queue without our turn: the word was rewritten (freed and reused, corrupted).
      i32[sb + L.T_ROBUST_TICKET] = 0;
      if (deadline === Infinity) throw Errors.corruptLock(idx, w, `ticket ${mine} of the waiting thread left the queue without its turn`);
      return ACQ_TIMEOUT;
    }
    const now = performance.now();
    if (deadline === Infinity) {
      try {
        if (servingOf(w) === mine) throw Errors.corruptLock(idx, w, `another owner id on the turn of ticket ${mine}`);
        since = watchOwner(i32, idx, w, now, since);
      } catch (e) {
        // Out of the queue before the error goes up (a few tries: the word may be changing).
        for (let k = 0; k < 8 && !giveUp(i32, idx, sb, mine); k++);
        i32[sb + L.T_ROBUST_TICKET] = 0;
        throw e;
      }
    }
    if ((w & OWNER) === 0 && w === last) {
      const r = ticketRecorder(i32, idx, servingOf(w));
      if (r < 0) {
        // An orphaned head, unowned and unchanged since the last check. Our ticket is behind it, so
        // `serving` cannot have wrapped around to it again: the compare-exchange passes this one.
        Atomics.compareExchange(i32, idx, w, passHead(w));
        continue;
      }
      // The head's ticket is a worker's that this thread watches and whose thread is gone: its reap
      // would pass it, and waits for this wait (owners.ts). Pass it as the reap does.
      if (deadline === Infinity && watchedThreadGone(i32, idx, r + 1, now)) {
        releaseDeadTicket(i32, slotBaseOf(i32, r), r + 1);
        continue;
      }
    }
    if (now >= deadline && giveUp(i32, idx, sb, mine)) return ACQ_TIMEOUT;
    // Nothing moved for a whole round of spins: the thread whose turn it is does not run (a loaded
    // machine, more threads than cores). Give it the core for a moment instead of spinning on.
    if (w === last) Atomics.wait(i32, idx, w, STALL_SLEEP_MS);
    last = w;
  }
}

/**
 * A waiter holding ticket `mine` stops waiting. Last in the queue: hands back its ticket and the
 * orphans right below it (one compare-exchange; false when the word changed meanwhile — look
 * again). Otherwise its ticket becomes an orphan for the waiters behind to pass over. Clears the
 * record; returns true when the waiter is out of the queue.
 */
function giveUp(i32: Int32Array, idx: number, sb: number, mine: number): boolean {
  const w = Atomics.load(i32, idx);
  if (queued(w, mine) && nextOf(w) === ((mine + 1) & TM)) {
    const back = withNext(w, orphanFloor(i32, idx, w, mine));
    if (Atomics.compareExchange(i32, idx, w, back) !== w) return false;
  }
  i32[sb + L.T_ROBUST_TICKET] = 0;
  return true;
}

/** Takes the word only when it is free (no ticket out); ACQ_TIMEOUT otherwise. */
export function ticketTryLock(i32: Int32Array, idx: number, me: number): number {
  const old = Atomics.load(i32, idx);
  const next = nextOf(old);
  if (servingOf(old) !== next || (old & OWNER) !== 0) return ACQ_TIMEOUT;
  // One compare-exchange takes the ticket and writes the owner: no record needed.
  const taken = (withNext(old, (next + 1) & TM) | me) & ~L.LOCK_DIED;
  if (Atomics.compareExchange(i32, idx, old, taken) !== old) return ACQ_TIMEOUT;
  return old & L.LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
}

/** Releases a ticket word the caller holds: clears the owner, serves the next ticket. */
export function releaseTicket(i32: Int32Array, idx: number): void {
  for (;;) {
    const old = Atomics.load(i32, idx);
    if (Atomics.compareExchange(i32, idx, old, ticketReleased(old)) === old) return;
  }
}

/**
 * Reaper: the ticket the dead thread (owner id `dead`, slot base `b`) had taken and not yet
 * turned into ownership. At the head → passed over; last in the queue → handed back (with the
 * orphans right below it); in between → left to the waiter behind, which passes it over once the
 * slot is freed (its record then disappears). An owned word goes the way of every dead holder's.
 * Nothing happens for an INTENT record (the compare-exchange never ran) or no record.
 */
export function releaseDeadTicket(i32: Int32Array, b: number, dead: number): void {
  const rec = i32[b + L.T_ROBUST_TICKET];
  const idx = i32[b + L.T_ROBUST_PENDING];
  if ((rec & L.TICKET_TAKEN) === 0 || !(idx > 0 && idx < i32.length)) return;
  const t = rec & TM;
  for (;;) {
    const w = Atomics.load(i32, idx);
    if ((w & OWNER) === dead) {
      releaseDeadWord(i32, idx, dead);
      return;
    }
    // The dead thread's record pins ticket t (nobody else passes it): `serving` stays at or below t.
    if (!queued(w, t)) return; // the word was rewritten since
    let next: number;
    if (servingOf(w) === t) {
      if ((w & OWNER) !== 0) return; // impossible: somebody else's owner id on its turn
      next = passHead(w);
    } else if (nextOf(w) === ((t + 1) & TM)) {
      next = withNext(w, orphanFloor(i32, idx, w, t));
    } else {
      return;
    }
    if (Atomics.compareExchange(i32, idx, w, next) === w) return;
  }
}

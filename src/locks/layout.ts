/**
 * Lock words and the locks layer's thread-slot fields (the robust list a dead holder's locks are
 * recovered from).
 *
 * A lock word is one Int32: bits 0–9 the holder's thread slot + 1 (0 = free), bit 10 waiters
 * (futex kind), bit 11 owner died; the ticket kind packs its next ticket in bits 16–23 and the
 * ticket being served in bits 24–31.
 */
import { T_LAYERS, T_LAYERS_END } from '../arena/layout.js';
import { defineStruct } from '../arena/struct.js';

export const LOCK_OWNER_MASK = 0x3ff; // thread slot + 1 of the holder (0 = free)
export const LOCK_WAITERS = 1 << 10; // futex kind: somebody sleeps on the word
export const LOCK_DIED = 1 << 11; // the last holder died; the next locker is told (EOWNERDEAD)
export const LOCK_TICKET_NEXT_SHIFT = 16;
export const LOCK_TICKET_SERVING_SHIFT = 24;
export const LOCK_TICKET_MASK = 0xff;

/** Lock algorithms by number (the arena header stores its default). */
export const LOCK_KINDS = ['tas', 'ttas', 'ticket', 'futex'] as const;
/**
 * A lock algorithm: `'tas'` (test-and-set), `'ttas'` (test-and-test-and-set with backoff),
 * `'ticket'` (FIFO, both counters in one word), `'futex'` (spins, then sleeps on the word; the default).
 */
export type LockKind = (typeof LOCK_KINDS)[number];
/** @public the first lock kind (no code path tests for it: it is the fallback of every switch) */
export const LK_TAS = 0;
export const LK_TTAS = 1;
export const LK_TICKET = 2;
export const LK_FUTEX = 3;

/**
 * Robust-listed lock words a thread may hold at once through the public API (SpinLock.lock /
 * tryLock, a fence's borrowed lock): the next one is refused with ENOLCK. Every listed word is one
 * the reaper can find when its holder dies; a word it could not find would stay locked forever.
 */
export const MAX_HELD_LOCKS = 32;
/**
 * Entries of the robust list: MAX_HELD_LOCKS plus room for the library's own short internal locks
 * (a chain link's prev lock, a timeline's lock, an fd entry's lock), which are taken for a few
 * statements while the caller may already hold MAX_HELD_LOCKS (fence inline locks are not listed).
 */
export const ROBUST_CAP = MAX_HELD_LOCKS + 8;

/**
 * The ticket record (T_ROBUST_TICKET): the ticket this thread is about to take or holds in the
 * queue of the word at T_ROBUST_PENDING, in the low 8 bits, with one of these states. 0 = none.
 */
export const TICKET_INTENT = 1 << 8; // written before the compare-exchange that takes the ticket
export const TICKET_TAKEN = 1 << 9; // written right after it: the ticket is this thread's

/** Thread-slot fields (T_* relative to the slot's base word), first in the arena's layer area. */
export const {
  ROBUST_PENDING: T_ROBUST_PENDING, ROBUST_TICKET: T_ROBUST_TICKET, ROBUST_COUNT: T_ROBUST_COUNT, ROBUST: T_ROBUST,
  END: T_LOCKS_END,
} = defineStruct(
  'locks thread slot',
  {
    ROBUST_PENDING: 1, // word index of the ticket lock being acquired (robust-futex "list_op_pending")
    ROBUST_TICKET: 1, // its ticket record: TICKET_INTENT | TICKET_TAKEN | ticket (0 none)
    ROBUST_COUNT: 1,
    ROBUST: ROBUST_CAP, // lock word indices held, in acquisition order
  },
  { base: T_LAYERS, limit: T_LAYERS_END },
);

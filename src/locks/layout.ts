/**
 * Lock words and the locks layer's thread-slot fields (the robust list a dead holder's locks are
 * recovered from).
 *
 * A lock word is one Int32: bits 0–9 the holder's thread slot + 1 (0 = free), bit 10 waiters
 * (futex kind), bit 11 owner died; the ticket kind packs its next ticket in bits 16–23 and the
 * ticket being served in bits 24–31.
 */
import { SANITIZER_AREA_BYTES, T_LAYERS, T_LAYERS_END } from '../arena/layout.js';
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
  INLINE_HELD: T_INLINE_HELD, END: T_LOCKS_END,
} = defineStruct(
  'locks thread slot',
  {
    ROBUST_PENDING: 1, // word index of the ticket lock being acquired (robust-futex "list_op_pending")
    ROBUST_TICKET: 1, // its ticket record: TICKET_INTENT | TICKET_TAKEN | ticket (0 none)
    ROBUST_COUNT: 1,
    ROBUST: ROBUST_CAP, // lock word indices held, in acquisition order
    // fence inline lock words held (not listed: see acquireInline). A word of the slot, not a field of
    // the thread's Arena view: the lock fast paths index the Int32Array they already hold, ~2 % less
    // per lock+unlock pair than a JS property's read-modify-write.
    INLINE_HELD: 1,
  },
  { base: T_LAYERS, limit: T_LAYERS_END },
);

/* ───────────── the lock-order checker's graph (sanitize mode; word indices from the sanitizer area) ───────────── */
/**
 * A lock class key: the kind in bits 30–31, the nesting subclass in bit 29, the class's own id in
 * bits 0–28 (a fence context, or a hash of a lock word and its block's generation). 0 = empty.
 */
export const LD_KIND_CONTEXT = 1 << 30; // a fence's inline lock: its fence context
export const LD_KIND_WORD = 2 << 30; // a lock word of its own (SpinLock, a lent lock): that word
export const LD_NESTED = 1 << 29; // taken under its container's lock (the nesting annotation)
export const LD_ID_MASK = LD_NESTED - 1;

/** Classes and order edges the graph holds; past them new ones are counted (LD_OVERFLOW), not checked. */
export const LD_CLASSES = 512;
export const LD_EDGES = 2048;
/** Characters of one call site kept with an edge. */
export const LD_STACK_CHARS = 1200;

/** One lock class: its key, the head of its list of edges to later classes, what names it. */
export const { KEY: LC_KEY, HEAD: LC_HEAD, INFO: LC_INFO, END: LC_WORDS } = defineStruct('lock class', {
  KEY: 1, // class key (0: free entry), claimed with a compare-exchange
  HEAD: 1, // edge entry + 1 of the newest edge from this class (a lock-free pushed list)
  INFO: 1, // what names it: the fence context, or the lock word's index
  PAD: 1, // unused: an entry is 16 bytes
});

/** One order edge "FROM held while TO was taken", found by hashing its pair. */
export const { PAIR: LE_PAIR, NEXT: LE_NEXT, THREAD: LE_THREAD, STACK: LE_STACK, STACK_LEN: LE_STACK_LEN, DEAD: LE_DEAD, END: LE_WORDS } = defineStruct('lock order edge', {
  PAIR: 1, // from class entry << 12 | to class entry, + 1 (0: free entry)
  NEXT: 1, // next edge + 1 from the same class
  THREAD: 1, // thread slot that first took the locks in this order
  STACK: 1, // its call site: offset in the stack store (chars)
  STACK_LEN: 1, // its length (0: none kept)
  DEAD: 1, // 1: this order was reported as an inversion and is not part of the graph
});

export const {
  REPORTS: LD_REPORTS, OVERFLOW: LD_OVERFLOW, STACK_TOP: LD_STACK_TOP, CLASS: LD_CLASS, EDGE: LD_EDGE, STACKS: LD_STACKS, END: LD_END,
} = defineStruct(
  'lock-order graph',
  {
    REPORTS: 1, // inversions reported, all threads
    OVERFLOW: 1, // classes or edges that found the tables full
    STACK_TOP: 1, // characters of the stack store in use (bump allocated)
    PAD: 1, // unused: the tables start 16-byte aligned
    CLASS: LD_CLASSES * LC_WORDS, // the class table (struct lock class), by key hash
    EDGE: LD_EDGES * LE_WORDS, // the edge table (struct lock order edge), by pair hash
    STACKS: 0, // the stack store: UTF-16 code units to the end of the area
  },
  { limit: SANITIZER_AREA_BYTES >>> 2 },
);
/** Characters of the stack store. */
export const LD_STACK_STORE_CHARS = ((SANITIZER_AREA_BYTES >>> 2) - LD_STACKS) * 2;

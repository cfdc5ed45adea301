/**
 * The arena's own shared-memory structs: the header at word 0, the block header in front of every
 * payload, and the core of each thread slot. Higher layers describe their structs in their own
 * `layout.ts` (fence, locks, sync, runtime, driver, containers); the arena only reserves space for
 * them — `H_LAYERS` words of the header and `T_LAYERS` words of every thread slot — and never
 * reads what they put there.
 *
 * Units: `H_*`, `T_*`, `B_*`, `CL_*` are Int32 word indices (relative to word 0, a slot's base word,
 * a block's header word, a size class's base word); byte quantities say `BYTES`.
 */
import { defineStruct } from './struct.js';

export const MAGIC = 0x46454e43; // 'FENC'
/** Bumped whenever any layer's shared layout changes: attach() refuses another version. */
export const LAYOUT_VERSION = 15;

/* ───────────── arena header (word indices from 0) ───────────── */
/** Header words reserved for higher layers' header fields. */
const LAYER_HEADER_WORDS = 44;
const header = defineStruct(
  'arena header',
  {
    MAGIC: 1,
    VERSION: 1,
    BYTES: 1,
    LOCK_KIND: 1, // default lock algorithm (index into LOCK_KINDS of src/locks/layout.ts)
    FLAGS: 1, // ARENA_SANITIZE | ARENA_COUNT
    MAX_THREADS: 1,
    HEAP_START: 1, // bytes
    HEAP_TOP: 1, // bytes, bump pointer (Atomics)
    HEAP_END: 1, // bytes
    UAF_COUNT: 1, // use-after-free accesses recorded by the sanitizer (all threads)
    THREAD_TABLE: 1, // word index of the thread table
    THREAD_STRIDE: 1, // words per thread slot
    TABLE: 1, // word index of the fixed table reserved at creation for the fd layer (TABLE_ENTRY_WORDS each)
    TABLE_ENTRIES: 1, // its entries (ArenaOptions.maxFds)
    REAPED_ALLOCS: 1, // statistics folded in from reaped thread slots
    REAPED_FREES: 1,
    FREE_SERIAL: 1, // counts frees, to name "the free" in sanitizer reports
    PROBLEMS: 1, // integrity problems seen by the allocator (poison overwritten)
    THREAD_SERIAL: 1, // incremented on every thread registration
    ARENA_ID: 1, // random id: attach() in a thread that already has this arena returns it
    LAYERS: LAYER_HEADER_WORDS, // reserved for higher layers' header fields (fence context counter, stub, fd cursor, trace flags)
    CLASSES: 0, // per size class: CL_STRIDE words from here
  },
  { end: 64 },
);
export const {
  MAGIC: H_MAGIC, VERSION: H_VERSION, BYTES: H_BYTES, LOCK_KIND: H_LOCK_KIND, FLAGS: H_FLAGS, MAX_THREADS: H_MAX_THREADS,
  HEAP_START: H_HEAP_START, HEAP_TOP: H_HEAP_TOP, HEAP_END: H_HEAP_END, UAF_COUNT: H_UAF_COUNT, THREAD_TABLE: H_THREAD_TABLE,
  THREAD_STRIDE: H_THREAD_STRIDE, TABLE: H_TABLE, TABLE_ENTRIES: H_TABLE_ENTRIES, REAPED_ALLOCS: H_REAPED_ALLOCS,
  REAPED_FREES: H_REAPED_FREES, FREE_SERIAL: H_FREE_SERIAL, PROBLEMS: H_PROBLEMS, THREAD_SERIAL: H_THREAD_SERIAL,
  ARENA_ID: H_ARENA_ID, LAYERS: H_LAYERS, CLASSES: H_CLASSES,
} = header;
/** End of the header area reserved for higher layers (their header structs must end by here). */
export const H_LAYERS_END = H_LAYERS + LAYER_HEADER_WORDS;

/** A size class: its free-list lock, head and count. */
export const { LOCK: CL_LOCK, HEAD: CL_HEAD, COUNT: CL_COUNT, END: CL_STRIDE } = defineStruct('size class', {
  LOCK: 1, // futex word (src/locks/futex.ts)
  HEAD: 1, // word index of the first free block header (0 = empty)
  COUNT: 1,
  PAD: 1,
});

export const ARENA_SANITIZE = 1;
/**
 * Bytes a sanitizing arena reserves just below its heap for the lock-order checker (its class and
 * order graph, src/locks/layout.ts); an arena without sanitize reserves none.
 */
export const SANITIZER_AREA_BYTES = 128 * 1024;
export const ARENA_COUNT = 2; // sanitizer records instead of throwing

/** Words per entry of the fixed table (H_TABLE): the fd layer's entry must fit in it. */
export const TABLE_ENTRY_WORDS = 5;

/* ───────────── block header (2 words before every payload) ───────────── */
export const { TAG: B_TAG, GEN: B_GEN, END: BLOCK_HEADER_WORDS } = defineStruct('block header', {
  TAG: 1, // class | type | state | allocThread | freeThread
  GEN: 1, // generation (low 24 bits) | self-check byte (high 8 bits)
});
export const BLOCK_HEADER_BYTES = BLOCK_HEADER_WORDS * 4;

export const TAG_CLASS_MASK = 0x3f;
export const TAG_TYPE_SHIFT = 6;
export const TAG_TYPE_MASK = 0x3f;
export const TAG_STATE_SHIFT = 12;
export const TAG_STATE_MASK = 0x3;
export const TAG_ALLOC_SHIFT = 14;
export const TAG_FREE_SHIFT = 23;
export const TAG_THREAD_MASK = 0x1ff;
export const NO_THREAD = 0x1ff;

export const STATE_LIVE = 1;
export const STATE_FREE = 2; // on a global free list
export const STATE_CACHED = 3; // in a thread's cache

export const GEN_MASK = 0xffffff;
export const HANDLE_OFFSET_BITS = 28;
export const HANDLE_OFFSET_SCALE = 2 ** HANDLE_OFFSET_BITS;
export const HANDLE_OFFSET_MASK = HANDLE_OFFSET_SCALE - 1;
export const MAX_ARENA_BYTES = HANDLE_OFFSET_SCALE * 8; // 2 GiB

/** The self-check byte a block header at word `hw` carries (a forged handle rarely matches it). */
export function selfCheck(hw: number): number {
  return ((hw >>> 2) ^ 0xa5) & 0xff;
}

/** Value written over freed payload words in sanitize mode. */
export const POISON = 0x5afe_dead | 0;

/** Block types (the type tag in every block header). */
export const BlockType = {
  /** Carved from the heap, never allocated yet. */
  FREE: 0,
  /** `arena.alloc` (raw memory, e.g. a struct that lends its lock). */
  RAW: 1,
  /** A `SpinLock.create` lock's own block. */
  LOCK: 2,
  /** A fence, fence array, chain link or sw_sync point. */
  FENCE: 3,
  /** A callback node. */
  CALLBACK: 4,
  /** Child list of a fence array. */
  SLOTS: 5,
  /** The name of a sync file (the fd entries live in the fixed table). */
  SYNC_FILE: 6,
  /** A sw_sync timeline. */
  TIMELINE: 7,
  /** A driver operation. */
  OPERATION: 8,
  /** The library's own bookkeeping: a thread's reference ledger; a pool scheduler, its tasks' dependency lists, payloads and results. */
  INTERNAL: 9,
  /** A driver's counters and command ring. */
  DRIVER: 10,
  /** A FenceSlot: a published fence pointer other threads may replace. */
  FENCE_SLOT: 11,
  /** A thread's trace event ring. */
  TRACE: 12,
  /** A fence reference in transit between threads (`fence.share()` → `Fence.receive`); its handle is the token. */
  TRANSIT: 13,
} as const;
export const BLOCK_TYPE_NAMES = ['free', 'raw', 'lock', 'fence', 'callback', 'slots', 'sync_file', 'timeline', 'operation', 'internal', 'driver', 'fence_slot', 'trace', 'transit'];
export const NTYPES = 16;

/** Block sizes, header included. Multiples of 16 so payloads stay 8-byte aligned. */
export const SIZE_CLASSES = [
  16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384,
  32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608,
];
export const NCLASSES = SIZE_CLASSES.length;

/* ───────────── thread slot core (T_* relative to the slot's base word) ───────────── */
export const CACHE_CAP = 32;
export const CACHE_STRIDE = CACHE_CAP + 1; // per class: [count, CACHE_CAP entries]
/**
 * Thread-slot words reserved for higher layers (robust lock list, inbox, release records, …): the
 * layers' structs chain up from the start, the trace recorder's sits at the end (src/trace/layout.ts).
 */
export const LAYER_WORDS = 183;
/** Lock words taken over from one dead thread before its reap that the reap still learns of (T_TAKEN). */
export const TAKEN_CAP = 4;
export const {
  STATE: T_STATE, THREAD_ID: T_THREAD_ID, ALLOCS: T_ALLOCS, FREES: T_FREES, SERIAL: T_SERIAL, LAYERS: T_LAYERS,
  CACHE: T_CACHE, OS_TID: T_OS_TID, OS_START: T_OS_START, TAKEN_COUNT: T_TAKEN_COUNT, TAKEN: T_TAKEN, END: THREAD_STRIDE,
} = defineStruct('thread slot', {
  STATE: 1, // SLOT_FREE / SLOT_LIVE / SLOT_DEAD / SLOT_RESERVED
  THREAD_ID: 1, // Node threadId of the occupant
  ALLOCS: 1,
  FREES: 1,
  SERIAL: 1, // registration serial of the occupant
  LAYERS: LAYER_WORDS, // higher layers' thread-slot structs, chained from here (src/locks/layout.ts first)
  CACHE: NCLASSES * CACHE_STRIDE,
  OS_TID: 1, // kernel thread id of the occupant (src/arena/osthread.ts), 0 when unknown
  OS_START: 1, // its start time (clock ticks since boot, low 31 bits), told apart from a reused id
  TAKEN_COUNT: 1, // lock words a waiter took over from this dead, not yet reaped thread (src/locks/owners.ts)
  TAKEN: TAKEN_CAP, // the first TAKEN_CAP of them
});
/** End of the thread-slot area reserved for higher layers. */
export const T_LAYERS_END = T_LAYERS + LAYER_WORDS;

export const SLOT_FREE = 0;
export const SLOT_LIVE = 1;
export const SLOT_DEAD = 2;
export const SLOT_RESERVED = 3; // claimed, being initialised

/** NO_THREAD and the 10-bit lock owner field (src/locks/layout.ts) bound the thread count. */
export const MAX_THREADS_LIMIT = 510;

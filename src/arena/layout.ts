/**
 * The one file that knows where things are in the arena. Every other module reads shared memory
 * through the named offsets defined here (piscina habit: no bare index into a typed array elsewhere).
 *
 * Units: offsets named `H_*`, `T_*`, `F_*`, `CB_*` are Int32 word indices relative to a base word
 * index; byte offsets are named `...Bytes` or `off`.
 */

export const MAGIC = 0x46454e43; // 'FENC'
export const LAYOUT_VERSION = 5;

/* ───────────── arena header (word indices from 0) ───────────── */
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_BYTES = 2;
export const H_LOCK_KIND = 3;
export const H_FLAGS = 4; // ARENA_SANITIZE | ARENA_COUNT
export const H_MAX_THREADS = 5;
export const H_CONTEXT = 6; // next fence context (first is 1; 0 is the stub's)
export const H_HEAP_START = 7; // bytes
export const H_HEAP_TOP = 8; // bytes, bump pointer (Atomics)
export const H_HEAP_END = 9; // bytes
export const H_UAF_COUNT = 10; // use-after-free accesses recorded by the sanitizer (all threads)
export const H_STUB = 11; // word index of the permanent stub fence (0 until first use)
export const H_STUB_LOCK = 12; // spin word guarding stub creation
export const H_THREAD_TABLE = 13; // word index of the thread table
export const H_THREAD_STRIDE = 14; // words per thread slot
export const H_FD_TABLE = 15; // word index of the sync-file fd table
export const H_FD_CAPACITY = 16;
export const H_REAPED_ALLOCS = 17; // statistics folded in from reaped thread slots
export const H_REAPED_FREES = 18;
export const H_FREE_SERIAL = 19; // counts frees, to name "the free" in sanitizer reports
export const H_PROBLEMS = 20; // integrity problems seen by the allocator (double free, poison overwritten)
export const H_THREAD_SERIAL = 21; // incremented on every thread registration
export const H_REAPED_LIVE = 24; // NTYPES words, reserved
export const H_CLASSES = 64; // per size class: CL_STRIDE words
export const CL_LOCK = 0;
export const CL_HEAD = 1; // word index of first free block header (0 = empty)
export const CL_COUNT = 2;
export const CL_STRIDE = 4;

export const ARENA_SANITIZE = 1;
export const ARENA_COUNT = 2; // sanitizer records instead of throwing

/* ───────────── block header (2 words before every payload) ───────────── */
export const BLOCK_HEADER_WORDS = 2;
export const BLOCK_HEADER_BYTES = 8;
export const B_TAG = 0; // class | type | state | allocThread | freeThread
export const B_GEN = 1; // generation (low 24 bits) | self-check byte (high 8 bits)

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

/** Value written over freed payload words in sanitize mode. */
/* ───────────── helpers over the layout ───────────── */

/** The self-check byte a block header at word `hw` carries (a forged handle rarely matches it). */
export function selfCheck(hw: number): number {
  return ((hw >>> 2) ^ 0xa5) & 0xff;
}

export const POISON = 0x5afe_dead | 0;

/** Block types (the type tag in every block header). */
export const BlockType = {
  FREE: 0,
  RAW: 1,
  LOCK: 2,
  FENCE: 3,
  CALLBACK: 4,
  SLOTS: 5, // child list of a fence array
  SYNC_FILE: 6,
  TIMELINE: 7,
  OPERATION: 8,
  INTERNAL: 9,
  DRIVER: 10, // src/driver: a driver's counters and command ring
} as const;
export const BLOCK_TYPE_NAMES = ['free', 'raw', 'lock', 'fence', 'callback', 'slots', 'sync_file', 'timeline', 'operation', 'internal', 'driver'];
export const NTYPES = 16;

/** Block sizes, header included. Multiples of 16 so payloads stay 8-byte aligned. */
export const SIZE_CLASSES = [
  16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384,
  32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608,
];
export const NCLASSES = SIZE_CLASSES.length;

/* ───────────── thread slot (T_* relative to the slot's base word) ───────────── */
export const T_STATE = 0; // SLOT_FREE / SLOT_LIVE / SLOT_DEAD
export const T_THREAD_ID = 1; // Node threadId of the occupant
export const T_DOORBELL = 2; // bumped (and notified) when the inbox gets work
export const T_INBOX = 3; // head of a lock-free stack of callback nodes queued for this thread
export const T_DISPATCHING = 4; // 1 while a dispatcher listens on the doorbell
export const T_WAKE = 5; // per-thread wake word for waitAny
export const T_ALLOCS = 6;
export const T_FREES = 7;
export const T_ROBUST_PENDING = 8; // lock word index being acquired (robust-futex "list_op_pending")
export const T_ROBUST_COUNT = 9;
export const T_PENDING_CBS = 10; // callbacks owned by this slot not yet run
export const T_SERIAL = 11; // registration serial of the occupant
export const T_ROBUST = 16; // ROBUST_CAP lock word indices held, in acquisition order
export const ROBUST_CAP = 32;
/**
 * Release records (src/fence/fence.ts): a stack of the fences whose last reference this thread has
 * dropped and whose release it has not finished, so that the reaper can finish the release of a
 * thread terminated inside it. Entry: [payload word index, generation | REL_* state bits].
 */
export const T_RELEASE_DEPTH = 14;
export const T_RELEASE = T_ROBUST + ROBUST_CAP;
export const RELEASE_CAP = 6; // deeper nested releases are counted, not recorded
export const REL_RESURRECTED = 1 << 24; // holds the reference the -EDEADLK signal runs under
export const REL_IN_RELEASE = 1 << 25; // ops.release has been called (the reaper does not call it again)
export const REL_DROPPED = 1 << 26; // the last reference is gone (without it the record is an intent only)
/**
 * The driver operation this thread has claimed (won the CAS to OPS_FINISHING) and not yet freed
 * (src/driver/driver.ts): payload word, the FINISHING state word it set, and the counter to bump.
 */
export const T_FINISHING = 15;
export const T_FINISHING_STATE = T_RELEASE + 2 * RELEASE_CAP;
export const T_FINISHING_COUNTER = T_FINISHING_STATE + 1;
/**
 * A ledger block being installed (grown into) or retired (src/runtime/ledger.ts): payload word and
 * generation, so that a thread terminated between the allocation or the unlinking and the end of
 * the move leaves its reaper the block to free.
 */
export const T_LEDGER_SPARE = T_FINISHING_COUNTER + 1;
export const T_LEDGER_SPARE_GEN = T_LEDGER_SPARE + 1;
export const T_CACHE = T_LEDGER_SPARE_GEN + 1; // per class: [count, CACHE_CAP entries]
export const CACHE_CAP = 32;
export const CACHE_STRIDE = CACHE_CAP + 1;
export const THREAD_STRIDE = T_CACHE + NCLASSES * CACHE_STRIDE;

export const SLOT_FREE = 0;
export const SLOT_LIVE = 1;
export const SLOT_DEAD = 2;
export const SLOT_RESERVED = 3; // claimed, being initialised

/* ───────────── fence (F_* relative to the payload's first word) ───────────── */
export const F_FLAGS = 0; // flag bits; also the futex word waiters sleep on
export const F_LOCK = 1; // union: inline lock word, or word index of the borrowed lock
export const F_LENDER = 2; // word index of the lender block's header (borrowed), 0 inline
export const F_LENDER_GEN = 3; // generation of the lender block when the fence borrowed it
export const F_OPS = 4; // ops id (hash of the ops name)
export const F_CB_HEAD = 5; // word index of the first callback node (0 = none)
export const F_REFCOUNT = 6;
export const F_ERROR = 7;
export const F_CONTEXT = 8;
export const F_SEQNO_LO = 9;
export const F_SEQNO_HI = 10;
export const F_CB_TAIL = 11;
export const F_TIMESTAMP = 12; // BigInt64 at word 12 (byte 48 of the payload, 8-byte aligned)
export const FENCE_WORDS = 14;
export const FENCE_BYTES = FENCE_WORDS * 4; // 56: with the 8-byte header, one 64-byte block

/** Fence flag bits, in the kernel's order, then user bits; WAITERS tells signal() to notify. */
export const FLAG_INITIALIZED = 1 << 0;
export const FLAG_INLINE_LOCK = 1 << 1;
export const FLAG_SEQNO64 = 1 << 2;
export const FLAG_SIGNALED = 1 << 3;
export const FLAG_TIMESTAMP = 1 << 4;
export const FLAG_ENABLE_SIGNAL = 1 << 5;
export const FLAG_USER_SHIFT = 8;
export const FLAG_WAITERS = 1 << 30;

/* ───────────── callback node (CB_* relative to payload) ───────────── */
export const CB_FENCE = 0; // word index of the fence payload
export const CB_NEXT = 1;
export const CB_PREV = 2;
export const CB_OWNER = 3; // thread slot that runs it
export const CB_TOKEN = 4; // key of the function in the owner's table
export const CB_STATE = 5; // CBS_*
export const CB_KIND = 6; // CBK_FN (owner runs a function) or CBK_WAKE (signaler bumps a word)
export const CB_TARGET = 7; // CBK_WAKE: word index to bump and notify; CBK_FN: owner's registration serial
export const CB_WORDS = 8;
export const CBS_PENDING = 1;
export const CBS_QUEUED = 2; // detached by signal, waiting in the owner's inbox
export const CBS_DONE = 3;
/** Set by the owner just before it frees its own node: a reaper frees FREEING nodes of a dead owner. */
export const CBS_FREEING = 4;
export const CBK_FN = 0;
export const CBK_WAKE = 1;
export const CBK_SHARED = 2; // library code run by the signaler: CB_TOKEN = handler id, CB_TARGET = its data word

/* ───────────── lock word bits ───────────── */
export const LOCK_OWNER_MASK = 0x3ff; // thread slot + 1 of the holder (0 = free)
export const LOCK_WAITERS = 1 << 10; // futex kind: somebody sleeps on the word
export const LOCK_DIED = 1 << 11; // the last holder died; the next locker is told (EOWNERDEAD)
export const LOCK_TICKET_NEXT_SHIFT = 16;
export const LOCK_TICKET_SERVING_SHIFT = 24;
export const LOCK_TICKET_MASK = 0xff;

export const MAX_THREADS_LIMIT = 510; // NO_THREAD and the lock owner field bound it

export const H_ARENA_ID = 22; // random id: attach() in a thread that already has this arena returns it

/** Lock algorithms by number (the arena header stores its default). */
export const LOCK_KINDS = ['tas', 'ttas', 'ticket', 'futex'] as const;
export type LockKind = (typeof LOCK_KINDS)[number];
export const LK_TAS = 0;
export const LK_TTAS = 1;
export const LK_TICKET = 2;
export const LK_FUTEX = 3;

/* ───────────── sync-file fd table (FD_* relative to an entry) ───────────── */
export const FD_STATE = 0; // (generation << FDS_GEN_SHIFT) | FDS_*: claims are a CAS on this word
export const FD_FENCE = 1; // word index of the fence payload (the fd holds one reference)
export const FD_OWNER = 2; // thread slot that created it (its fds are closed when it is reaped)
export const FD_NAME = 3; // payload word index of a name block, 0 default
export const FD_LOCK = 4; // robust lock word (futex kind): lookups and close of this entry serialise on it
export const FD_STRIDE = 5;
export const FDS_FREE = 0;
export const FDS_CLAIMED = 1; // being filled in by create: not visible to lookups yet
export const FDS_LIVE = 2;
export const FDS_STATE_MASK = 3;
export const FDS_GEN_SHIFT = 2;
export const FDS_GEN_MASK = 0x1fffffff; // generation 1..mask, kept across close so a reused entry rejects stale fds
/** fd = generation * FD_INDEX_SCALE + entry index: a plain integer, never below FD_INDEX_SCALE. */
export const FD_INDEX_SCALE = 2 ** 20;
export const H_FD_NEXT = 23; // header word: next-fit cursor of the fd table (Atomics.add)

/* ───────────── sw_sync timeline (TL_* relative to the timeline block's payload; src/sync/timeline.ts) ───────────── */
export const TL_LOCK = 0; // the timeline lock; its points borrow it as their fence lock (kernel sync_timeline.lock)
export const TL_KREF = 1; // struct references: 1 while the timeline is open, + 1 per point
export const TL_FILE_REFS = 2; // open references (create, get); the last close signals the rest with -ENOENT
export const TL_CONTEXT = 3;
export const TL_VALUE = 4; // u32 counter, written under the lock, read with Atomics.load
export const TL_HEAD = 5; // first point (fence payload word) of the list sorted by seqno, 0 empty
export const TL_TAIL = 6;
export const TL_CLOSED = 7; // 1 once the last open reference is closed
export const TL_NAME = 8; // name: [byte length, up to NAME_MAX_BYTES UTF-8 bytes]
export const NAME_MAX_BYTES = 31; // the kernel's char name[32] with its NUL
export const NM_LEN = 0; // name words (at TL_NAME, or a sync file's name block): byte length…
export const NM_BYTES = 1; // …then the UTF-8 bytes
export const NAME_WORDS = 1 + Math.ceil(NAME_MAX_BYTES / 4);
export const TL_WORDS = TL_NAME + NAME_WORDS;

/* ───────────── sw_sync point: a fence block with a list link (PT_* relative to the fence payload) ───────────── */
export const PT_TIMELINE = FENCE_WORDS; // payload word index of the timeline
export const PT_PREV = FENCE_WORDS + 1;
export const PT_NEXT = FENCE_WORDS + 2;
export const PT_LINKED = FENCE_WORDS + 3; // 1 while on the timeline's list
export const PT_WORDS = FENCE_WORDS + 4;

/* ───────────── runtime: per-slot ledger of what a thread holds (src/runtime/ledger.ts) ───────────── */
export const T_LEDGER = 12; // thread-slot word: payload word index of the slot's ledger block (0 none)
export const T_DRAINING = 13; // thread-slot word: inbox list being run by drainInbox, from the running node on (the reaper discards it)
export const LG_COUNT = 0; // entries in use
export const LG_CAP = 1; // entries that fit
export const LG_ENTRIES = 2; // triples [kind, value, generation]
export const LG_STRIDE = 3;
export const LE_KIND = 0; // fields of a ledger entry
export const LE_VALUE = 1;
export const LE_GEN = 2;
/** Ledger entry kind of a fence reference (written by sync/ too, for tracked imports). */
export const LGK_FENCE_REF = 1;

/* ───────────── driver: operation struct (OP_* relative to payload; src/driver) ───────────── */
export const OP_LOCK = 0; // the lock an out-fence borrows (word 0: becomes the free-list link once freed)
export const OP_STATE = 1; // (generation << OPS_GEN_SHIFT) | OPS_*: every transition is a CAS on this word
export const OP_FENCE = 2; // payload word index of the out-fence (the operation holds one reference)
export const OP_DRIVER = 3; // payload word index of the driver block
export const OP_OWNER = 4; // exporter thread slot
export const OP_ID = 5; // per-driver operation number
export const OP_DURATION_US = 6; // simulated work
export const OP_RESULT = 7; // status the out-fence got (1 or negative errno), written by the finisher
export const OP_PAYLOAD = 8; // first payload word (OP_PAYLOAD_WORDS of user data)
export const OP_PAYLOAD_WORDS = 8;
export const OP_WORDS = OP_PAYLOAD + OP_PAYLOAD_WORDS;
export const OPS_GEN_SHIFT = 3;
export const OPS_SUBMITTED = 1; // out-fence created, waiting for execute
export const OPS_RUNNING = 2; // executing
export const OPS_FINISHING = 3; // claimed by exactly one finisher (complete, cancel, delete or reap)
export const OPS_NEW = 4; // allocated and recorded by its submitter, not yet published
export const OPS_COUNTED = 5; // finishing: its end counted, its fence reference not yet dropped

/* ───────────── driver block (DRV_* relative to payload) ───────────── */
export const DRV_LOCK = 0; // guards the name block
export const DRV_CONTEXT = 1; // fence context of the driver's timeline
export const DRV_SEQNO = 2; // last seqno handed out (Atomics.add)
export const DRV_OWNER = 3; // exporter thread slot
export const DRV_NEXT_ID = 4;
export const DRV_SUBMITTED = 5; // counters (Atomics)
export const DRV_COMPLETED = 6;
export const DRV_CANCELED = 7;
export const DRV_DELETED = 8;
export const DRV_ABORTED = 9; // finished by the reaper (exporter died)
export const DRV_FREED = 10; // unused (derived: the sum of the end counters)
export const DRV_CMD_MISSED = 11; // commands that found their operation already finished
export const DRV_LIVE = 12; // unused (derived: submitted minus ended)
export const DRV_RING_HEAD = 13; // command ring: consumer position
export const DRV_RING_TAIL = 14; // producer position (Atomics.add reserves an entry)
export const DRV_RING_CAP = 15; // entries (power of two)
export const DRV_RING_BELL = 16; // bumped + notified when a command is posted
export const DRV_LOCK_MODE = 17; // 0 inline, 1 borrowed
export const DRV_RING = 20; // ring entries: [sequence, command, operation handle lo, hi]
export const RING_STRIDE = 4;
export const RE_SEQ = 0;
export const RE_CMD = 1;
export const RE_OP_LO = 2;
export const RE_OP_HI = 3;

/* ───────────── containers (src/containers): words after a fence's FENCE_WORDS ───────────── */
/** Fence array (A_* relative to the fence payload word). */
export const A_NUM = FENCE_WORDS + 0; // number of child fences
export const A_PENDING = FENCE_WORDS + 1; // children still to signal (signal-on-any: 1); goes ≤ 0 when done
export const A_SLOTS = FENCE_WORDS + 2; // payload word of the SLOTS block: one child payload word per entry
export const A_MODE = FENCE_WORDS + 3; // ARRAY_SIGNAL_ANY
export const ARRAY_WORDS = 4;
export const ARRAY_SIGNAL_ANY = 1;
/** Fence chain link (C_* relative to the fence payload word). */
export const C_PREV = FENCE_WORDS + 0; // payload word of the previous link or plain fence (0 = none); the link holds a reference
export const C_PREV_LOCK = FENCE_WORDS + 1; // lock word guarding C_PREV (read + get, compare-exchange on GC)
export const C_FENCE = FENCE_WORDS + 2; // payload word of the contained fence (the link holds a reference)
export const C_PREV_SEQNO_LO = FENCE_WORDS + 3; // seqno of prev when the context was reused, else 0 (64-bit)
export const C_PREV_SEQNO_HI = FENCE_WORDS + 4;
export const CHAIN_WORDS = 6; // 5 used, padded to keep blocks 8-byte multiples

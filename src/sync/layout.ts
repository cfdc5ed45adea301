/**
 * The sync layer's shared-memory structs: the sync-file fd table entry (in the fixed table the
 * arena reserves at creation), the sw_sync timeline and its points, name blocks, the fd
 * layer's header field, and the sw_sync records of the thread slot.
 */
import { H_LAYERS_END, T_LAYERS_END, TABLE_ENTRY_WORDS } from '../arena/layout.js';
import { defineStruct, WORDS64 } from '../arena/struct.js';
import { FENCE_WORDS, FLAG_USER_SHIFT, H_FENCE_END } from '../fence/layout.js';
import { T_CONTAINERS_END } from '../containers/layout.js';

/* ───────────── sync-file fd table (FD_* relative to an entry) ───────────── */
export const { STATE: FD_STATE, FENCE: FD_FENCE, OWNER: FD_OWNER, NAME: FD_NAME, LOCK: FD_LOCK, END: FD_STRIDE } = defineStruct(
  'fd entry',
  {
    STATE: 1, // (generation << FDS_GEN_SHIFT) | FDS_*: claims are a CAS on this word
    FENCE: 1, // word index of the fence payload (the fd holds one reference)
    OWNER: 1, // thread slot + 1 that created it (its fds are closed when it is reaped); 0 none (a fresh table's zeroed entries, and once freed)
    NAME: 1, // payload word index of a name block, 0 default
    LOCK: 1, // robust lock word (futex kind): lookups and close of this entry serialise on it
  },
  { end: TABLE_ENTRY_WORDS },
);
export const FDS_FREE = 0;
export const FDS_CLAIMED = 1; // being filled in by create: not visible to lookups yet
export const FDS_LIVE = 2;
export const FDS_STATE_MASK = 3;
export const FDS_GEN_SHIFT = 2;
export const FDS_GEN_MASK = 0x1fffffff; // generation 1..mask, kept across close so a reused entry rejects stale fds
/** fd = generation * FD_INDEX_SCALE + entry index: a plain integer, never below FD_INDEX_SCALE. */
export const FD_INDEX_SCALE = 2 ** 20;

/** Header field (word index), after the fence layer's. */
export const { FD_NEXT: H_FD_NEXT, END: H_SYNC_END } = defineStruct(
  'sync header',
  { FD_NEXT: 1 }, // next-fit cursor of the fd table (Atomics.add)
  { base: H_FENCE_END, limit: H_LAYERS_END },
);

/* ───────────── names: [byte length, up to NAME_MAX_BYTES UTF-8 bytes] ───────────── */
export const NAME_MAX_BYTES = 31; // the kernel's char name[32] with its NUL
export const { LEN: NM_LEN, BYTES: NM_BYTES, END: NAME_WORDS } = defineStruct('name', {
  LEN: 1,
  BYTES: Math.ceil(NAME_MAX_BYTES / 4),
});

/* ───────────── sw_sync timeline (TL_* relative to the timeline block's payload) ───────────── */
export const {
  LOCK: TL_LOCK, KREF: TL_KREF, FILE_REFS: TL_FILE_REFS, CONTEXT: TL_CONTEXT, VALUE: TL_VALUE, HEAD: TL_HEAD, TAIL: TL_TAIL,
  CLOSED: TL_CLOSED, OWNER: TL_OWNER, OWNER_SERIAL: TL_OWNER_SERIAL, NAME: TL_NAME, END: TL_WORDS,
} = defineStruct('timeline', {
  LOCK: 1, // the timeline lock; its points borrow it as their fence lock (kernel sync_timeline.lock)
  KREF: 1, // struct references: 1 while the timeline is open, + 1 per point
  FILE_REFS: 1, // open references (create, get, receive; each in its holder's ledger): the last close signals the rest with -ENOENT
  CONTEXT: 1,
  VALUE: 1, // u32 counter, written under the lock, read with Atomics.load
  HEAD: 1, // first point (fence payload word) of the list sorted by seqno, 0 empty
  TAIL: 1,
  CLOSED: 1, // 1 once the last open reference is closed, or its owner died
  OWNER: 1, // thread slot + 1 responsible for it (its creator, or who adopted it), 0 none: its death closes it
  OWNER_SERIAL: 1, // …and that slot's serial (a later occupant of the slot is not the owner)
  NAME: NAME_WORDS,
});

/**
 * Ledger entry kind of an open reference of a timeline the thread holds (create, get, receive;
 * dropped by close). The sync layer's kinds are reaped by src/sync/timelineshare.ts.
 */
export const LGK_TIMELINE_REF = 8;
/** Ledger entry kind of a transit record holding a timeline reference its sender shared and nobody has received yet (TRF_TIMELINE). */
export const LGK_TL_TRANSIT = 9;

/* ───────────── sw_sync point: a fence block with a list link (PT_* relative to the fence payload) ───────────── */
export const { TIMELINE: PT_TIMELINE, PREV: PT_PREV, NEXT: PT_NEXT, LINKED: PT_LINKED, DEADLINE: PT_DEADLINE, END: PT_WORDS } = defineStruct(
  'sw_sync point',
  {
    TIMELINE: 1, // payload word index of the timeline (0 once its release dropped its timeline reference)
    PREV: 1,
    NEXT: 1,
    LINKED: 1, // 1 while on the timeline's list
    DEADLINE: WORDS64, // earliest deadline asked for (BigInt64 ns), valid once PT_HAS_DEADLINE is set
  },
  { base: FENCE_WORDS },
);

/** Fence flag of a point: PT_DEADLINE holds a deadline (kernel SW_SYNC_HAS_DEADLINE_BIT, the first user bit). */
export const PT_HAS_DEADLINE = 1 << FLAG_USER_SHIFT;

/* ───────────── thread-slot fields (T_* relative to the slot's base word) ───────────── */
/**
 * Timeline records (src/sync/signaling.ts): a stack of the sw_sync `inc`s and `close`s this thread
 * has in flight, so that the reaper of a thread terminated inside one finishes it — signals the
 * points the counter reached (or, closed, all of them), ends the close, drops the point reference
 * it held for signaling — instead of losing those points' callbacks. The first SW_CAP live in the
 * thread slot; deeper ones (a callback that increments another timeline, …) each in a block of
 * their own (struct `timeline record block`), stacked from the slot's T_SW_MORE: every level is
 * recorded.
 */
export const SW_CAP = 3;
export const { TL: SWR_TL, STATE: SWR_STATE, POINT: SWR_POINT, PGEN: SWR_PGEN, END: SWR_WORDS } = defineStruct('timeline record', {
  TL: 1, // payload word index of the timeline
  STATE: 1, // its block generation | SWS_* bits
  POINT: 1, // a point this thread holds a reference on while signaling it (0 none)…
  PGEN: 1, // …and its generation
});
/** A timeline record deeper than SW_CAP: an INTERNAL block of the thread that pushed it. */
export const { DOWN: SWB_DOWN, END: SWB_WORDS } = defineStruct(
  'timeline record block',
  {
    DOWN: 1, // the next shallower record block (payload word), 0 for the one at depth SW_CAP
  },
  { base: SWR_WORDS },
);
/**
 * Record bit: a close() dropped the last open reference (set in the drop's run; until then the
 * reference is its holder's ledger entry): the timeline is closed here, then its open-state
 * reference put.
 */
export const SWS_LAST = 1 << 25;
/** Record bit: the open-state reference was put (the close is complete). */
export const SWS_PUT = 1 << 26;

export const {
  SW_DEPTH: T_SW_DEPTH, SW: T_SW, SW_FREE: T_SW_FREE, SW_FREE_GEN: T_SW_FREE_GEN, SW_NEW: T_SW_NEW, SW_NEW_GEN: T_SW_NEW_GEN, SW_MORE: T_SW_MORE, END: T_SYNC_END,
} = defineStruct(
  'sync thread slot',
  {
    SW_DEPTH: 1, // timeline records in use (past SW_CAP: the deeper ones are blocks stacked from SW_MORE)
    SW: SW_CAP * SWR_WORDS, // SW_CAP timeline records of SWR_WORDS words (struct timeline record)
    SW_FREE: 1, // a block this thread is freeing — a timeline whose last struct reference it dropped, a record block it popped: payload word…
    SW_FREE_GEN: 1, // …and generation (the reaper frees it if still live at it)
    SW_NEW: 1, // the point createFence holds the creator's reference on (allocated or reused), 0 none: payload word…
    SW_NEW_GEN: 1, // …and generation (the reaper puts it, or frees it while not initialised, if still live at it)
    SW_MORE: 1, // the innermost timeline record block (records past SW_CAP: payload word), 0 none
  },
  { base: T_CONTAINERS_END, limit: T_LAYERS_END },
);

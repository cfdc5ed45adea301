/**
 * The fence layer's shared-memory structs: the fence itself, the callback node, the fence layer's
 * header fields, its thread-slot fields (inbox, doorbell, wake word, release records) and the
 * per-thread reference ledger.
 */
import { H_LAYERS, H_LAYERS_END, T_LAYERS_END } from '../arena/layout.js';
import { defineStruct, WORDS64 } from '../arena/struct.js';
import { T_LOCKS_END } from '../locks/layout.js';

/* ───────────── fence (F_* relative to the payload's first word) ───────────── */
export const {
  FLAGS: F_FLAGS, LOCK: F_LOCK, LENDER: F_LENDER, LENDER_GEN: F_LENDER_GEN, OPS: F_OPS, CB_HEAD: F_CB_HEAD, REFCOUNT: F_REFCOUNT,
  ERROR: F_ERROR, CONTEXT: F_CONTEXT, SEQNO_LO: F_SEQNO_LO, SEQNO_HI: F_SEQNO_HI, CB_TAIL: F_CB_TAIL, TIMESTAMP: F_TIMESTAMP,
  END: FENCE_WORDS,
} = defineStruct(
  'fence',
  {
    FLAGS: 1, // flag bits; also the futex word waiters sleep on
    LOCK: 1, // union: inline lock word, or word index of the borrowed lock
    LENDER: 1, // word index of the lender block's header (borrowed), 0 inline
    LENDER_GEN: 1, // generation of the lender block when the fence borrowed it
    OPS: 1, // ops id (hash of the ops name)
    CB_HEAD: 1, // word index of the first callback node (0 = none)
    REFCOUNT: 1,
    ERROR: 1,
    CONTEXT: 1,
    SEQNO_LO: 1,
    SEQNO_HI: 1,
    CB_TAIL: 1,
    TIMESTAMP: WORDS64, // BigInt64 (byte 48 of the payload)
  },
  { end: 14 },
);
export const FENCE_BYTES = FENCE_WORDS * 4; // 56: with the 8-byte block header, one 64-byte block

/** Fence flag bits, in the kernel's order; WAITERS tells signal() to notify. */
export const FLAG_INITIALIZED = 1 << 0;
export const FLAG_INLINE_LOCK = 1 << 1;
export const FLAG_SEQNO64 = 1 << 2;
export const FLAG_SIGNALED = 1 << 3;
export const FLAG_TIMESTAMP = 1 << 4;
export const FLAG_ENABLE_SIGNAL = 1 << 5;
/**
 * User flag bits (kernel DMA_FENCE_FLAG_USER_BITS): bits FLAG_USER_SHIFT .. FLAG_USER_SHIFT +
 * FLAG_USER_COUNT - 1 belong to the fence's driver (Fence.setUserFlag / testUserFlag); the library
 * never reads them. sw_sync uses the first for "a deadline was set", as the kernel's does.
 */
export const FLAG_USER_SHIFT = 6;
export const FLAG_USER_COUNT = 16; // how many user flag bits (Fence.USER_FLAG_COUNT)
/**
 * Which optional ops the fence's table has, recorded at creation: a thread that has not
 * registered the ops still knows whether an op would have to run, and refuses instead of
 * skipping it (fencelab's own; the kernel has the table itself).
 */
export const FLAG_OPS_ENABLE = 1 << 22; // This one: the table has enableSignaling.
export const FLAG_OPS_RELEASE = 1 << 23; // the table has release
export const FLAG_OPS_DEADLINE = 1 << 24; // the table has setDeadline
export const FLAG_WAITERS = 1 << 30;

/* ───────────── callback node (CB_* relative to payload) ───────────── */
export const {
  FENCE: CB_FENCE, NEXT: CB_NEXT, PREV: CB_PREV, OWNER: CB_OWNER, TOKEN: CB_TOKEN, STATE: CB_STATE, KIND: CB_KIND, TARGET: CB_TARGET,
  END: CB_WORDS,
} = defineStruct('callback node', {
  FENCE: 1, // word index of the fence payload
  NEXT: 1,
  PREV: 1,
  OWNER: 1, // thread slot that runs it
  TOKEN: 1, // key of the function in the owner's table
  STATE: 1, // CBS_*
  KIND: 1, // CBK_FN (owner runs a function) or CBK_WAKE (signaler bumps a word)
  TARGET: 1, // CBK_WAKE: word index to bump and notify; CBK_FN: owner's registration serial
});
export const CBS_PENDING = 1;
export const CBS_QUEUED = 2; // detached by signal, waiting in the owner's inbox
export const CBS_DONE = 3;
/** Set by the thread freeing a node, made its owner first, just before the free: a reaper frees FREEING nodes of a dead owner. */
export const CBS_FREEING = 4;
export const CBK_FN = 0;
export const CBK_WAKE = 1;
export const CBK_SHARED = 2; // library code run by the signaler: CB_TOKEN = handler id, CB_TARGET = its data word

/* ───────────── header fields (word indices), first in the arena's layer area ───────────── */
export const { CONTEXT: H_CONTEXT, STUB: H_STUB, STUB_LOCK: H_STUB_LOCK, END: H_FENCE_END } = defineStruct(
  'fence header',
  {
    CONTEXT: 1, // fence contexts handed out so far (the first is 1; 0 is the stub's)
    STUB: 1, // payload word of the permanent stub fence (0 until first use)
    STUB_LOCK: 1, // futex lock word (src/locks/) guarding stub creation
  },
  { base: H_LAYERS, limit: H_LAYERS_END },
);

/* ───────────── thread-slot fields (T_* relative to the slot's base word) ───────────── */
/**
 * Release records (src/fence/release.ts): a stack of the fences whose last reference this thread
 * has dropped and whose release it has not finished, so that the reaper can finish the release of
 * a thread terminated inside it. Entry: [payload word index, generation | REL_* state bits].
 * Releases nest RELEASE_INLINE deep; a last put nested deeper takes the last record only until its
 * fence is moved to the thread's deferred list (T_RELEASE_DEFER), which the release at the last
 * inline depth runs under its own record before it returns (as signals are deferred past
 * SIGNAL_INLINE), so no release goes unrecorded.
 */
export const RELEASE_CAP = 6;
/** Release nesting that runs inside the put; a last put nested deeper is deferred (see RELEASE_CAP). */
export const RELEASE_INLINE = RELEASE_CAP - 1;
export const { FW: REC_FW, STATE: REC_STATE, END: REC_WORDS } = defineStruct('release record', {
  FW: 1, // payload word index of the fence
  STATE: 1, // generation of the fence block | REL_* bits
});
export const REL_RESURRECTED = 1 << 24; // holds the reference the -EDEADLK signal runs under
export const REL_IN_RELEASE = 1 << 25; // ops.release has been called (the reaper calls it again only if it resumes)
export const REL_DROPPED = 1 << 26; // the last reference is gone (without it the record is an intent only)

/**
 * Signal records (src/fence/signal.ts): a stack of the signals this thread has in flight — the
 * fence, and how far the callback list it detached has been dispatched — so that the reaper of a
 * thread terminated inside signal() delivers the rest (and wakes the waiters) instead of losing
 * them. Entry: [fence payload word, its generation, next node to dispatch, that node's
 * generation, the node after it, and for a shared node the handler running it and its target].
 * Signals nest SIGNAL_INLINE deep with their callbacks run at once; one nested deeper takes the last
 * record only until its list is moved to the thread's deferred list (T_SIGNAL_DEFER), which the
 * signal at the last inline depth runs under its own record before it returns (the kernel defers
 * the same way, with irq_work), so no signal goes unrecorded.
 */
export const SIGNAL_CAP = 5;
/** Signal nesting whose callbacks run inside the signal call; deeper ones are deferred (see SIGNAL_CAP). */
export const SIGNAL_INLINE = SIGNAL_CAP - 1;
export const {
  FW: SIG_FW, FGEN: SIG_FGEN, NODE: SIG_NODE, NGEN: SIG_NGEN, NEXT: SIG_NEXT, SHARED: SIG_SHARED, SDATA: SIG_SDATA, END: SIG_WORDS,
} = defineStruct('signal record', {
  FW: 1, // payload word index of the fence being signaled
  FGEN: 1, // its generation
  NODE: 1, // the detached list's next node not yet dispatched (0: none, or not detached yet)
  NGEN: 1, // that node's generation (not live at it: dispatched)
  NEXT: 1, // the node after it (read before NODE's dispatch may overwrite its link)
  SHARED: 1, // NODE is a CBK_SHARED node: its handler id | the handler's SIG_STEP_* progress bits (0 once it let go)
  SDATA: 1, // …and its target (the node's CB_TARGET), copied before the node is freed
});
/** Bits of SIG_SHARED below the handler's own progress bits: the shared handler's id (1..255). */
export const SIG_HANDLER_MASK = 0xff;
/** The first progress bit a shared handler may set in SIG_SHARED (see defineSharedCallback's reap). */
export const SIG_STEP_1 = 1 << 8;

export const {
  DOORBELL: T_DOORBELL, INBOX: T_INBOX, WAKE: T_WAKE, DRAINING: T_DRAINING, RELEASE_DEPTH: T_RELEASE_DEPTH, RELEASE: T_RELEASE,
  RELEASE_DEFER: T_RELEASE_DEFER, RELEASE_DEFER_TAIL: T_RELEASE_DEFER_TAIL, LEDGER: T_LEDGER, LEDGER_SPARE: T_LEDGER_SPARE, LEDGER_SPARE_GEN: T_LEDGER_SPARE_GEN, SIGNAL_DEPTH: T_SIGNAL_DEPTH, SIGNAL: T_SIGNAL,
  SIGNAL_DEFER: T_SIGNAL_DEFER, SIGNAL_DEFER_TAIL: T_SIGNAL_DEFER_TAIL, IN_FLIGHT: T_IN_FLIGHT, IN_FLIGHT_GEN: T_IN_FLIGHT_GEN,
  END: T_FENCE_END,
} = defineStruct(
  'fence thread slot',
  {
    DOORBELL: 1, // bumped (and notified) when the inbox gets work
    INBOX: 1, // head of a lock-free stack of callback nodes queued for this thread
    WAKE: 1, // per-thread wake word for waitAny
    DRAINING: 1, // inbox list being run by drainInbox, newest first, up to the running node (the reaper discards it)
    RELEASE_DEPTH: 1, // release records in use (at most RELEASE_CAP: deeper releases are deferred)
    RELEASE: RELEASE_CAP * REC_WORDS,
    RELEASE_DEFER: 1, // fences whose release nested deeper than RELEASE_INLINE is deferred, not run yet: first one…
    RELEASE_DEFER_TAIL: 1, // …and last one (each links the next through its refcount word, as -next: see deferRelease)
    LEDGER: 1, // payload word index of the slot's reference ledger block (0 none)
    LEDGER_SPARE: 1, // a block in flight — a ledger block installed (grown into) or retired, a block being freed (freeInFlight): payload word…
    LEDGER_SPARE_GEN: 1, // …and generation, so a thread killed mid-move leaves its reaper the block to free
    SIGNAL_DEPTH: 1, // signal records in use (at most SIGNAL_CAP: deeper signals are deferred)
    SIGNAL: SIGNAL_CAP * SIG_WORDS, // SIGNAL_CAP signal records of SIG_WORDS words (struct signal record)
    SIGNAL_DEFER: 1, // callback lists of signals nested deeper than SIGNAL_INLINE, joined, not yet run: first node…
    SIGNAL_DEFER_TAIL: 1, // …and last node (the next deferred list is linked after it)
    IN_FLIGHT: 1, // a block between its allocation and the struct that will own it (a sync file's name): payload word…
    IN_FLIGHT_GEN: 1, // …and generation: the reaper frees it if still live at that generation
  },
  { base: T_LOCKS_END, limit: T_LAYERS_END },
);

// Module-local copies for releaseRecord: optimized code folds them to constants where it inlines
// the function (exported bindings are loaded from their cells at every call), which every fence
// put does several times (measured: a few percent of create+signal+put).
const RECORDS_AT = T_RELEASE;
const RECORD_WORDS = REC_WORDS;

/** Word index of release record `d`'s field `field` (REC_FW / REC_STATE) in the slot at `slotBase`. */
export function releaseRecord(slotBase: number, d: number, field: number): number {
  return slotBase + RECORDS_AT + d * RECORD_WORDS + field;
}

/* ───────────── reference ledger: one block per thread slot (T_LEDGER) ───────────── */
/**
 * What a thread holds that nobody else could give back if it died (fence references, driver
 * operations and drivers): the reaper walks a dead thread's ledger. Only the owner writes it.
 */
export const { COUNT: LG_COUNT, CAP: LG_CAP, ENTRIES: LG_ENTRIES } = defineStruct('ledger', {
  COUNT: 1, // entries in use
  CAP: 1, // entries that fit
  ENTRIES: 0, // LG_STRIDE words per entry from here
});
export const { KIND: LE_KIND, VALUE: LE_VALUE, GEN: LE_GEN, END: LG_STRIDE } = defineStruct('ledger entry', {
  KIND: 1, // LGK_* (kinds above the fence layer are registered by their layers)
  VALUE: 1, // payload word index of what is held
  GEN: 1, // its block generation when recorded (a stale entry is skipped)
});
/** Ledger entry kind of a fence reference. */
export const LGK_FENCE_REF = 1;
/** Ledger entry kind of a transit record its sender has shared and nobody has received yet (src/fence/handover.ts). */
export const LGK_TRANSIT = 5;
/**
 * LE_GEN of a fence reference being created (src/fence/handover.ts createTrackedAt): the entry's
 * value is written in the allocation's run, its generation right after the fence is initialised.
 */
export const LE_GEN_CREATING = -1;

/* ───────────── transit record: one block (BlockType.TRANSIT) per shared reference ───────────── */
/**
 * A fence reference in transit between two threads (src/fence/handover.ts): taken by the sender's
 * `share()`, recorded in the sender's ledger (LGK_TRANSIT), claimed by one receiver, which records
 * it in its own ledger in the claim's run. The block's handle is the token.
 */
export const { STATE: TR_STATE, FENCE: TR_FENCE, FENCE_GEN: TR_FENCE_GEN, FLAGS: TR_FLAGS, SENDER: TR_SENDER, END: TRANSIT_WORDS } = defineStruct('transit', {
  STATE: 1, // (block generation << 2) | TRS_*: a CAS on it claims or withdraws the reference
  FENCE: 1, // payload word index of the fence
  FENCE_GEN: 1, // its block generation
  FLAGS: 1, // TRF_*
  SENDER: 1, // sender's thread slot + 1 (who may withdraw)
});
/** Transit states (low 2 bits of TR_STATE). EMPTY: being filled, holds no reference yet. */
export const TRS_EMPTY = 0;
/** Holds a reference nobody has received yet. */
export const TRS_SENT = 1;
/** A receiver took the reference (it frees the block). */
export const TRS_CLAIMED = 2;
/** The sender (or its reaper) took the reference back. */
export const TRS_WITHDRAWN = 3;
/** Transit flag: the receiver becomes the thread responsible for signaling the fence. */
export const TRF_SIGNALING = 1;
/**
 * Transit flag: the record holds an open reference of a sw_sync timeline (src/sync/timelineshare.ts,
 * TR_FENCE naming the timeline), not a fence reference: only SwTimeline.receive claims it.
 */
export const TRF_TIMELINE = 2;

/* ───────────── fence slot (S_* relative to the payload's first word) ───────────── */
/**
 * A FenceSlot (src/fence/slot.ts): a fence pointer in shared memory that threads replace and read
 * (the kernel's `struct dma_fence __rcu *`). The slot holds one reference on the fence it names.
 */
export const { LOCK: S_LOCK, FENCE: S_FENCE, END: SLOT_WORDS } = defineStruct('fence slot', {
  LOCK: 1, // robust lock word: reading FENCE and taking a reference, or swapping it, happen under it
  FENCE: 1, // payload word index of the fence held (0 none)
});

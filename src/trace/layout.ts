/**
 * The trace recorder's shared-memory structs: its header fields (on a cache line of their own at
 * the end of the arena's layer area), its thread-slot fields (at the end of the slot's layer area),
 * the per-thread ring block and the event entry; and the event kinds and categories.
 *
 * The recorder sits beside the arena, below every other layer (the arena's sanitizer records into
 * it), so its structs are placed from the end of the reserved areas backwards instead of being
 * chained after a higher layer's: the layer structs grow up from the start, these down from the
 * end, and a test checks that the two never meet.
 */
import { H_LAYERS_END, T_LAYERS_END } from '../arena/layout.js';
import { defineStruct, WORDS64 } from '../arena/struct.js';

/* ───────────── header fields (word indices), the last cache line of the layer area ───────────── */
/**
 * Every tracepoint reads FLAGS; only start() and stop() write this line, so the load hits a line
 * that no other thread keeps writing (the allocator's counters sit in the first line).
 */
export const TRACE_HEADER_WORDS = 16;
export const {
  EPOCH: TH_EPOCH, STOPPED: TH_STOPPED, FLAGS: TH_FLAGS, SESSION: TH_SESSION, RING_EVENTS: TH_RING_EVENTS,
} = defineStruct(
  'trace header',
  {
    EPOCH: WORDS64, // Float64: trace clock (ms) when the session started
    STOPPED: WORDS64, // Float64: trace clock (ms) when it stopped, 0 while recording
    FLAGS: 1, // categories being recorded (TC_* bits); 0 = tracing off
    SESSION: 1, // current session number (rings of earlier sessions are stale)
    RING_EVENTS: 1, // events per thread ring in this session (what fills the ring's block)
    PAD: 9, // the rest of the cache line: nothing else may share it
  },
  { base: H_LAYERS_END - TRACE_HEADER_WORDS, end: H_LAYERS_END },
);

/* ───────────── thread-slot fields (T_* relative to the slot's base word), the end of the layer area ───────────── */
/** Words of the thread's name (UTF-8, NAME_MAX_BYTES at most) after its byte length. */
export const THREAD_NAME_WORDS = 7;
export const THREAD_NAME_MAX_BYTES = THREAD_NAME_WORDS * 4;
export const TRACE_SLOT_WORDS = 7 + THREAD_NAME_WORDS;
export const {
  RING: T_TRACE_RING, NO_RING: T_TRACE_NO_RING, WAIT_FENCE: T_WAIT_FENCE, WAIT_GEN: T_WAIT_GEN, WAIT_SINCE: T_WAIT_SINCE,
  WAIT_LOCK: T_WAIT_LOCK, NAME_LEN: T_NAME_LEN, NAME: T_NAME, END: T_TRACE_END,
} = defineStruct(
  'trace thread slot',
  {
    RING: 1, // payload word of this thread's event ring (0 none yet)
    NO_RING: 1, // session in which no ring could be allocated (events of that session are dropped)
    WAIT_FENCE: 1, // payload word of the fence this thread sleeps on in a blocking wait (0 none)
    WAIT_GEN: 1, // …its block generation
    WAIT_SINCE: 1, // …and when the wait began (Date.now() & 0x7fffffff)
    WAIT_LOCK: 1, // lock word index this thread waits to acquire (0 none): written on contention only
    NAME_LEN: 1, // byte length of the thread's name (0: unnamed)
    NAME: THREAD_NAME_WORDS, // UTF-8 bytes ("main", "exporter 1", …)
  },
  { base: T_LAYERS_END - TRACE_SLOT_WORDS, end: T_LAYERS_END },
);

/* ───────────── ring block (R_* relative to the payload's first word) ───────────── */
export const TRACE_MAGIC = 0x54524345; // 'TRCE'
export const {
  MAGIC: R_MAGIC, SESSION: R_SESSION, SLOT: R_SLOT, SERIAL: R_SERIAL, THREAD_ID: R_THREAD_ID, CAP: R_CAP, NEXT: R_NEXT, HEAD: R_HEAD,
  NAME_LEN: R_NAME_LEN, NAME: R_NAME, ENTRIES: R_ENTRIES,
} = defineStruct('trace ring', {
  MAGIC: 1, // TRACE_MAGIC once the owner filled in the header
  SESSION: 1, // session whose events the ring holds
  SLOT: 1, // owner's thread slot…
  SERIAL: 1, // …and registration serial: the owner is gone when the slot's serial differs
  THREAD_ID: 1, // owner's Node threadId
  CAP: 1, // entries (whatever fills the block's size class)
  NEXT: 1, // entry the next event goes to; only the owner writes the ring
  HEAD: 1, // events written this session (more than CAP: the oldest were overwritten)
  NAME_LEN: 1, // copy of the owner's name, kept when its thread slot is reaped
  NAME: THREAD_NAME_WORDS, // its UTF-8 bytes
  ENTRIES: 0, // EV_WORDS words per event from here (word 16: 8-byte aligned)
});

/**
 * One event: its time, the kind word and five arguments whose meaning the kind gives. The time is
 * the monotonic clock in nanoseconds as one 64-bit value (a BigInt64 element: an event starts on an
 * even word), the format of a fence's timestamp, which a signal's event reuses.
 */
export const { NS_LO: EV_NS_LO, NS_HI: EV_NS_HI, KIND: EV_KIND, A: EV_A, B: EV_B, C: EV_C, D: EV_D, E: EV_E, END: EV_WORDS } = defineStruct('trace event', {
  NS_LO: 1, // monotonic clock (process.hrtime.bigint, the clock of fence timestamps), ns: low half…
  NS_HI: 1, // …and high half
  KIND: 1, // event kind (low 7 bits, EV_*) | kind-specific bits from bit 8
  A: 1, // arguments: what each holds is the kind's (see the EV_* constants)
  B: 1, // …
  C: 1, // …
  D: 1, // …
  E: 1, // …
});
/** The kind is the low 7 bits of the kind word (bit 7 is unused); kind-specific bits sit above. */
export const EVENT_KIND_MASK = 0x7f;
export const EVENT_BITS_SHIFT = 8;

/* ───────────── categories (TH_FLAGS bits) ───────────── */
/**
 * What a session records, one bit per category. 'release' is not in the default set: with it a
 * fence's life costs two clock reads instead of one (create and release; the signal reuses the
 * fence's own timestamp), and a clock read is most of an event's cost.
 */
export const TC_FENCE = 1 << 0; // fence life: init, emit, enable_signal, signaled (the kernel's tracepoints but destroy)
export const TC_WAIT = 1 << 1; // fence waits: wait_start, wait_end
export const TC_LOCK = 1 << 2; // lock contention: contended, acquired after contention, the contended hold's release, owner died
export const TC_CALLBACK = 1 << 3; // callbacks: queued to another thread's inbox, run, done
export const TC_DRIVER = 1 << 4; // driver operations: submitted, cancelled, ended
export const TC_THREAD = 1 << 5; // threads: a dead worker's slot reaped
export const TC_SANITIZER = 1 << 6; // the sanitizer caught a use-after-free
export const TC_RELEASE = 1 << 7; // fence releases (the kernel's dma_fence_destroy)
export const TC_ALL = (1 << 8) - 1; // every category
export const TC_DEFAULT = TC_ALL & ~TC_RELEASE; // what start() records unless told otherwise

/* ───────────── event kinds (EV_KIND low bits) and their arguments A–E ───────────── */
/** Event kinds; the comment of each says what its five arguments hold. */
export const EV_FENCE_INIT = 1; // A fence payload word, B its generation, C context, D seqno (low 32 bits), E ops id; kind bits INIT_*
export const EV_FENCE_EMIT = 2; // a driver started executing the fence's operation; A–D as init
export const EV_FENCE_ENABLE_SIGNAL = 3; // A–D as init
export const EV_FENCE_SIGNALED = 4; // A–D as init, E the fence's error (0 none); stamped with the fence's own timestamp
export const EV_FENCE_WAIT_START = 5; // A–D as init, E 0 blocking, 1 async
export const EV_FENCE_WAIT_END = 6; // A–D as init, E 1 signaled, 0 timed out, -1 aborted or failed
export const EV_FENCE_DESTROY = 7; // A–D as init (category 'release')
export const EV_SIGNAL_DONE = 8; // a signal's callbacks were run or queued: A B the fence, C run here, D queued to other threads
export const EV_LOCK_CONTENDED = 10; // A lock word index, B the holder's thread slot (-1 none seen), C lock algorithm (LK_*)
export const EV_LOCK_ACQUIRED = 11; // A lock word index, B the lock layer's ACQ_* result (timed out, acquired, owner died)
export const EV_LOCK_RELEASED = 12; // A lock word index (releases of contended acquisitions only)
export const EV_LOCK_OWNER_DIED = 13; // A lock word index: this thread took it over from a holder that died
export const EV_CB_QUEUED = 20; // A callback node payload word, B its generation, C owner's thread slot, D fence payload word, E its generation
export const EV_CB_RUN = 21; // A B the node, C D the fence, E 1 when its own signaler runs it, 0 its owner from the inbox
export const EV_CB_DONE = 22; // A B the node
/** EV_UAF packs the sanitizer's report: see the comment on the constant. */
export const EV_UAF = 30; // A stale block's header word, B generation taken, C current generation | (type now there << 24), D freedBy + 1 | (nowOwner + 1) << 10 | UAF_ACCESS_* << 20, E the fence's header word >>> 1 (0 none); kind bits the fence's generation
export const EV_OP_SUBMITTED = 40; // A operation payload word, B its generation, C out-fence payload word, D its generation, E operation id
export const EV_OP_CANCELLED = 41; // A B the operation, C OP_END_* (cancelled, deleted, aborted), D the status its fence gets
export const EV_OP_ENDED = 42; // A B the operation, C OP_END_*, D the status its fence got
export const EV_THREAD_REAPED = 50; // A the reaped thread slot, B its registration serial, C its Node threadId

/** Bits of an EV_FENCE_INIT kind word above EVENT_BITS_SHIFT. */
export const INIT_INLINE_LOCK = 1; // the fence has its own lock (not a borrowed one)
export const INIT_SEQNO_HI_SHIFT = 8; // the seqno's bits 32–47 from here

/** How an operation ended (argument C of EV_OP_CANCELLED and EV_OP_ENDED). */
export const OP_END_COMPLETED = 1; // executed and signaled by its exporter
export const OP_END_CANCELED = 2; // a CANCEL command ended it before it ran
export const OP_END_DELETED = 3; // a DELETE command ended it
export const OP_END_ABORTED = 4; // its exporter died: the reaper ended it (-ENODEV)

/** What a use-after-free touched (bits 20–23 of argument D of EV_UAF). */
export const UAF_ACCESS_OTHER = 0; // another access
export const UAF_ACCESS_FENCE = 1; // a fence view's field
export const UAF_ACCESS_LOCK = 2; // a SpinLock's word
export const UAF_ACCESS_FENCE_LOCK = 3; // a fence's borrowed lock word (the borrowed-lock use-after-free)

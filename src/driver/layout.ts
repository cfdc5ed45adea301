/**
 * The driver layer's shared-memory structs: the operation (the exporter's object whose lock an
 * out-fence may borrow), the driver block with its counters and command ring, and the driver's
 * thread-slot fields (the operation a thread has claimed to finish).
 */
import { T_LAYERS_END } from '../arena/layout.js';
import { TRACE_SLOT_WORDS } from '../trace/layout.js';
import { defineStruct } from '../arena/struct.js';
import { T_RUNTIME_END } from '../runtime/layout.js';

/* ───────────── operation (OP_* relative to payload) ───────────── */
export const OP_PAYLOAD_WORDS = 8;
export const {
  LOCK: OP_LOCK, STATE: OP_STATE, FENCE: OP_FENCE, DRIVER: OP_DRIVER, OWNER: OP_OWNER, ID: OP_ID, DURATION_US: OP_DURATION_US,
  RESULT: OP_RESULT, PAYLOAD: OP_PAYLOAD, END: OP_WORDS,
} = defineStruct('operation', {
  LOCK: 1, // the lock an out-fence borrows (word 0: becomes the free-list link once freed)
  STATE: 1, // (generation << OPS_GEN_SHIFT) | OPS_*: every transition is a CAS on this word
  FENCE: 1, // payload word index of the out-fence (the operation holds one reference)
  DRIVER: 1, // payload word index of the driver block
  OWNER: 1, // exporter thread slot
  ID: 1, // per-driver operation number
  DURATION_US: 1, // simulated work
  RESULT: 1, // status the out-fence got (1 or negative errno), written by the finisher
  PAYLOAD: OP_PAYLOAD_WORDS, // user data
});
export const OPS_GEN_SHIFT = 3;
export const OPS_SUBMITTED = 1; // out-fence created, waiting for execute
export const OPS_RUNNING = 2; // executing
export const OPS_FINISHING = 3; // claimed by exactly one finisher (complete, cancel, delete or reap)
export const OPS_NEW = 4; // allocated and recorded by its submitter, not yet published
export const OPS_COUNTED = 5; // finishing: its end counted, its fence reference not yet dropped

/** Ledger entry kind of an operation its submitter has not ended: the reaper ends it with -ENODEV. */
export const LGK_OPERATION = 2;
/** Ledger entry kind of a driver: destroyed with its creator once its operations ended. */
export const LGK_DRIVER = 3;

/* ───────────── driver block (DRV_* relative to payload) ───────────── */
export const {
  CONTEXT: DRV_CONTEXT, SEQNO: DRV_SEQNO, OWNER: DRV_OWNER, NEXT_ID: DRV_NEXT_ID, SUBMITTED: DRV_SUBMITTED, COMPLETED: DRV_COMPLETED,
  CANCELED: DRV_CANCELED, DELETED: DRV_DELETED, ABORTED: DRV_ABORTED, CMD_MISSED: DRV_CMD_MISSED, RING_HEAD: DRV_RING_HEAD,
  RING_TAIL: DRV_RING_TAIL, RING_CAP: DRV_RING_CAP, RING_BELL: DRV_RING_BELL, LOCK_MODE: DRV_LOCK_MODE, RING: DRV_RING,
} = defineStruct('driver', {
  CONTEXT: 1, // fence context of the driver's timeline
  SEQNO: 1, // last seqno handed out (Atomics.add)
  OWNER: 1, // exporter thread slot
  NEXT_ID: 1,
  SUBMITTED: 1, // counters (Atomics); live and freed operations are derived from them
  COMPLETED: 1,
  CANCELED: 1,
  DELETED: 1,
  ABORTED: 1, // finished by the reaper (exporter died)
  CMD_MISSED: 1, // commands that found their operation already finished
  RING_HEAD: 1, // command ring: consumer position
  RING_TAIL: 1, // producer position (Atomics.add reserves an entry)
  RING_CAP: 1, // entries (power of two)
  RING_BELL: 1, // bumped + notified when a command is posted
  LOCK_MODE: 1, // 0 inline, 1 borrowed
  RING: 0, // RING_STRIDE words per ring entry from here
});
/** Ring commands (RE_CMD): end an operation that has not started executing, or in any state. */
export const CMD_CANCEL = 1;
export const CMD_DELETE = 2;
/** A command ring entry: [sequence, command, operation handle lo, hi]. */
export const { SEQ: RE_SEQ, CMD: RE_CMD, OP_LO: RE_OP_LO, OP_HI: RE_OP_HI, END: RING_STRIDE } = defineStruct('ring entry', {
  SEQ: 1,
  CMD: 1,
  OP_LO: 1,
  OP_HI: 1,
});

/* ───────────── thread-slot fields (T_* relative to the slot's base word) ───────────── */
/**
 * One record of an operation end this thread is inside (won the CAS to OPS_FINISHING, not yet
 * freed): payload word (0: none), the FINISHING state word it set, and the counter to bump.
 */
export const { OP: FIN_OP, STATE: FIN_STATE, COUNTER: FIN_COUNTER, END: FINISH_STRIDE } = defineStruct('operation end record', {
  OP: 1,
  STATE: 1,
  COUNTER: 1,
});
/**
 * Operation ends a thread can be inside at once: an end signals its out-fence, whose callbacks in
 * the same thread may end another operation (a cancel), and so on. One deeper is refused (EDEADLK).
 */
export const FINISH_CAP = 4;
/** The operation end records of this thread: how many are in use (innermost last), and the records. */
export const { FINISH_DEPTH: T_FINISH_DEPTH, FINISH: T_FINISH, END: T_DRIVER_END } =
  defineStruct(
    'driver thread slot',
    { FINISH_DEPTH: 1, FINISH: FINISH_CAP * FINISH_STRIDE },
    // Up to the trace recorder's fields, which end the layer area: running into them fails at load.
    { base: T_RUNTIME_END, limit: T_LAYERS_END - TRACE_SLOT_WORDS },
  );

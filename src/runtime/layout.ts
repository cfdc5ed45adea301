/**
 * The runtime layer's shared-memory structs: its thread-slot fields (the dispatcher flag, the pool
 * scheduler's pull-loop record), the scheduler's control block and the job — a fence extended with
 * what the scheduler needs to start it once its dependencies have signaled.
 */
import { T_LAYERS_END } from '../arena/layout.js';
import { defineStruct } from '../arena/struct.js';
import { FENCE_WORDS } from '../fence/layout.js';
import { T_SYNC_END } from '../sync/layout.js';

/** Ledger entry kind of a job a pull loop runs: the reaper of a dead loop ends it with -ENODEV. */
export const LGK_JOB = 4;

/* ───────────── thread-slot fields (T_* relative to the slot's base word) ───────────── */
export const {
  DISPATCHING: T_DISPATCHING, PULL_SCHED: T_PULL_SCHED, PULL_GEN: T_PULL_GEN, PULL_LOOPS: T_PULL_LOOPS, PULL_LOOKING: T_PULL_LOOKING,
  PULL_SLEEPING: T_PULL_SLEEPING, PULL_TAKEN: T_PULL_TAKEN, PULL_TAKEN_GEN: T_PULL_TAKEN_GEN, PULL_TAKEN_REFS: T_PULL_TAKEN_REFS,
  PUSHED: T_PUSHED, PUSHED_GEN: T_PUSHED_GEN, DRAIN: T_DRAIN, DRAIN_GEN: T_DRAIN_GEN, END: T_RUNTIME_END,
} = defineStruct(
  'runtime thread slot',
  {
    DISPATCHING: 1, // 1 while a dispatcher listens on the doorbell
    PULL_SCHED: 1, // payload word of the scheduler whose ready queue this thread pulls from (0 none)…
    PULL_GEN: 1, // …and its block generation, so a reaper never touches a block freed since
    PULL_LOOPS: 1, // pull loops this thread runs for it (counted in the scheduler's PULLERS)
    PULL_LOOKING: 1, // of those, the ones between jobs (counted in the scheduler's LOOKING)
    PULL_SLEEPING: 1, // of those, the ones asleep on WORK (counted in the scheduler's SLEEPING)
    PULL_TAKEN: 1, // payload word of the job a pull loop took off the queue and has not recorded yet…
    PULL_TAKEN_GEN: 1, // …its block generation…
    PULL_TAKEN_REFS: 1, // …and the references on it the thread holds outside its ledger (0: nothing to reap)
    PUSHED: 1, // payload word of a job this thread moved WAITING → QUEUED and has not linked in its queue yet…
    PUSHED_GEN: 1, // …and its block generation
    DRAIN: 1, // payload word of a destroyed scheduler this thread linked a job into and has not drained yet (jobs.ts drainQueue)…
    DRAIN_GEN: 1, // …and its block generation
  },
  { base: T_SYNC_END, limit: T_LAYERS_END },
);

/* ───────────── scheduler control block (S_* relative to its payload) ───────────── */
/**
 * One per pool: the ready queue (a FIFO of jobs linked through J_NEXT, under LOCK) and the counts
 * that decide when the main thread must start another pull loop. QUEUED, PULLERS and LOOKING are
 * written under LOCK only; readers outside it treat them as hints.
 */
export const {
  LOCK: S_LOCK, HEAD: S_HEAD, TAIL: S_TAIL, QUEUED: S_QUEUED, PULLERS: S_PULLERS, LOOKING: S_LOOKING, SLEEPING: S_SLEEPING, BELL: S_BELL,
  WORK: S_WORK, FLAGS: S_FLAGS,
  REFS: S_REFS, STARTED: S_STARTED, END: SCHED_WORDS,
} = defineStruct('scheduler', {
  LOCK: 1, // futex word guarding the queue and the counts
  HEAD: 1, // first ready job (payload word), 0 when empty
  TAIL: 1, // last ready job
  QUEUED: 1, // jobs in the queue
  PULLERS: 1, // pull loops running in pool workers
  LOOKING: 1, // pull loops between jobs (spinning or asleep on WORK): each takes a queued job unasked
  SLEEPING: 1, // of those, the ones asleep on WORK: a push wakes one only for jobs beyond the awake ones
  BELL: 1, // bumped and notified when the main thread should start pull loops
  WORK: 1, // bumped and notified by a push that needs a sleeping pull loop: they sleep on it
  FLAGS: 1, // SF_*
  REFS: 1, // the pool's reference + one per job not yet finished; the last one frees the block
  STARTED: 1, // pull loops ever started (wraps): the main thread tells kicks still in flight by it
});
/** The pool was destroyed: a job that becomes ready is cancelled instead of queued. */
export const SF_DESTROYED = 1 << 0;

/* ───────────── job: a fence extended (J_* relative to the fence payload) ───────────── */
export const {
  STATE: J_STATE, PENDING: J_PENDING, DEP_ERROR: J_DEP_ERROR, NEXT: J_NEXT, SCHED: J_SCHED, ABORT: J_ABORT, INPUT: J_INPUT,
  INPUT_LEN: J_INPUT_LEN, INPUT_KIND: J_INPUT_KIND, RESULT: J_RESULT, RESULT_LEN: J_RESULT_LEN, RESULT_KIND: J_RESULT_KIND, DEPS: J_DEPS,
  NDEPS: J_NDEPS, END: JOB_WORDS,
} = defineStruct(
  'job',
  {
    STATE: 1, // JS_*, changed by compare-and-swap only: whoever wins a transition owns what follows
    PENDING: 1, // dependencies not yet signaled, + 1 while they are being armed
    DEP_ERROR: 1, // first error of a dependency (0 none): the job is then finished with it, never run
    NEXT: 1, // next job in the ready queue
    SCHED: 1, // payload word of the scheduler block (the job holds one of its REFS until finished)
    ABORT: 1, // AB_*: what the running task reads as ctx.aborted
    INPUT: 1, // block holding the encoded task envelope (payload, task name, input keys); 0 none
    INPUT_LEN: 1, // its length in bytes
    INPUT_KIND: 1, // CODEC_* of the envelope
    RESULT: 1, // block holding the encoded result or thrown error; 0 none
    RESULT_LEN: 1, // its length in bytes
    RESULT_KIND: 1, // CODEC_*, | CODEC_THROWN when the task threw
    DEPS: 1, // block of NDEPS entries DEP_*: the dependencies (a reference each) and their callbacks
    NDEPS: 1, // entries in DEPS
  },
  { base: FENCE_WORDS },
);

/** Job states. */
export const JS_WAITING = 1; // dependencies pending; callbacks armed on them
export const JS_QUEUED = 2; // in the ready queue (or being taken out of it)
export const JS_RUNNING = 3; // a pool worker took it and runs the task
export const JS_DONE = 4; // finished: its fence is signaled (with the task's outcome or an error)
export const JS_CANCELED = 5; // aborted or its pool destroyed before it started

/** Job abort word. */
export const AB_NONE = 0;
export const AB_ABORTED = 1;
export const AB_OVER = 2; // the task finished: nobody waits on the word any more

/** One dependency entry in the J_DEPS block. */
export const { FW: DEP_FW, NODE: DEP_NODE, NODE_GEN: DEP_NODE_GEN, REMOVED: DEP_REMOVED, END: DEP_WORDS } = defineStruct('job dependency', {
  FW: 1, // payload word of the dependency fence (the job holds a reference)
  NODE: 1, // its callback node (0 when it had already signaled, or its reference is put), to remove it if the job ends early…
  NODE_GEN: 1, // …and the node's generation
  REMOVED: 1, // 1 from the unlink's run when the job's end removed the node: the callback's job reference is the finisher's to put
});

/** How an envelope or result is encoded in its block. */
export const CODEC_NONE = 0; // `undefined`: no block
export const CODEC_JSON = 1; // UTF-8 JSON (plain data: the fast path)
export const CODEC_V8 = 2; // v8.serialize (structured clone: Map, Date, typed arrays, errors, cycles…)
export const CODEC_THROWN = 4; // flag: the value is what the task threw
export const CODEC_FENCE_ERROR = 8; // flag (with CODEC_THROWN): a FenceError, stored as [code, message]

/** Shared-callback id of a job's dependency callback (ids are unique across layers: containers use 1 and 2). */
export const CB_JOB_DEP = 3;

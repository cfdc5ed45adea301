/**
 * The scenario board: a SharedArrayBuffer next to the arena where the demo/stress workers hand
 * fences from exporters to importers and keep their counters. It is bookkeeping of the scenario,
 * not part of the arena: the arena is what is under test.
 *
 * Hand-off ring: each slot moves EMPTY → FILLING (an exporter claimed it) → PUBLISHED (fence
 * handle written, one reference taken for the importer) → TAKEN (an importer claimed it) → DONE
 * (the importer is finished; its reference travels back with the slot) → FILLING again, where the
 * exporter that reclaims the slot drops that reference. Handing the reference back with one store
 * leaves no window where a killed importer has dropped it but not said so: a slot still TAKEN by a
 * dead importer still holds its reference, and the main thread drops it during recovery.
 * A non-zero handle in a FILLING slot is a reference the slot carries (the importer's, until the
 * exporter drops it; then the one it exports): the exporter writes and clears it in the same run
 * as the Atomics op that takes or drops it, so the recovery of a dead exporter puts exactly those.
 * FILLING and TAKEN carry the claimer in the state itself. FREED says the exporter has freed the
 * operation behind the fence.
 */

/** Counters (Int32 indices). */
export const C = {
  STOP: 0, // main asks everyone to stop
  SEQ: 1, // bumped (and notified) on every ring change: idle workers wait on it
  OPS: 2, // operations completed (signaled and freed) by exporters
  FENCES: 3, // fences created
  SIGNALS: 4, // signal() calls that actually signaled (checkAndSignal said "was not signaled")
  DOUBLE_SIGNALS: 5, // a fence signaled twice (violation)
  CANCELLED: 6,
  STALE: 7, // importer lock attempts through a fence whose operation was freed (borrowed mode)
  ME_VIOLATIONS: 8, // a critical section found another holder inside (mutual exclusion broken)
  HANGS: 9, // lock or wait timeouts
  LOCK_ERRORS: 10, // unlock failed: the word no longer held our owner id (EPERM)
  CONSUMED: 11, // fences an importer finished with
  CB_ADDED: 12,
  CB_RAN: 13,
  CB_REMOVED: 14,
  CB_DOUBLE: 15, // a callback ran twice (violation)
  ERRORS: 16, // unexpected exceptions in workers
  EXPORTERS_LEFT: 17, // exporters still running
  STATUS_MISMATCH: 18, // a fence's status disagreed with what its exporter decided
  OWNER_DIED: 19, // lock acquisitions that took over from a dead holder
  INFLIGHT: 20, // published fences not yet consumed (exporters keep it ≤ their maxInflight)
  CB_LATE: 21, // addCallback found the fence already signaled (null: nothing to run)
  WAKES: 22, // waits that began before the signal (the latency samples)
  COUNT: 32,
} as const;

export const RING_SLOTS = 256;
export const RING = C.COUNT; // first slot word
export const S_STATE = 0;
export const S_FREED = 1;
export const S_OWNER = 2; // the exporter (worker index) that filled the slot last
export const S_EXPECT = 3; // status the exporter decided: 1 ok, or negative errno
export const S_CB = 4; // callbacks that must run for this fence (set by importer), checked at consume
export const S_EXPECT_ALT = 5; // another acceptable status (set by the recovery of a killed exporter: -ENODEV), or 0
export const S_STRIDE = 8;
export const EMPTY = 0;
export const PUBLISHED = 2;
export const DONE = 4;
/** TAKEN carries the taker (thread slot + 1) in the state itself: claimed and attributed in one CAS. */
export const TAKEN_BASE = 16;
export function takenBy(me: number): number {
  return TAKEN_BASE + me;
}
/** FILLING likewise carries the exporter (its worker index). */
export const FILLING_BASE = 4096;
export function fillingBy(worker: number): number {
  return FILLING_BASE + worker;
}

/** Per-worker words: the guard index a worker is inside (so a killed worker's guard can be undone). */
export const WORKER_WORDS = RING + RING_SLOTS * S_STRIDE;
export const MAX_WORKERS = 64;
/**
 * Per-exporter progress through its current operation (plain writes, each in the run of the step
 * it records): the recovery of a killed exporter reads what it had done. EX_SLOT: ring slot held.
 */
export const EX_STAGE = WORKER_WORDS + MAX_WORKERS;
export const EX_SLOT = EX_STAGE + MAX_WORKERS;
/** Operations an exporter finished (its replacement runs the rest in --ops mode). */
export const EX_DONE = EX_SLOT + MAX_WORKERS;
export const STAGE_IDLE = 0;
export const STAGE_CLAIMED = 1; // FILLING slot held (its handle, if any, is a reference to drop)
export const STAGE_SUBMITTING = 2; // an operation may exist (the driver's reaper ends or frees it)
export const STAGE_COUNTED = 3; // C.FENCES counted it
export const STAGE_INFLIGHT = 4; // C.INFLIGHT counted it (the slot's handle carries the export reference)
export const STAGE_PUBLISHED = 5; // the slot is PUBLISHED
export const STAGE_ENDED = 6; // C.SIGNALS counted its end
export const BOARD_WORDS = EX_DONE + MAX_WORKERS;
/** Float64 index where the fence handles of the ring start (8-byte aligned after the words). */
export const HANDLES_F64 = Math.ceil(BOARD_WORDS / 2);
export const BOARD_BYTES = (HANDLES_F64 + RING_SLOTS) * 8;

export interface Board {
  i32: Int32Array;
  f64: Float64Array;
  /** One Int32 per arena word: how many threads are inside a critical section of that lock word. */
  guard: Int32Array;
}

export function boardOf(buffer: SharedArrayBuffer, guard: SharedArrayBuffer): Board {
  return { i32: new Int32Array(buffer), f64: new Float64Array(buffer), guard: new Int32Array(guard) };
}

export function bump(board: Board, counter: number, n = 1): void {
  Atomics.add(board.i32, counter, n);
}

export function ringChanged(board: Board): void {
  Atomics.add(board.i32, C.SEQ, 1);
  Atomics.notify(board.i32, C.SEQ);
}

/** Waits up to `ms` for any ring change after `seen`. */
export function waitRing(board: Board, seen: number, ms: number): void {
  Atomics.wait(board.i32, C.SEQ, seen, ms);
}

/**
 * Enters a critical section of lock word `idx`: the guard must have been empty, or mutual
 * exclusion is broken (two holders of one word). `worker` records where we are, for recovery.
 */
export function guardEnter(board: Board, idx: number, worker: number): void {
  Atomics.store(board.i32, WORKER_WORDS + worker, idx);
  if (Atomics.add(board.guard, idx, 1) !== 0) bump(board, C.ME_VIOLATIONS);
}

export function guardExit(board: Board, idx: number, worker: number): void {
  Atomics.sub(board.guard, idx, 1);
  Atomics.store(board.i32, WORKER_WORDS + worker, 0);
}

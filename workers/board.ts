/**
 * The board of the exporter/importer engine: a SharedArrayBuffer next to the arena where exporter
 * workers hand fences to importer workers and where both keep their counters. It is bookkeeping of
 * the scenario, not part of the arena: the arena is what is under test.
 *
 * Hand-off ring: each slot moves EMPTY → FILLING (an exporter claimed it) → PUBLISHED (the fence
 * is in the slot's carrier) → TAKEN (an importer claimed it) → RETURNED (the importer is finished)
 * → DONE (and the exporter has freed the operation behind the fence: S_FREED) → FILLING again.
 * FILLING and TAKEN carry the claimer in the state itself: claimed and attributed in one CAS.
 *
 * Carriers (C.CARRIER, one kind per run):
 * - HANDLE: the slot's carrier word holds a parked reference (see parkRef) for the importer. The
 *   importer never drops it: the reference travels back with the slot (DONE), and the exporter
 *   that reclaims the slot drops it (dropParkedRef: the drop and the clearing of the word in one
 *   run). So there is no window where a killed importer has dropped it but not said so: a slot
 *   still TAKEN by a dead importer still holds it, and recovery hands the slot back.
 * - FD: the carrier word holds a sync-file fd the exporter created (its own reference, closed by
 *   the reaper if the exporter dies). The importer imports it as a tracked reference (importFd),
 *   closes the fd and puts the reference before the hand-back; a dead importer's reference is put
 *   by its reaper, and recovery closes the fd if it was still open.
 * - TOKEN: the carrier word holds a hand-over token (`fence.share()`): the reference is in a transit
 *   record of the exporter's ledger until an importer claims it with `Fence.receive` (into its own
 *   ledger, in the claim's run) and puts it before the hand-back. A dead exporter's reaper withdraws
 *   what nobody received (the importer's receive is then EBADF, counted in BAD_FD); a dead importer's
 *   reaper puts what it received; the exporter withdraws an unreceived token when it reclaims the slot
 *   (or its detach does). Nothing travels back with the slot, and no recovery step drops anything.
 *
 * Exporter stages: each slot records how far its exporter got with the slot's operation (S_STAGE),
 * written in the run of the Atomics op it records (plain writes right after it), so the recovery
 * of a killed exporter reads exactly what it had done.
 */

/** Counters and settings (Int32 word indices). */
export const C = {
  STOP: 0, // non-zero: the parent asks everyone to stop
  SEQ: 1, // bumped (and notified) on every ring change: idle workers wait on it
  OPS: 2, // operations their exporter saw end (by its own execute or cancel, or by a command)
  FENCES: 3, // out-fences published or about to be (counted before their hand-off)
  SIGNALS: 4, // counted fences whose end was seen: by their exporter, or by the recovery after its death
  DOUBLE_SIGNALS: 5, // an exporter's own callback ran twice: its fence signaled twice (violation)
  CANCELLED: 6, // operations that ended with -ECANCELED, as their exporter saw it
  STALE: 7, // importer lock attempts through a fence whose operation was freed (borrowed mode)
  ME_VIOLATIONS: 8, // a critical section found another holder inside (mutual exclusion broken)
  HANGS: 9, // lock or wait timeouts
  LOCK_ERRORS: 10, // unlock failed: the word no longer held our owner id (EPERM)
  CONSUMED: 11, // fences an importer finished with
  CB_ADDED: 12, // importer callbacks added
  CB_RAN: 13,
  CB_REMOVED: 14,
  CB_DOUBLE: 15, // a callback ran twice, or after its removal (violation)
  ERRORS: 16, // unexpected exceptions in workers
  EXPORTERS_LEFT: 17, // exporters still running (importers stop when it is 0 and the ring is empty)
  STATUS_MISMATCH: 18, // a fence's status was none its exporter allowed (S_EXPECT)
  OWNER_DIED: 19, // lock acquisitions that took over from a dead holder
  INFLIGHT: 20, // published fences not yet handed back (exporters keep it ≤ their maxInflight)
  CB_LATE: 21, // addCallback found the fence already signaled (null: nothing to run)
  WAKES: 22, // waits that began before the signal (the latency samples)
  SEEN_CANCELED: 23, // fences an importer found ended with -ECANCELED
  SEEN_NODEV: 24, // fences an importer found ended with -ENODEV (their exporter died)
  BAD_FD: 25, // fds an importer could not import (closed by the reaper of their dead exporter)
  COMMANDS: 26, // CANCEL/DELETE commands importers sent (run in place or posted to the driver's ring)
  COMMANDS_WON: 27, // of those run in place, the ones that ended the operation
  RING_FULL: 28, // commands the driver's command ring refused (full)
  HOLD: 29, // non-zero: a worker inside a watched critical section stays there until it is cleared
  HELD: 30, // workers currently staying inside a critical section because of HOLD
  CARRIER: 31, // setting, written by the parent before any worker starts: CARRIER_HANDLE, CARRIER_FD or CARRIER_TOKEN
  COUNT: 40,
} as const;

export const CARRIER_HANDLE = 0;
export const CARRIER_FD = 1;
/** C.CARRIER: slots carry hand-over tokens (fence.share() → Fence.receive). */
export const CARRIER_TOKEN = 2;

/* ───────────── the ring ───────────── */

export const RING_SLOTS = 256;
/** First slot word. */
export const RING = C.COUNT;
export const S_STATE = 0;
export const S_FREED = 1; // the operation behind the fence ended and was freed (reset at each publish)
export const S_OWNER = 2; // the exporter (worker index) that filled the slot last
export const S_EXPECT = 3; // statuses the fence may end with (EXPECT_* bits)
export const S_STAGE = 4; // the owner's progress with the slot's operation (STAGE_*)
export const S_RETURNING = 5; // the taker has given back its INFLIGHT count (the hand-back follows)
export const S_STRIDE = 8;

export const EMPTY = 0;
export const PUBLISHED = 2;
/** Handed back by its importer; its operation may not be freed yet. */
export const RETURNED = 3;
/** Handed back and its operation freed: the next exporter may reclaim it. */
export const DONE = 4;
/** TAKEN carries the taker (its worker index) in the state itself. */
export const TAKEN_BASE = 16;
export function takenBy(worker: number): number {
  return TAKEN_BASE + worker;
}
/** FILLING carries the exporter (its worker index). */
export const FILLING_BASE = 4096;
export function fillingBy(worker: number): number {
  return FILLING_BASE + worker;
}
export function isTaken(state: number): boolean {
  return state >= TAKEN_BASE && state < FILLING_BASE;
}

/** Statuses a fence may end with, as bits of S_EXPECT. */
export const EXPECT_OK = 1;
export const EXPECT_CANCELED = 2;
export const EXPECT_NODEV = 4;
const ECANCELED = -125;
const ENODEV = -19;
/** The S_EXPECT bit of `status` (1, -ECANCELED, -ENODEV), or 0 for any other. */
export function expectBit(status: number): number {
  return status === 1 ? EXPECT_OK : status === ECANCELED ? EXPECT_CANCELED : status === ENODEV ? EXPECT_NODEV : 0;
}

/* Exporter stages (S_STAGE). FILLING slots: */
export const STAGE_CLAIMED = 1; // slot held; a HANDLE carrier may still hold the reference handed back
export const STAGE_SUBMITTING = 2; // an operation may exist (the driver's reaper ends or frees it)
export const STAGE_COUNTED = 3; // C.FENCES counted it
export const STAGE_INFLIGHT = 4; // C.INFLIGHT counted it; the carrier holds the export
/* Published slots (any state after FILLING, until FREED): */
export const STAGE_PUBLISHED = 5; // the slot was published
export const STAGE_ENDED = 6; // its end was seen: C.SIGNALS and the exporter's EX_DONE counted it
export const STAGE_SETTLED = 7; // C.OPS counted it; only S_EXPECT and S_FREED are left to write

/* ───────────── per-worker words (worker index < MAX_WORKERS; 0 is the parent) ───────────── */

export const MAX_WORKERS = 64;
/** The lock word a worker is inside a critical section of (so a killed worker's guard can be undone). */
export const WORKER_WORDS = RING + RING_SLOTS * S_STRIDE;
/** Operations an exporter saw end (its replacement runs the rest of an --ops run). */
export const EX_DONE = WORKER_WORDS + MAX_WORKERS;
/** Slots an exporter published. */
export const EX_PUBLISHED = EX_DONE + MAX_WORKERS;
/** Runs of an exporter's own callbacks (when it adds them). */
export const EX_CB_RAN = EX_PUBLISHED + MAX_WORKERS;
/** 1 once an exporter (or the recovery after its death) took it out of C.EXPORTERS_LEFT. */
export const EX_LEFT = EX_CB_RAN + MAX_WORKERS;
export const BOARD_WORDS = EX_LEFT + MAX_WORKERS;

/* ───────────── Float64 words (handles are wider than 32 bits) ───────────── */

/** Float64 index of the first slot's handles (8-byte aligned after the Int32 words). */
export const SLOT_F64 = Math.ceil(BOARD_WORDS / 2);
export const SF_CARRIER = 0; // the parked fence reference, or the fd (see C.CARRIER)
export const SF_FENCE = 1; // the out-fence's handle, without a reference (for recovery to look at)
export const SF_OP = 2; // the operation's handle (importers send commands for it)
export const SF_STRIDE = 3;
/** Per exporter: the handle of the driver it runs. */
export const EXF_DRIVER = SLOT_F64 + RING_SLOTS * SF_STRIDE;
export const BOARD_BYTES = (EXF_DRIVER + MAX_WORKERS) * 8;

/** Int32 index of word `field` of ring slot `slot`. */
export function slotWord(slot: number, field: number): number {
  return RING + slot * S_STRIDE + field;
}

/** Float64 index of handle `field` of ring slot `slot`. */
export function slotF64(slot: number, field: number): number {
  return SLOT_F64 + slot * SF_STRIDE + field;
}

/* ───────────── access ───────────── */

export interface Board {
  i32: Int32Array;
  f64: Float64Array;
  /** One Int32 per arena word: how many threads are inside a critical section of that lock word. */
  guard: Int32Array;
}

/** A new board for an arena of `arenaBytes` (its guard has one word per arena word). */
export function createBoard(arenaBytes: number): { board: Board; buffer: SharedArrayBuffer; guard: SharedArrayBuffer } {
  const buffer = new SharedArrayBuffer(BOARD_BYTES);
  const guard = new SharedArrayBuffer(arenaBytes);
  return { board: boardOf(buffer, guard), buffer, guard };
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
 * exclusion is broken (two holders of one word). `worker` records where it is, for recovery: in
 * the run of the guard's increment (plain write right after it), so that a worker killed here has
 * either both or neither, and its guard is undone exactly.
 */
export function guardEnter(board: Board, idx: number, worker: number): void {
  const before = Atomics.add(board.guard, idx, 1);
  board.i32[WORKER_WORDS + worker] = idx;
  if (before !== 0) bump(board, C.ME_VIOLATIONS);
}

/** Leaves the critical section of lock word `idx` (the same one-run rule as guardEnter). */
export function guardExit(board: Board, idx: number, worker: number): void {
  Atomics.sub(board.guard, idx, 1);
  board.i32[WORKER_WORDS + worker] = 0;
}

/**
 * Makes a handed-back slot whose operation is freed reclaimable (RETURNED → DONE). Called by both
 * parties after their own write — the importer after RETURNED, the exporter after S_FREED — so
 * whichever comes second sees the other's write (sequentially consistent Atomics) and moves it.
 */
export function settleSlot(board: Board, slot: number): void {
  if (Atomics.load(board.i32, slotWord(slot, S_FREED)) === 1)
    Atomics.compareExchange(board.i32, slotWord(slot, S_STATE), RETURNED, DONE);
}

/** Undoes the guard of a worker that died inside a critical section. */
export function guardUndo(board: Board, worker: number): void {
  const inGuard = Atomics.exchange(board.i32, WORKER_WORDS + worker, 0);
  if (inGuard) Atomics.sub(board.guard, inGuard, 1);
}

/**
 * The parent's side of the ring after a worker exits — killed, crashed, or finished (every step
 * is a no-op for a worker that left cleanly) — and the final sweep. It runs after the arena reaped
 * the worker's slot (Arena.watch): its locks are released (owner died), its fds closed, its
 * operations ended with -ENODEV, its tracked references dropped. What is left is the board's own
 * bookkeeping: the slots it held and the counters it had not moved yet. (The guard it may have
 * been inside is undone before the reap: see Crew.spawn.)
 */
import { Errno, Fence, FenceError, SyncFile, dropParkedRef, type Arena } from '../src/index.js';
import {
  C, CARRIER_FD, CARRIER_TOKEN, DONE, EMPTY, EXPECT_NODEV, EX_LEFT, PUBLISHED, RETURNED, RING_SLOTS, SF_CARRIER, SF_FENCE, STAGE_COUNTED, STAGE_ENDED,
  STAGE_INFLIGHT, STAGE_PUBLISHED, S_EXPECT, S_FREED, S_OWNER, S_RETURNING, S_STAGE, S_STATE, bump, fillingBy,
  ringChanged, settleSlot, slotF64, slotWord, takenBy, type Board,
} from './board.js';
import { withdrawToken } from './ring.js';

function fdCarrier(board: Board): boolean {
  return Atomics.load(board.i32, C.CARRIER) === CARRIER_FD;
}

/** Closes an fd unless it is closed already (by its importer, or by its dead exporter's reaper). */
function closeIfOpen(arena: Arena, fd: number): void {
  if (fd === 0) return;
  try {
    SyncFile.close(arena, fd);
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
  }
}

/**
 * Drops what a slot's carrier holds: its parked reference, its fd, or its token — stale once its
 * exporter's reaper withdrew it; ours (the parent exporting) to withdraw; received: nothing to do.
 */
function dropCarrier(arena: Arena, board: Board, slot: number): void {
  const at = slotF64(slot, SF_CARRIER);
  if (fdCarrier(board)) closeIfOpen(arena, board.f64[at]);
  else if (Atomics.load(board.i32, C.CARRIER) === CARRIER_TOKEN) {
    if (board.f64[at] !== 0) withdrawToken(arena, board.f64[at]);
  } else dropParkedRef(arena, board.f64, at);
  board.f64[at] = 0;
}

/**
 * After importer `index` exited: hand back the slots it had taken, as it would have. A parked reference travels back with the slot; an fd it had not closed is closed here (the
 * reference it imported was its own, put by its reaper).
 */
export function recoverImporter(arena: Arena, board: Board, index: number): void {
  const b32 = board.i32;
  for (let i = 0; i < RING_SLOTS; i++) {
    if (Atomics.load(b32, slotWord(i, S_STATE)) !== takenBy(index)) continue;
    if (fdCarrier(board)) {
      closeIfOpen(arena, board.f64[slotF64(i, SF_CARRIER)]);
      board.f64[slotF64(i, SF_CARRIER)] = 0;
    }
    if (b32[slotWord(i, S_RETURNING)] === 0) Atomics.sub(b32, C.INFLIGHT, 1);
    Atomics.store(b32, slotWord(i, S_STATE), RETURNED);
    settleSlot(board, i);
  }
  ringChanged(board);
}

/** True when the reaper ended the fence (-ENODEV); false when it ended otherwise, or is gone. */
function endedByReaper(arena: Arena, handle: number): boolean {
  try {
    const f = Fence.fromHandle(arena, handle);
    return f.testSignaledFlag() && f.error === Errno.ENODEV;
  } catch (e) {
    if (e instanceof FenceError && e.code === 'EBADF') return false; // released: nobody will look at it
    throw e;
  }
}

/**
 * After exporter `index` exited: from each slot's stage (see board.ts) give back
 * the slot it was filling, let importers accept -ENODEV where its reaper ended the operation, mark
 * the operations freed, count the ends it had not counted, and take it out of EXPORTERS_LEFT.
 */
export function recoverExporter(arena: Arena, board: Board, index: number): void {
  const b32 = board.i32;
  for (let i = 0; i < RING_SLOTS; i++) {
    const state = Atomics.load(b32, slotWord(i, S_STATE));
    const stage = b32[slotWord(i, S_STAGE)];
    if (state === fillingBy(index)) {
      // A carrier here is the reference handed back to it, or its own export: not published.
      dropCarrier(arena, board, i);
      // Counted as a fence, never as signaled: its reaper ended it.
      if (stage >= STAGE_COUNTED) bump(board, C.SIGNALS);
      if (stage === STAGE_INFLIGHT) Atomics.sub(b32, C.INFLIGHT, 1);
      Atomics.store(b32, slotWord(i, S_STATE), EMPTY);
      continue;
    }
    if (b32[slotWord(i, S_OWNER)] !== index || Atomics.load(b32, slotWord(i, S_FREED)) !== 0) continue;
    if (stage === STAGE_PUBLISHED) {
      bump(board, C.SIGNALS);
      if (endedByReaper(arena, board.f64[slotF64(i, SF_FENCE)])) Atomics.or(b32, slotWord(i, S_EXPECT), EXPECT_NODEV);
    } else if (stage === STAGE_ENDED) {
      bump(board, C.OPS);
    }
    Atomics.store(b32, slotWord(i, S_FREED), 1);
    settleSlot(board, i);
  }
  if (b32[EX_LEFT + index] === 0) {
    Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
    b32[EX_LEFT + index] = 1;
  }
  ringChanged(board);
}

/**
 * Once every worker is gone: drops what the ring still carries — fences never taken (no importer
 * left) and fences handed back that no exporter reclaimed. Returns the slots emptied.
 */
export function sweepRing(arena: Arena, board: Board): number {
  const b32 = board.i32;
  let n = 0;
  for (let i = 0; i < RING_SLOTS; i++) {
    const state = Atomics.load(b32, slotWord(i, S_STATE));
    if (state !== PUBLISHED && state !== RETURNED && state !== DONE) continue;
    dropCarrier(arena, board, i);
    if (state === PUBLISHED) Atomics.sub(b32, C.INFLIGHT, 1);
    Atomics.store(b32, slotWord(i, S_STATE), EMPTY);
    n++;
  }
  return n;
}

/**
 * What bench/contention.bench.ts posts to its crew workers (bench/contention-worker.ts) and what
 * they post back, and the shared words of the fence workload.
 */
import type { LockKind } from '../src/index.js';

/** A lock the grid measures: a bare test-and-set, a SpinLock of one kind, or a fence's lock. */
export type LockVariant = 'raw' | LockKind | 'fence inline' | 'fence borrowed';

/**
 * Payload words of a cell's block: the lock word (raw and SpinLock variants) at word 0, the
 * counter the lock protects on a cache line of its own, as data a lock protects usually is.
 */
export const LOCK_WORD = 0;
export const COUNTER_WORD = 32;
/** Payload bytes of a cell's block. */
export const CELL_BLOCK_BYTES = (COUNTER_WORD + 16) * 4;

/** Warms every lock loop up, then measures the worker's busy loop: ns per iteration of `spinWork`. */
export interface CalibrateCell {
  type: 'calibrate';
}

export interface LockCell {
  type: 'lock';
  variant: LockVariant;
  /** Handle of the cell's block (see LOCK_WORD / COUNTER_WORD). */
  block: number;
  /** Handle of the fence whose lock the fence variants take. */
  fence: number;
  /** Iterations of `spinWork` inside the lock: the critical section. */
  csIters: number;
  /** Acquisitions between two looks at STOP. */
  batch: number;
}

export interface WorkloadCell {
  type: 'workload';
  role: 'exporter' | 'importer';
  /** Importer number (0-based), for its progress word. */
  index: number;
  importers: number;
  context: number;
  /** Ref of the lock every fence borrows (the timeline's), or 0: each fence has its inline lock. */
  lock: number;
  /** Shared words (W_*) and the ring of published fence handles. */
  words: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

export type ContentionCellMessage = CalibrateCell | LockCell | WorkloadCell;

export interface LockResult {
  /** Acquisitions. */
  count: number;
  /** Keeps the critical section's work from being optimised away. */
  sink: number;
}

export interface WorkloadResult {
  /** Fences created and signaled (exporter) or looked at (importer). */
  fences: number;
  /** Importer: callbacks added (the fence was still pending), run, and status() reads. */
  added: number;
  ran: number;
  statusReads: number;
}

export interface CalibrateResult {
  nsPerIter: number;
  sink: number;
}

export type ContentionResultMessage = CalibrateResult | LockResult | WorkloadResult;

/** Int32 words of the workload's shared block; each importer's progress sits on its own line. */
export const W_PUBLISHED = 0; // seqno of the last fence whose handle is in the ring
export const W_EXPORTER_DONE = 1; // 1 once the exporter signaled and put every fence
export const W_SLEEPERS = 2; // importers asleep on W_PUBLISHED (the exporter notifies only when some are)
export const W_PROGRESS = 16; // + 16 * importer: the last seqno it finished with
export const W_PROGRESS_STRIDE = 16;
/** Ring of fence handles (Float64: a handle exceeds 32 bits), indexed by seqno % RING_SLOTS. */
export const RING_SLOTS = 64;
/** The exporter signals each fence this many fences after creating it (importers see pending fences). */
export const SIGNAL_LAG = 8;

/** What bench/alloc.bench.ts posts to its crew workers (bench/alloc-worker.ts) and what they post back. */

/** The allocators the suite compares. */
export const ALLOC_IMPLS = ['arena alloc+free (public, zeroed)', 'arena allocBlock+freeBlock', '@thi.ng/malloc (a pool per thread)', 'global-lock free list'] as const;
export type AllocImpl = (typeof ALLOC_IMPLS)[number];

export interface AllocCellMessage {
  impl: AllocImpl;
  /** Blocks this worker allocates before the cell and frees after it. */
  live: number;
  /** The global-lock free list's buffer. */
  list: SharedArrayBuffer;
}

export interface AllocResult {
  /** alloc+free pairs. */
  count: number;
  /** The worker's own window: from the start barrier to seeing STOP (`process.hrtime.bigint()`, ns). */
  startNs: number;
  endNs: number;
  /** Time this thread spent on a CPU in that window (/proc/thread-self/schedstat), ns; -1 where it cannot be read. */
  onCpuNs: number;
  /** Keeps the loop's results from being optimised away. */
  sink: number;
}

/** Payload bytes of each allocation: with the arena's 8-byte header, one 64-byte block. */
export const PAYLOAD_BYTES = 56;

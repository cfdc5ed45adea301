/**
 * The allocator baseline of bench/alloc.bench.ts: one free list of 64-byte blocks in a
 * SharedArrayBuffer behind one lock (the futex word the arena's own locks use), carved from a bump
 * pointer. The simplest allocator that is correct across threads: every alloc and free takes the
 * same lock, where the arena's allocator works in per-thread caches and takes a class lock only to
 * move half a cache at a time.
 */
import { futexLock, futexUnlock } from '../src/locks/futex.js';

const LOCK = 0; // futex word
/**
 * A finite deadline: with none, futexLock checks the holder against an arena's thread table (to
 * turn a corrupted word into an error), and this buffer is not an arena.
 */
const LOCK_PATIENCE_MS = 60_000;
const HEAD = 1; // word index of the first free block, 0 = none
const TOP = 2; // word index of the next block to carve
const END = 3; // word index past the last block
/** Blocks start on their own 64-byte line after the header line. */
const FIRST_BLOCK = 16;
export const BLOCK_WORDS = 16;

/** A SharedArrayBuffer of `bytes` laid out as an empty list. */
export function createGlobalLockList(bytes: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(bytes);
  const i32 = new Int32Array(sab);
  i32[TOP] = FIRST_BLOCK;
  i32[END] = bytes >>> 2;
  return sab;
}

export class GlobalLockList {
  private readonly i32: Int32Array;
  /** The caller's owner id in the lock word (non-zero, one per thread). */
  private readonly me: number;

  constructor(sab: SharedArrayBuffer, me: number) {
    this.i32 = new Int32Array(sab);
    this.me = me;
  }

  /** Word index of a free 64-byte block, or 0 when the buffer is exhausted. */
  alloc(): number {
    const i32 = this.i32;
    futexLock(i32, LOCK, this.me, performance.now() + LOCK_PATIENCE_MS);
    let b = i32[HEAD];
    if (b !== 0) i32[HEAD] = i32[b];
    else if (i32[TOP] + BLOCK_WORDS <= i32[END]) {
      b = i32[TOP];
      i32[TOP] = b + BLOCK_WORDS;
    }
    futexUnlock(i32, LOCK);
    return b;
  }

  /** Puts block `b` (from {@link alloc}) back on the list. */
  free(b: number): void {
    const i32 = this.i32;
    futexLock(i32, LOCK, this.me, performance.now() + LOCK_PATIENCE_MS);
    i32[b] = i32[HEAD];
    i32[HEAD] = b;
    futexUnlock(i32, LOCK);
  }

  /** Blocks on the free list (walks it; at quiescence). */
  freeCount(): number {
    let n = 0;
    for (let b = this.i32[HEAD]; b !== 0; b = this.i32[b]) n++;
    return n;
  }

  /** Blocks carved so far. */
  carved(): number {
    return (this.i32[TOP] - FIRST_BLOCK) / BLOCK_WORDS;
  }
}

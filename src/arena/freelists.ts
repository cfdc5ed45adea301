/**
 * The allocator's global free lists, one per size class, each under its class's futex word: a
 * thread cache refills from its class's list (or carves a fresh block from the bump pointer) and
 * flushes half of itself back when full; a detaching or dead thread's caches are emptied into the
 * lists, and a dead thread's class locks released. The per-thread caches and the hot alloc and
 * free paths are in alloc.ts, which calls refill and flush on their slow paths.
 */
import { Errors } from '../errors.js';
import { ACQ_TIMEOUT, futexLock, futexReleaseDead, futexUnlock } from '../locks/futex.js';
import type { Arena } from './arena.js';
import * as L from './layout.js';
import { selfCheck } from './layout.js';
import { poisonPayload } from './sanitizer.js';

const { B_GEN, B_TAG, NO_THREAD, STATE_CACHED, STATE_FREE, TAG_ALLOC_SHIFT, TAG_FREE_SHIFT, TAG_STATE_MASK, TAG_STATE_SHIFT } = L;

/**
 * Moves up to CACHE_CAP/2 blocks of class `cls` into the calling thread's cache at word `cb` (or
 * carves one fresh block); returns the new count. Locking: takes and releases the class lock.
 * Throws ENOMEM when the heap is exhausted.
 *
 * Termination safety: worker.terminate() lands only at calls and loop back-edges, so every step
 * that moves blocks between a list and a cache is a run of plain writes with no call or loop in
 * it. Loops only write where nobody reads yet (cache cells past the count, links of blocks we
 * own) or normalise states, which the reaper's flush of a dead thread's cache redoes.
 *
 * One function on purpose: the slow path of allocBlock, it is too large for V8 to inline into it,
 * which keeps the hot path's compiled code small (split in two, it was inlined and allocBlock
 * with 1,000 live blocks ran ~10% slower).
 */
export function refill(arena: Arena, cls: number, cb: number, blockBytes: number): number {
  const i32 = arena.i32;
  const cl = L.H_CLASSES + cls * L.CL_STRIDE;
  if (Atomics.load(i32, cl + L.CL_COUNT) > 0) {
    lockClass(arena, cl);
    let n = 0;
    let head = i32[cl + L.CL_HEAD];
    // Each link is checked before it is taken (a corrupted one would hand out a block anywhere,
    // the header included): the blocks before a bad one are taken, a bad head is an error (an empty
    // list is not: another thread may have emptied it since the count was read).
    for (let h = head; h !== 0 && n < L.CACHE_CAP >>> 1; h = i32[h + L.BLOCK_HEADER_WORDS]) {
      if (!isFreeBlock(arena, h, cls)) break;
      n++;
    }
    if (n === 0 && head !== 0) {
      futexUnlock(i32, cl + L.CL_LOCK);
      throw Errors.corruptArena(`the free list of size class ${cls} links byte ${head * 4}, no free block of that class`);
    }
    // Most recently freed first out: the list head goes to the top of the cache (cell n).
    for (let j = n; j >= 1; j--) {
      i32[cb + j] = head;
      head = i32[head + L.BLOCK_HEADER_WORDS];
    }
    i32[cl + L.CL_HEAD] = head;
    i32[cl + L.CL_COUNT] -= n;
    i32[cb] = n;
    futexUnlock(i32, cl + L.CL_LOCK);
    for (let j = 1; j <= n; j++) {
      const hw = i32[cb + j];
      i32[hw + B_TAG] = (i32[hw + B_TAG] & ~(TAG_STATE_MASK << TAG_STATE_SHIFT)) | (STATE_CACHED << TAG_STATE_SHIFT);
    }
    if (n > 0) return n;
  }
  // Carve one fresh block from the bump pointer (never used: no poison to lay or check).
  const size = L.SIZE_CLASSES[cls];
  const end = i32[L.H_HEAP_END];
  for (;;) {
    const top = Atomics.load(i32, L.H_HEAP_TOP);
    // The header's check byte is computed before the carve: from the compare-exchange on, plain
    // writes only, so a thread terminated there leaves no carved block without a valid header
    // (the heap could not be walked past it: seen once in test/pool-kill.test.ts).
    const check = selfCheck(top >>> 2) << 24;
    if (end - top < size) {
      // Before giving up, see if another thread flushed blocks of this class meanwhile.
      if (Atomics.load(i32, cl + L.CL_COUNT) > 0) return refill(arena, cls, cb, blockBytes);
      throw Errors.noMemory(blockBytes - L.BLOCK_HEADER_BYTES, arena.capacity);
    }
    if (Atomics.compareExchange(i32, L.H_HEAP_TOP, top, top + size) !== top) continue;
    const hw = top >>> 2;
    i32[hw + B_TAG] = cls | (STATE_CACHED << TAG_STATE_SHIFT) | (NO_THREAD << TAG_ALLOC_SHIFT) | (NO_THREAD << TAG_FREE_SHIFT);
    i32[hw + B_GEN] = check;
    i32[cb + 1] = hw;
    i32[cb] = 1;
    return 1;
  }
}

/**
 * Moves the `k` most recent blocks of the cache at word `cb` (the calling thread's, or a reaped
 * slot's) to the global free list of class `cls`; returns the cache's new count. The caller pushes
 * the block being freed after this, so LIFO reuse of the very last free is kept.
 * Locking: takes and releases the class lock.
 */
export function flush(arena: Arena, cls: number, cb: number, k: number): number {
  const i32 = arena.i32;
  const cl = L.H_CLASSES + cls * L.CL_STRIDE;
  const n = i32[cb];
  lockClass(arena, cl);
  let head = i32[cl + L.CL_HEAD];
  for (let j = n - k + 1; j <= n; j++) {
    const hw = i32[cb + j];
    i32[hw + B_TAG] = (i32[hw + B_TAG] & ~(TAG_STATE_MASK << TAG_STATE_SHIFT)) | (STATE_FREE << TAG_STATE_SHIFT);
    i32[hw + L.BLOCK_HEADER_WORDS] = head;
    head = hw;
  }
  // One run of plain writes: the blocks leave the cache and join the list together.
  i32[cl + L.CL_HEAD] = head;
  i32[cl + L.CL_COUNT] += k;
  i32[cb] = n - k;
  futexUnlock(i32, cl + L.CL_LOCK);
  return n - k;
}

/** Whether header word `hw` (a free-list link read from shared memory) is a free block of class `cls`. */
function isFreeBlock(arena: Arena, hw: number, cls: number): boolean {
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  return hw >= arena.heapStartW && hw < arena.heapEndW && (hw & 3) === 0 && i32[hw + B_GEN] >>> 24 === selfCheck(hw) &&
    (tag & L.TAG_STATE_MASK << L.TAG_STATE_SHIFT) === L.STATE_FREE << L.TAG_STATE_SHIFT && (tag & L.TAG_CLASS_MASK) === cls;
}

function lockClass(arena: Arena, cl: number): void {
  if (futexLock(arena.i32, cl + L.CL_LOCK, arena.me, Infinity) === ACQ_TIMEOUT)
    throw Errors.deadlock('allocator class lock taken recursively');
}

/**
 * Empties every cache of the thread slot at word `slotBase` into the global free lists.
 * Threads: the slot's own thread (detach) or a reaper, once the slot's thread is dead (`dead`).
 * In a sanitizing arena a dead thread's free may have stopped between its commit and its poison
 * (alloc.ts freeSlow): the reaper lays the poison on the top block of each cache, the only one
 * that free can have left unfinished, so the next allocation's poison check is not misled.
 */
export function flushSlotCaches(arena: Arena, slotBase: number, dead: boolean): void {
  const i32 = arena.i32;
  for (let cls = 0; cls < L.NCLASSES; cls++) {
    const cb = slotBase + L.T_CACHE + cls * L.CACHE_STRIDE;
    const n = i32[cb];
    if (n === 0) continue;
    if (dead && arena.sanitize) poisonPayload(i32, i32[cb + n], cls);
    flush(arena, cls, cb, n);
  }
}

/**
 * Releases the class locks a dead thread (owner id `dead`) held, marked owner-died, so the free
 * lists it was moving blocks to or from can be taken again.
 */
export function releaseDeadClassLocks(arena: Arena, dead: number): void {
  for (let cls = 0; cls < L.NCLASSES; cls++) futexReleaseDead(arena.i32, L.H_CLASSES + cls * L.CL_STRIDE + L.CL_LOCK, dead);
}

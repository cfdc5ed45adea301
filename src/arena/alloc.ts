/**
 * The allocator: size classes, per-thread caches and global free lists.
 *
 * Blocks are carved from a bump pointer and never split or merged; freed blocks go to the freeing
 * thread's cache (LIFO, plain reads and writes: only the owner touches it), overflow moves half a
 * cache to the size class's global free list (under the class's futex word). A freed block
 * therefore comes back to the very next allocation of its size on that thread — exactly what
 * makes a borrowed lock in a freed operation dangle into the next operation.
 *
 * These are free functions over an {@link Arena} view so that the arena's facade stays small; the
 * view is always an `Arena` (one hidden class), so the hot paths stay monomorphic and inlinable.
 */
import { Errors } from '../errors.js';
import { ACQ_TIMEOUT, futexLock, futexReleaseDead, futexUnlock } from '../locks/futex.js';
import type { Arena } from './arena.js';
import * as L from './layout.js';
import { selfCheck } from './layout.js';
import { checkPoison } from './sanitizer.js';

const { B_GEN, B_TAG, GEN_MASK, NO_THREAD, STATE_CACHED, STATE_FREE, STATE_LIVE, TAG_ALLOC_SHIFT, TAG_CLASS_MASK, TAG_FREE_SHIFT, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_THREAD_MASK, TAG_TYPE_SHIFT } = L;

/** Byte size → size class index (classes ≤ 1024 bytes by table). */
const SMALL_CLASS = new Uint8Array(65);
{
  let c = 0;
  for (let i = 0; i <= 64; i++) {
    while (L.SIZE_CLASSES[c] < i * 16) c++;
    SMALL_CLASS[i] = c;
  }
}

/** Size class of a block of `blockBytes` (header included), or -1 when no class is that large. */
export function sizeClassFor(blockBytes: number): number {
  if (blockBytes <= 1024) return SMALL_CLASS[(blockBytes + 15) >>> 4];
  for (let c = 0; c < L.NCLASSES; c++) if (L.SIZE_CLASSES[c] >= blockBytes) return c;
  return -1;
}

/**
 * Hot-path allocation (see {@link Arena.allocBlock}): pops a block of `blockBytes`' class from the
 * calling thread's cache (refilling it first when empty) and tags it live with type `type`.
 * Returns its header word index. Throws ENOMEM.
 */
export function allocBlock(arena: Arena, blockBytes: number, type: number): number {
  const cls = blockBytes <= 1024 ? SMALL_CLASS[(blockBytes + 15) >>> 4] : sizeClassFor(blockBytes);
  if (cls < 0) throw Errors.noMemory(blockBytes, arena.capacity);
  const i32 = arena.i32;
  const cb = arena.cacheBase + cls * L.CACHE_STRIDE;
  let n = i32[cb];
  if (n === 0) n = refill(arena, cls, cb, blockBytes);
  const hw = i32[cb + n];
  if (arena.sanitize) checkPoison(i32, hw, cls);
  // No call from the pop to the LIVE tag: a terminated thread cannot strand the block between.
  i32[cb] = n - 1;
  const tag = i32[hw + B_TAG];
  i32[hw + B_TAG] =
    cls |
    (type << TAG_TYPE_SHIFT) |
    (STATE_LIVE << TAG_STATE_SHIFT) |
    (arena.slot << TAG_ALLOC_SHIFT) |
    (tag & (TAG_THREAD_MASK << TAG_FREE_SHIFT));
  const g = i32[hw + B_GEN];
  i32[hw + B_GEN] = (((g & GEN_MASK) + 1) & GEN_MASK || 1) | (g & ~GEN_MASK);
  i32[arena.slotBase + L.T_ALLOCS]++;
  return hw;
}

/**
 * Hot-path free (see {@link Arena.freeBlock}) of the live block at header word `hw`: it goes on
 * top of the calling thread's cache, poisoned in sanitize mode. Throws EBADF on a double free.
 */
export function freeBlock(arena: Arena, hw: number): void {
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  if (((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) !== STATE_LIVE) throw Errors.badHandle('block', hw, 'double free');
  const cls = tag & TAG_CLASS_MASK;
  const next =
    (tag & ~((TAG_STATE_MASK << TAG_STATE_SHIFT) | (TAG_THREAD_MASK << TAG_FREE_SHIFT))) |
    (STATE_CACHED << TAG_STATE_SHIFT) |
    (arena.slot << TAG_FREE_SHIFT);
  // Room first (flush is a call): from the state change to the push there must be no call, or a
  // terminated thread could leave a block marked cached in no cache.
  const cb = arena.cacheBase + cls * L.CACHE_STRIDE;
  let n = i32[cb];
  if (n === L.CACHE_CAP) n = flush(arena, cls, cb, L.CACHE_CAP >>> 1);
  if (arena.sanitize) {
    i32.fill(L.POISON, hw + L.BLOCK_HEADER_WORDS, hw + (L.SIZE_CLASSES[cls] >>> 2));
    Atomics.add(i32, L.H_FREE_SERIAL, 1);
    // Two threads racing to free one block: exactly one wins the compare-exchange. It is the
    // last Atomics call before the push: terminate() can land at an Atomics call, not after it.
    if (Atomics.compareExchange(i32, hw + B_TAG, tag, next) !== tag) throw Errors.badHandle('block', hw, 'double free');
  } else {
    i32[hw + B_TAG] = next;
  }
  // The generation moves on free too, so a view that remembers (block, generation) can tell a
  // freed block from a live one with a single compare (Fence's hot-path check relies on it).
  const g = i32[hw + B_GEN];
  i32[hw + B_GEN] = (((g & GEN_MASK) + 1) & GEN_MASK || 1) | (g & ~GEN_MASK);
  i32[cb + n + 1] = hw;
  i32[cb] = n + 1;
  i32[arena.slotBase + L.T_FREES]++;
}

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
function refill(arena: Arena, cls: number, cb: number, blockBytes: number): number {
  const i32 = arena.i32;
  const cl = L.H_CLASSES + cls * L.CL_STRIDE;
  if (Atomics.load(i32, cl + L.CL_COUNT) > 0) {
    lockClass(arena, cl);
    let n = 0;
    let head = i32[cl + L.CL_HEAD];
    for (let h = head; h !== 0 && n < L.CACHE_CAP >>> 1; h = i32[h + L.BLOCK_HEADER_WORDS]) n++;
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
    if (end - top < size) {
      // Before giving up, see if another thread flushed blocks of this class meanwhile.
      if (Atomics.load(i32, cl + L.CL_COUNT) > 0) return refill(arena, cls, cb, blockBytes);
      throw Errors.noMemory(blockBytes - L.BLOCK_HEADER_BYTES, arena.capacity);
    }
    if (Atomics.compareExchange(i32, L.H_HEAP_TOP, top, top + size) !== top) continue;
    const hw = top >>> 2;
    i32[hw + B_TAG] = cls | (STATE_CACHED << TAG_STATE_SHIFT) | (NO_THREAD << TAG_ALLOC_SHIFT) | (NO_THREAD << TAG_FREE_SHIFT);
    i32[hw + B_GEN] = selfCheck(hw) << 24;
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
function flush(arena: Arena, cls: number, cb: number, k: number): number {
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

function lockClass(arena: Arena, cl: number): void {
  if (futexLock(arena.i32, cl + L.CL_LOCK, arena.me, Infinity) === ACQ_TIMEOUT)
    throw Errors.deadlock('allocator class lock taken recursively');
}

/**
 * Empties every cache of the thread slot at word `slotBase` into the global free lists.
 * Threads: the slot's own thread (detach) or a reaper, once the slot's thread is dead.
 */
export function flushSlotCaches(arena: Arena, slotBase: number): void {
  const i32 = arena.i32;
  for (let cls = 0; cls < L.NCLASSES; cls++) {
    const cb = slotBase + L.T_CACHE + cls * L.CACHE_STRIDE;
    if (i32[cb] > 0) flush(arena, cls, cb, i32[cb]);
  }
}

/**
 * Releases the class locks a dead thread (owner id `dead`) held, marked owner-died, so the free
 * lists it was moving blocks to or from can be taken again.
 */
export function releaseDeadClassLocks(arena: Arena, dead: number): void {
  for (let cls = 0; cls < L.NCLASSES; cls++) futexReleaseDead(arena.i32, L.H_CLASSES + cls * L.CL_STRIDE + L.CL_LOCK, dead);
}

/**
 * The allocator: size classes, per-thread caches and global free lists.
 *
 * Blocks are carved from a bump pointer and never split or merged; freed blocks go to the freeing
 * thread's cache (LIFO, plain reads and writes: only the owner touches it), overflow moves half a
 * cache to the size class's global free list (under the class's futex word). A freed block
 * therefore comes back to the very next allocation of its size on that thread — exactly what
 * makes a borrowed lock in a freed operation dangle into the next operation. The global free lists
 * (refill, flush, a dead thread's caches and class locks) are in freelists.ts.
 *
 * These are free functions over an {@link Arena} view so that the arena's facade stays small; the
 * view is always an `Arena` (one hidden class), so the hot paths stay monomorphic and inlinable.
 */
import { Errors } from '../errors.js';
import type { Arena } from './arena.js';
import { flush, refill } from './freelists.js';
import { heldWords } from './hooks.js';
import * as L from './layout.js';
import { selfCheck } from './layout.js';
import { checkPoison, poisonPayload } from './sanitizer.js';

const { B_GEN, B_TAG, BLOCK_HEADER_BYTES, BLOCK_HEADER_WORDS, CACHE_CAP, CACHE_STRIDE, GEN_MASK, HANDLE_OFFSET_MASK, HANDLE_OFFSET_SCALE, NCLASSES, STATE_LIVE, T_ALLOCS, T_FREES, TAG_CLASS_MASK, TAG_FREE_SHIFT, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_THREAD_MASK, TAG_TYPE_MASK, TAG_TYPE_SHIFT } = L;
const RAW = L.BlockType.RAW;

/** The state field of a block tag, and its value for a live block. */
const STATE_BITS = TAG_STATE_MASK << TAG_STATE_SHIFT;
const LIVE_BITS = STATE_LIVE << TAG_STATE_SHIFT;
/** Tag bits a free keeps: class, type and allocating thread (state and freeing thread are replaced). */
const KEEP_ON_FREE = ~((TAG_STATE_MASK << TAG_STATE_SHIFT) | (TAG_THREAD_MASK << TAG_FREE_SHIFT));
/** Tag bits an allocation keeps: the thread that freed the block last (for use-after-free reports). */
const FREE_THREAD_BITS = TAG_THREAD_MASK << TAG_FREE_SHIFT;
/** Largest block (in words, header included) whose payload {@link zeroPayload} clears by hand; larger ones use fill. */
const ZERO_BY_HAND_WORDS = 64;
/** Words per block of each size class. */
const CLASS_WORDS = Int32Array.from(L.SIZE_CLASSES, (bytes) => bytes >>> 2);

/**
 * Block types the public free releases, as a bit set: the raw blocks the public alloc makes and
 * SpinLock.create's lock blocks. Every other type has a lifetime of its own (a driver operation
 * ends through its driver, a fence with its last put), and freeing it by handle would leave its
 * owner pointing at a reused block.
 */
export const FREEABLE_TYPES = (1 << L.BlockType.RAW) | (1 << L.BlockType.LOCK);

/**
 * Largest payload {@link allocRaw} serves: a block it zeroes by hand (larger ones take allocLarge,
 * whose zeroPayload calls fill). Not up to the small-class table's 1 KiB: fill's branch in
 * allocRaw made it too large for V8 to inline beside the public free, and a call to it returns
 * the handle (a number wider than 31 bits) as a heap-allocated number.
 */
export const SMALL_PAYLOAD = ZERO_BY_HAND_WORDS * 4 - BLOCK_HEADER_BYTES;

/**
 * The small layout constants of the public alloc and free paths ({@link allocRaw}, {@link freeRaw})
 * as literals: tsc writes a const enum's members into the code as numbers, where a module constant
 * is a context-slot load with a hole check (4 bytecode bytes a use), and V8 counts bytecode bytes
 * against its inlining budget. (Constants wider than 16 bits stay module constants: as literals
 * they take 10 bytes.) Checked against the layout when this module loads.
 */
const enum Hot {
  TAG = 0,
  GEN = 1,
  HEADER_WORDS = 2,
  HEADER_BYTES = 8,
  CACHE_CAP = 32,
  CACHE_STRIDE = 33,
  NCLASSES = 30,
  ALLOCS = 2,
  FREES = 3,
  CLASS_MASK = 0x3f,
  TYPE_SHIFT = 6,
  TYPE_MASK = 0x3f,
  /** Tag bits of the state field, and their value for a live block. */
  STATE_BITS = 0x3000,
  LIVE_BITS = 0x1000,
  /** A raw block's type field. */
  RAW_TYPE = 1 << 6,
  /** Bit set of the types the public free releases: raw (1) and lock (2) blocks. */
  FREEABLE = (1 << 1) | (1 << 2),
}
{
  const layout: [Hot, number][] = [
    [Hot.TAG, B_TAG], [Hot.GEN, B_GEN], [Hot.HEADER_WORDS, BLOCK_HEADER_WORDS], [Hot.HEADER_BYTES, BLOCK_HEADER_BYTES],
    [Hot.CACHE_CAP, CACHE_CAP], [Hot.CACHE_STRIDE, CACHE_STRIDE], [Hot.NCLASSES, NCLASSES], [Hot.ALLOCS, T_ALLOCS], [Hot.FREES, T_FREES],
    [Hot.CLASS_MASK, TAG_CLASS_MASK], [Hot.TYPE_SHIFT, TAG_TYPE_SHIFT], [Hot.TYPE_MASK, TAG_TYPE_MASK], [Hot.STATE_BITS, STATE_BITS],
    [Hot.LIVE_BITS, LIVE_BITS], [Hot.RAW_TYPE, RAW << TAG_TYPE_SHIFT], [Hot.FREEABLE, FREEABLE_TYPES],
  ];
  // freeRaw computes the self-check byte inline: the layout's function must still be that formula.
  const selfChecks = (hw: number) => selfCheck(hw) === (((hw >>> 2) ^ 0xa5) & 0xff);
  if (layout.some(([hot, real]) => hot !== real) || ![0, 4, 1020, 4096, 1 << 28].every(selfChecks))
    throw new Error('alloc.ts: the Hot constants or the self-check byte no longer match the layout');
}

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
 * How many blocks of `blockBytes` (header included; 0 when no size class is that large) the calling
 * thread could allocate one after another right now — for a caller that needs many and would rather
 * refuse up front than carve the heap into blocks of that size and give up part way: its
 * cache of the class, the class's global free list and the heap not carved yet. Blocks of other
 * classes and other threads' caches are not counted: blocks are never split or merged, and this
 * thread cannot take another's cache. Exact while no other thread allocates or frees; a snapshot
 * otherwise. Takes no lock.
 */
export function availableBlocks(arena: Arena, blockBytes: number): number {
  const cls = sizeClassFor(blockBytes);
  if (cls < 0) return 0;
  const i32 = arena.i32;
  const cached = i32[arena.cacheBase + cls * L.CACHE_STRIDE];
  const listed = Atomics.load(i32, L.H_CLASSES + cls * L.CL_STRIDE + L.CL_COUNT);
  const uncarved = i32[L.H_HEAP_END] - Atomics.load(i32, L.H_HEAP_TOP);
  return cached + listed + Math.floor(uncarved / L.SIZE_CLASSES[cls]);
}

/**
 * Hot-path allocation (see {@link Arena.allocBlock}): pops a block of `blockBytes`' class from the
 * calling thread's cache (refilling it first when empty) and tags it live with type `type`.
 * Returns its header word index. Throws ENOMEM.
 *
 * Small on purpose, like {@link freeBlock}: V8 inlines a function of at most 460 bytecode bytes,
 * and at most 920 in all into one caller, so every byte here is one less for the caller (the public
 * alloc and free add validation, zeroing and handles; what does not fit is a call, and a handle
 * passed to a call is a boxed number). An empty cache and the sanitizer take {@link allocSlow}.
 */
export function allocBlock(arena: Arena, blockBytes: number, type: number): number {
  const cls = blockBytes <= 1024 ? SMALL_CLASS[(blockBytes + 15) >>> 4] : largeClass(arena, blockBytes);
  const i32 = arena.i32;
  const cb = arena.cacheBase + cls * CACHE_STRIDE;
  const n = i32[cb];
  if (n === 0 || arena.sanitize) return allocSlow(arena, cls, cb, blockBytes, type);
  return popLive(arena, cb, n, cls, type);
}

/**
 * The public alloc's path (see {@link Arena.alloc}) for an integer `bytes` in 1..{@link SMALL_PAYLOAD}:
 * a zeroed raw block, returned as its handle. Throws ENOMEM.
 *
 * One function with the class computed once, from the size (the zeroing does not read it back
 * from the tag), and sized so that a loop calling the public alloc and free gets both whole:
 * V8 inlines at most 920 bytecode bytes in all into one function, and what it does not inline is
 * a call, where a handle (a number wider than 31 bits) is passed as a heap-allocated number.
 */
export function allocRaw(arena: Arena, bytes: number): number {
  const cls = SMALL_CLASS[(bytes + (Hot.HEADER_BYTES + 15)) >>> 4];
  const i32 = arena.i32;
  const cb = arena.cacheBase + cls * Hot.CACHE_STRIDE;
  const n = i32[cb];
  let hw: number;
  let gen: number;
  if (n === 0 || arena.sanitize) {
    hw = allocSlow(arena, cls, cb, bytes + Hot.HEADER_BYTES, RAW);
    gen = i32[hw + Hot.GEN];
  } else {
    // popLive's run of plain writes, here rather than called (a call's arguments and its own reads
    // would cost this function's inlining budget).
    hw = i32[cb + n];
    i32[cb] = n - 1;
    i32[hw + Hot.TAG] = cls | Hot.RAW_TYPE | arena.liveTag | (i32[hw + Hot.TAG] & FREE_THREAD_BITS);
    const g = i32[hw + Hot.GEN];
    gen = (g & GEN_MASK) === GEN_MASK ? (g & ~GEN_MASK) | 1 : g + 1;
    i32[hw + Hot.GEN] = gen;
    i32[arena.slotBase + Hot.ALLOCS]++;
  }
  const end = hw + CLASS_WORDS[cls];
  // 8 bytes at a time (see zeroPayload): fill is a runtime call.
  for (let d = (hw + Hot.HEADER_WORDS) >>> 1, f64 = arena.f64, e = end >>> 1; d < e; d++) f64[d] = 0;
  // The handle from the generation in hand, not read back: V8 does not carry the header word's
  // value across the Float64Array stores above, and the reload (waiting on the store just made)
  // would sit on the chain from this allocation to the next free (see freeRaw).
  return (gen & GEN_MASK) * HANDLE_OFFSET_SCALE + (hw >>> 1);
}

/** allocBlock with an empty cache (refilled first) or in sanitize mode (the poison is checked). */
function allocSlow(arena: Arena, cls: number, cb: number, blockBytes: number, type: number): number {
  const i32 = arena.i32;
  let n = i32[cb];
  if (n === 0) n = refill(arena, cls, cb, blockBytes);
  if (arena.sanitize) checkPoison(i32, i32[cb + n], cls);
  return popLive(arena, cb, n, cls, type);
}

/**
 * Pops the top block of the calling thread's cache at word `cb` (holding `n` > 0 blocks), tags it
 * live as class `cls` and type `type` and moves its generation on; returns its header word index.
 * One run of plain writes: there is no call from the pop to the LIVE tag, so a terminated thread
 * cannot strand the block between them (worker.terminate() lands at calls, and the call to this
 * function comes before the pop).
 */
function popLive(arena: Arena, cb: number, n: number, cls: number, type: number): number {
  const i32 = arena.i32;
  const hw = i32[cb + n];
  i32[cb] = n - 1;
  i32[hw + B_TAG] = cls | (type << TAG_TYPE_SHIFT) | arena.liveTag | (i32[hw + B_TAG] & FREE_THREAD_BITS);
  // The generation's low 24 bits wrap past 0: generation 0 is never live.
  const g = i32[hw + B_GEN];
  i32[hw + B_GEN] = (g & GEN_MASK) === GEN_MASK ? (g & ~GEN_MASK) | 1 : g + 1;
  i32[arena.slotBase + T_ALLOCS]++;
  return hw;
}

/** Size class of a block larger than 1,024 bytes; throws ENOMEM when no class is that large. */
function largeClass(arena: Arena, blockBytes: number): number {
  const cls = sizeClassFor(blockBytes);
  if (cls < 0) throw Errors.noMemory(blockBytes, arena.capacity);
  return cls;
}

/**
 * Hot-path free (see {@link Arena.freeBlock}) of the live block at header word `hw`: it goes on
 * top of the calling thread's cache, poisoned in sanitize mode. Throws EBADF on a double free.
 * A full cache, the sanitizer and a double free take {@link freeSlow} (see allocBlock on size).
 */
export function freeBlock(arena: Arena, hw: number): void {
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  const cb = arena.cacheBase + (tag & TAG_CLASS_MASK) * CACHE_STRIDE;
  const n = i32[cb];
  if ((tag & STATE_BITS) !== LIVE_BITS || n === CACHE_CAP || arena.sanitize) {
    freeSlow(arena, hw);
    return;
  }
  // From the state change to the push there is no call: a terminated thread cannot leave a block
  // marked cached in no cache.
  i32[hw + B_TAG] = (tag & KEEP_ON_FREE) | arena.freedTag;
  // The generation moves on free too, so a view that remembers (block, generation) can tell a
  // freed block from a live one with a single compare (Fence's hot-path check relies on it). No
  // helper function here: a call between the tag and the push would be a place to be terminated.
  const g = i32[hw + B_GEN];
  i32[hw + B_GEN] = (g & GEN_MASK) === GEN_MASK ? (g & ~GEN_MASK) | 1 : g + 1;
  i32[cb + n + 1] = hw;
  i32[cb] = n + 1;
  i32[arena.slotBase + T_FREES]++;
}

/**
 * The public free's path (see {@link Arena.free}): frees the raw or lock block that `ref` is the
 * live handle of and returns true; returns false, changing nothing, for everything else (not a
 * handle, stale, freed, another type, a full cache, sanitize mode), which the caller takes out of
 * line to the full checks and their errors.
 *
 * The handle is checked without taking it apart into numbers it would have to carry into a call:
 * its low bits give the header word, and the block's own handle, rebuilt from the header's
 * generation, must equal it exactly (so a stale generation, a fraction, a negative or an unsafe
 * number all fail one compare). The header's self-check byte refuses a forged handle into a
 * payload. Plain reads and writes, as in freeBlock, and no call from the state change to the push.
 */
export function freeRaw(arena: Arena, ref: number): boolean {
  // typeof first: & would call a valueOf.
  const hw = typeof ref === 'number' ? (ref & HANDLE_OFFSET_MASK) * 2 : 0;
  if (hw < arena.heapStartW || hw >= arena.heapEndW || (hw & 3) !== 0 || arena.sanitize) return false;
  const i32 = arena.i32;
  // Holding a lock word: the checked path looks for it in this block (hooks.ts heldWords).
  if (i32[arena.slotBase + heldWords.countWord] !== 0) return false;
  const tag = i32[hw + Hot.TAG];
  const g = i32[hw + Hot.GEN];
  const cls = tag & Hot.CLASS_MASK;
  if (
    (tag & Hot.STATE_BITS) !== Hot.LIVE_BITS ||
    ((1 << ((tag >>> Hot.TYPE_SHIFT) & Hot.TYPE_MASK)) & Hot.FREEABLE) === 0 ||
    // The self-check byte (layout's selfCheck), computed here: a call would cost inlining budget.
    g >>> 24 !== (((hw >>> 2) ^ 0xa5) & 0xff) ||
    (g & GEN_MASK) * HANDLE_OFFSET_SCALE + (hw >>> 1) !== ref ||
    cls >= Hot.NCLASSES
  )
    return false;
  // The cache's word from the class of this thread's last public free, behind a branch, rather
  // than computed from the tag: a computed address waits for the tag's load, which waits for the
  // handle's decoding, which waits for the allocation that made it (a float multiply and two
  // conversions), and the next allocation of the class waits for this push in turn. A predicted
  // branch lets the CPU go on with the cache's loads and stores meanwhile; a free of another class
  // than the last one's takes the computed address (and a mispredicted branch).
  let cb = arena.rawFreeCache;
  if (cls !== arena.rawFreeClass) {
    cb = arena.cacheBase + cls * Hot.CACHE_STRIDE;
    arena.rawFreeClass = cls;
    arena.rawFreeCache = cb;
  }
  const n = i32[cb];
  if (n === Hot.CACHE_CAP) return false;
  i32[hw + Hot.TAG] = (tag & KEEP_ON_FREE) | arena.freedTag;
  i32[hw + Hot.GEN] = (g & GEN_MASK) === GEN_MASK ? (g & ~GEN_MASK) | 1 : g + 1;
  i32[cb + n + 1] = hw;
  i32[cb] = n + 1;
  i32[arena.slotBase + Hot.FREES]++;
  return true;
}

/** freeBlock's every case: a double free throws, a full cache is flushed first, the sanitizer poisons. */
function freeSlow(arena: Arena, hw: number): void {
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  if ((tag & STATE_BITS) !== LIVE_BITS) throw Errors.badHandle('block', hw, 'double free');
  const cls = tag & TAG_CLASS_MASK;
  const next = (tag & KEEP_ON_FREE) | arena.freedTag;
  // Room first (flush is a call): from the state change to the push there must be no call.
  const cb = arena.cacheBase + cls * CACHE_STRIDE;
  let n = i32[cb];
  if (n === CACHE_CAP) n = flush(arena, cls, cb, CACHE_CAP >>> 1);
  if (!pushFreed(arena, hw, cb, n, tag, next)) throw Errors.badHandle('block', hw, 'double free');
  // The poison goes in after the commit, never before: a reaper finishing a dead thread's free or
  // release takes a block still live at the generation it recorded as not freed yet, and reads its
  // payload (a fence's flags and ops: src/fence/release.ts). Poisoned first, a thread terminated
  // at the Atomics call below or at pushFreed's entry left a live block of poison, whose "flags"
  // asked for an ops.release of ops id 0x5afedead. Terminated here instead, it leaves its cache's
  // top block partly poisoned: the reaper lays that poison (flushSlotCaches).
  if (arena.sanitize) {
    poisonPayload(i32, hw, cls);
    Atomics.add(i32, L.H_FREE_SERIAL, 1);
  }
}

/**
 * The commit of freeSlow: marks the live block at header word `hw` (tag `tag`) freed (tag `next`)
 * and pushes it on the cache at word `cb` holding `n` blocks; false when another thread freed it
 * first (nothing changed). One run with no call from the state change to the push (the call to
 * this function comes before it). Sanitize mode changes the state with a compare-exchange, so of
 * two threads racing to free one block exactly one wins; it is the last Atomics call before the
 * push: terminate() can land at an Atomics call, not after it.
 *
 * freeBlock and freeRaw write the same run inline rather than call this: in the hot paths a call
 * and its arguments would cost the inlining budget (see allocBlock), and they never take the
 * compare-exchange (sanitize mode goes to freeSlow).
 */
function pushFreed(arena: Arena, hw: number, cb: number, n: number, tag: number, next: number): boolean {
  const i32 = arena.i32;
  if (!arena.sanitize) i32[hw + B_TAG] = next;
  else if (Atomics.compareExchange(i32, hw + B_TAG, tag, next) !== tag) return false;
  const g = i32[hw + B_GEN];
  i32[hw + B_GEN] = (g & GEN_MASK) === GEN_MASK ? (g & ~GEN_MASK) | 1 : g + 1;
  i32[cb + n + 1] = hw;
  i32[cb] = n + 1;
  i32[arena.slotBase + T_FREES]++;
  return true;
}

/**
 * Zeroes the payload of the block at header word `hw` (the public {@link Arena.alloc} hands out
 * zeroed memory). Small payloads are cleared 8 bytes at a time through the arena's Float64Array
 * view (every payload is 8-byte aligned and a multiple of 8 bytes long, and +0 is all zero bits):
 * TypedArray fill is a runtime call that costs more than clearing a 64-byte block by hand.
 */
export function zeroPayload(arena: Arena, hw: number): void {
  const end = hw + CLASS_WORDS[arena.i32[hw + B_TAG] & TAG_CLASS_MASK];
  if (end - hw > ZERO_BY_HAND_WORDS) arena.i32.fill(0, hw + L.BLOCK_HEADER_WORDS, end);
  else for (let d = (hw + L.BLOCK_HEADER_WORDS) >>> 1, f64 = arena.f64, e = end >>> 1; d < e; d++) f64[d] = 0;
}

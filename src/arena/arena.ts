/**
 * The arena: one SharedArrayBuffer holding a header, a thread table, an fd table and a heap of
 * size-classed blocks. Every thread attaches its own `Arena` view and gets a thread slot.
 *
 * Allocator: blocks are carved from a bump pointer and never split or merged; freed blocks go to
 * the freeing thread's cache (LIFO, plain reads and writes: only the owner touches it), overflow
 * moves half a cache to the size class's global free list (under the class's futex word).
 * A freed block therefore comes back to the very next allocation of its size on that thread —
 * exactly what makes a borrowed lock in a freed operation dangle into the next operation.
 */
import { threadId, type Worker } from 'node:worker_threads';
import { Errors, FenceError, UseAfterFreeError, type UseAfterFreeReport } from '../errors.js';
import { checkArena, arenaStats, threadField, walkArena, type ArenaStats, type CheckReport } from './check.js';
import { ACQ_TIMEOUT, futexLock, futexReleaseDead, futexUnlock } from '../locks/futex.js';
import * as L from './layout.js';
import * as K from '../locks/layout.js';
import { detachRefusal, runReapHooks } from './hooks.js';
import { selfCheck } from './layout.js';

const { B_GEN, B_TAG, GEN_MASK, HANDLE_OFFSET_MASK, HANDLE_OFFSET_SCALE, NO_THREAD, STATE_CACHED, STATE_FREE, STATE_LIVE, TAG_ALLOC_SHIFT, TAG_CLASS_MASK, TAG_FREE_SHIFT, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_THREAD_MASK, TAG_TYPE_MASK, TAG_TYPE_SHIFT } = L;

export interface ArenaOptions {
  /** Total bytes of the SharedArrayBuffer (default 32 MiB). */
  bytes?: number;
  /** Default lock algorithm for fence and SpinLock words (default `'futex'`). */
  lockKind?: K.LockKind;
  /** `true`: stale accesses throw UseAfterFreeError; `'count'`: they are recorded and the access goes on. */
  sanitize?: boolean | 'count';
  /** Thread slots (default 64, at most 510). */
  maxThreads?: number;
  /** Entries of the sync-file fd table (default 4096). */
  maxFds?: number;
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
export function sizeClassFor(blockBytes: number): number {
  if (blockBytes <= 1024) return SMALL_CLASS[(blockBytes + 15) >>> 4];
  for (let c = 0; c < L.NCLASSES; c++) if (L.SIZE_CLASSES[c] >= blockBytes) return c;
  return -1;
}


const instances = new Map<number, Arena>();

export class Arena {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  /** This thread's slot. */
  readonly slot: number;
  /** Owner id written into lock words: slot + 1. */
  readonly me: number;
  /** Word index of this thread's slot. */
  readonly slotBase: number;
  readonly sanitize: boolean;
  /** Sanitizer records instead of throwing. */
  readonly counting: boolean;
  readonly lockKindId: number;
  readonly maxThreads: number;
  readonly capacity: number;
  /** Stale accesses this thread recorded in counting mode (the arena-wide count is {@link uafCount}). */
  readonly uafReports: UseAfterFreeReport[] = [];
  /** Fence inline lock words this thread holds (they are not robust-listed; see acquireInline). */
  inlineLocksHeld = 0;
  private readonly cacheBase: number;
  /** Word index of the first block of the heap. */
  readonly heapStartW: number;
  private detached = false;

  private constructor(buffer: SharedArrayBuffer, slot: number) {
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.i64 = new BigInt64Array(buffer);
    const i32 = this.i32;
    this.slot = slot;
    this.me = slot + 1;
    this.slotBase = i32[L.H_THREAD_TABLE] + slot * i32[L.H_THREAD_STRIDE];
    this.cacheBase = this.slotBase + L.T_CACHE;
    this.sanitize = (i32[L.H_FLAGS] & L.ARENA_SANITIZE) !== 0;
    this.counting = (i32[L.H_FLAGS] & L.ARENA_COUNT) !== 0;
    this.lockKindId = i32[L.H_LOCK_KIND];
    this.maxThreads = i32[L.H_MAX_THREADS];
    this.heapStartW = i32[L.H_HEAP_START] >>> 2;
    this.capacity = i32[L.H_HEAP_END] - i32[L.H_HEAP_START];
  }

  /**
   * Creates an arena and registers the calling thread in slot 0.
   * Throws FenceError EINVAL for impossible options.
   */
  static create(options: ArenaOptions = {}): Arena {
    const bytes = options.bytes ?? 32 * 1024 * 1024;
    const maxThreads = options.maxThreads ?? 64;
    const maxFds = options.maxFds ?? 4096;
    const kind = K.LOCK_KINDS.indexOf(options.lockKind ?? 'futex');
    if (kind < 0) throw Errors.invalid(`unknown lock kind ${String(options.lockKind)} (one of ${K.LOCK_KINDS.join(', ')})`);
    if (!Number.isInteger(maxThreads) || maxThreads < 1 || maxThreads > L.MAX_THREADS_LIMIT)
      throw Errors.invalid(`maxThreads must be an integer in 1..${L.MAX_THREADS_LIMIT}, got ${maxThreads}`);
    if (!Number.isInteger(maxFds) || maxFds < 1 || maxFds > 1 << 20)
      throw Errors.invalid(`maxFds must be an integer in 1..${1 << 20}, got ${maxFds}`);
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes > L.MAX_ARENA_BYTES)
      throw Errors.invalid(`bytes must be a positive integer ≤ ${L.MAX_ARENA_BYTES}, got ${bytes}`);
    const tableW = 256;
    const fdW = tableW + maxThreads * L.THREAD_STRIDE;
    const heapStart = Math.ceil(((fdW + maxFds * L.TABLE_ENTRY_WORDS) * 4) / 64) * 64;
    const size = Math.floor(bytes / 64) * 64;
    if (heapStart + 4096 > size)
      throw Errors.invalid(`bytes ${bytes} too small for ${maxThreads} threads and ${maxFds} fds (need > ${heapStart + 4096})`);
    const buffer = new SharedArrayBuffer(size);
    const i32 = new Int32Array(buffer);
    i32[L.H_MAGIC] = L.MAGIC;
    i32[L.H_VERSION] = L.LAYOUT_VERSION;
    i32[L.H_BYTES] = size;
    i32[L.H_LOCK_KIND] = kind;
    const sanitize = options.sanitize ?? false;
    i32[L.H_FLAGS] = (sanitize ? L.ARENA_SANITIZE : 0) | (sanitize === 'count' ? L.ARENA_COUNT : 0);
    i32[L.H_MAX_THREADS] = maxThreads;
    i32[L.H_HEAP_START] = heapStart;
    i32[L.H_HEAP_TOP] = heapStart;
    i32[L.H_HEAP_END] = size;
    i32[L.H_THREAD_TABLE] = tableW;
    i32[L.H_THREAD_STRIDE] = L.THREAD_STRIDE;
    i32[L.H_TABLE] = fdW;
    i32[L.H_TABLE_ENTRIES] = maxFds;
    i32[L.H_ARENA_ID] = (Math.random() * 0x7fffffff) | 0 || 1;
    return Arena.register(buffer);
  }

  /**
   * Attaches to an arena created in any thread and registers the calling thread (once per thread:
   * attaching again returns the same view). Throws EINVAL for a buffer that is not a fencelab arena
   * or has another layout version, EMFILE when the thread table is full.
   */
  static attach(buffer: SharedArrayBuffer): Arena {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < 4096)
      throw Errors.invalid('not a fencelab arena: expected a SharedArrayBuffer from Arena.create');
    const i32 = new Int32Array(buffer);
    if (i32[L.H_MAGIC] !== L.MAGIC) throw Errors.invalid('not a fencelab arena (bad magic)');
    if (i32[L.H_VERSION] !== L.LAYOUT_VERSION)
      throw Errors.invalid(`arena layout version ${i32[L.H_VERSION]}, this fencelab reads version ${L.LAYOUT_VERSION}`);
    if (i32[L.H_BYTES] !== buffer.byteLength) throw Errors.invalid('arena header size does not match the buffer');
    const known = instances.get(i32[L.H_ARENA_ID]);
    if (known && !known.detached) return known;
    return Arena.register(buffer);
  }

  private static register(buffer: SharedArrayBuffer): Arena {
    const i32 = new Int32Array(buffer);
    const max = i32[L.H_MAX_THREADS];
    const table = i32[L.H_THREAD_TABLE];
    const stride = i32[L.H_THREAD_STRIDE];
    for (let s = 0; s < max; s++) {
      const base = table + s * stride;
      if (Atomics.compareExchange(i32, base + L.T_STATE, L.SLOT_FREE, L.SLOT_RESERVED) !== L.SLOT_FREE) continue;
      // A reaped slot comes back zeroed except for what the reaper folded away; clear the rest.
      i32.fill(0, base + 1, base + stride);
      i32[base + L.T_THREAD_ID] = threadId;
      i32[base + L.T_SERIAL] = Atomics.add(i32, L.H_THREAD_SERIAL, 1) + 1;
      Atomics.store(i32, base + L.T_STATE, L.SLOT_LIVE);
      const arena = new Arena(buffer, s);
      instances.set(i32[L.H_ARENA_ID], arena);
      return arena;
    }
    throw Errors.tooManyThreads(max);
  }

  /** Default lock algorithm of this arena. */
  get lockKind(): K.LockKind {
    return K.LOCK_KINDS[this.lockKindId];
  }

  /** Stale accesses recorded by the sanitizer across all threads (counting mode). */
  get uafCount(): number {
    return Atomics.load(this.i32, L.H_UAF_COUNT);
  }

  /* ───────────── handles ───────────── */

  /** Handle (offset + generation) of the live block whose header is at word `hw`. */
  handleOf(hw: number): number {
    return (this.i32[hw + B_GEN] & GEN_MASK) * HANDLE_OFFSET_SCALE + (hw >>> 1);
  }

  /**
   * Validates a handle and returns its block's header word index.
   * Throws EBADF (not a handle, out of bounds, misaligned, freed, stale generation) or EINVAL
   * (a live block of another type). `type` -1 accepts any type.
   */
  resolve(handle: number, type: number, what: string): number {
    if (typeof handle !== 'number' || !Number.isSafeInteger(handle) || handle <= 0)
      throw Errors.badHandle(what, handle, 'not a handle');
    const hw = (handle & HANDLE_OFFSET_MASK) * 2;
    if (hw < this.heapStartW || hw >= Atomics.load(this.i32, L.H_HEAP_TOP) >>> 2)
      throw Errors.badHandle(what, handle, 'out of the arena heap');
    if ((hw & 3) !== 0) throw Errors.badHandle(what, handle, 'misaligned');
    const i32 = this.i32;
    const tag = i32[hw + B_TAG];
    const gen = i32[hw + B_GEN];
    if (gen >>> 24 !== selfCheck(hw) || (tag & TAG_CLASS_MASK) >= L.NCLASSES)
      throw Errors.badHandle(what, handle, 'does not point at a block');
    if (((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) !== STATE_LIVE)
      throw Errors.badHandle(what, handle, 'block was freed');
    if ((gen & GEN_MASK) !== Math.floor(handle / HANDLE_OFFSET_SCALE))
      throw Errors.badHandle(what, handle, 'stale generation (the block was freed and reused)');
    const t = (tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK;
    if (type >= 0 && t !== type)
      throw Errors.invalid(`handle ${handle} is a ${L.BLOCK_TYPE_NAMES[t] ?? t} block, not a ${what}`);
    return hw;
  }

  /** Byte size of the payload of the live block at header word `hw`. */
  payloadBytes(hw: number): number {
    return L.SIZE_CLASSES[this.i32[hw + B_TAG] & TAG_CLASS_MASK] - L.BLOCK_HEADER_BYTES;
  }

  /** Generation (low 24 bits) of the block at header word `hw`. */
  generationAt(hw: number): number {
    return this.i32[hw + B_GEN] & GEN_MASK;
  }

  /** True when the block at `hw` is live with generation `gen`. */
  isLive(hw: number, gen: number): boolean {
    const i32 = this.i32;
    return (
      ((i32[hw + B_TAG] >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) === STATE_LIVE && (i32[hw + B_GEN] & GEN_MASK) === gen
    );
  }

  /* ───────────── allocation ───────────── */

  /**
   * Allocates a zeroed raw block of at least `bytes` payload bytes (a driver's operation struct).
   * Threads: any attached thread. Returns its handle. Throws EINVAL for a bad size, ENOMEM when
   * the arena is exhausted (nothing changed).
   */
  alloc(bytes: number, type: number = L.BlockType.RAW): number {
    if (!Number.isInteger(bytes) || bytes <= 0) throw Errors.invalid(`alloc size must be a positive integer, got ${bytes}`);
    if (!Number.isInteger(type) || type <= 0 || type >= L.NTYPES) throw Errors.invalid(`bad block type ${type}`);
    const hw = this.allocBlock(bytes + L.BLOCK_HEADER_BYTES, type);
    this.i32.fill(0, hw + L.BLOCK_HEADER_WORDS, hw + (this.payloadBytes(hw) >>> 2) + L.BLOCK_HEADER_WORDS);
    return this.handleOf(hw);
  }

  /**
   * Frees a raw, operation or lock block by handle. Throws EBADF for a stale, freed or forged
   * handle, EINVAL for a block that has a lifetime of its own (a fence is released by its last
   * put(), a sync file by close()): nothing changes either way.
   */
  free(ref: number): void {
    const hw = this.resolve(ref, -1, 'block');
    const type = (this.i32[hw + B_TAG] >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK;
    if (type !== L.BlockType.RAW && type !== L.BlockType.OPERATION && type !== L.BlockType.LOCK)
      throw Errors.invalid(`arena.free: handle ${ref} is a ${L.BLOCK_TYPE_NAMES[type] ?? type} block, released through its own API (put, close)`);
    this.freeBlock(hw);
  }

  /**
   * Hot-path allocation: returns the header word index of a live block of `blockBytes` (header
   * included) and type `type`. The payload is not cleared (poison in sanitize mode is checked and
   * cleared). Throws ENOMEM.
   */
  allocBlock(blockBytes: number, type: number): number {
    const cls = blockBytes <= 1024 ? SMALL_CLASS[(blockBytes + 15) >>> 4] : sizeClassFor(blockBytes);
    if (cls < 0) throw Errors.noMemory(blockBytes, this.capacity);
    const i32 = this.i32;
    const cb = this.cacheBase + cls * L.CACHE_STRIDE;
    let n = i32[cb];
    if (n === 0) n = this.refill(cls, cb, blockBytes);
    const hw = i32[cb + n];
    if (this.sanitize) this.checkPoison(hw, cls);
    // No call from the pop to the LIVE tag: a terminated thread cannot strand the block between.
    i32[cb] = n - 1;
    const tag = i32[hw + B_TAG];
    i32[hw + B_TAG] =
      cls |
      (type << TAG_TYPE_SHIFT) |
      (STATE_LIVE << TAG_STATE_SHIFT) |
      (this.slot << TAG_ALLOC_SHIFT) |
      (tag & (TAG_THREAD_MASK << TAG_FREE_SHIFT));
    const g = i32[hw + B_GEN];
    i32[hw + B_GEN] = (((g & GEN_MASK) + 1) & GEN_MASK || 1) | (g & ~GEN_MASK);
    const sb = this.slotBase;
    i32[sb + L.T_ALLOCS]++;
    return hw;
  }

  /** Hot-path free of the live block at header word `hw` (already validated by the caller). */
  freeBlock(hw: number): void {
    const i32 = this.i32;
    const tag = i32[hw + B_TAG];
    if (((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) !== STATE_LIVE)
      throw Errors.badHandle('block', hw, 'double free');
    const cls = tag & TAG_CLASS_MASK;
    const next =
      (tag & ~((TAG_STATE_MASK << TAG_STATE_SHIFT) | (TAG_THREAD_MASK << TAG_FREE_SHIFT))) |
      (STATE_CACHED << TAG_STATE_SHIFT) |
      (this.slot << TAG_FREE_SHIFT);
    // Room first (flush is a call): from the state change to the push there must be no call, or a
    // terminated thread could leave a block marked cached in no cache.
    const cb = this.cacheBase + cls * L.CACHE_STRIDE;
    let n = i32[cb];
    if (n === L.CACHE_CAP) n = this.flush(cls, cb, L.CACHE_CAP >>> 1);
    if (this.sanitize) {
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
    const sb = this.slotBase;
    i32[sb + L.T_FREES]++;
  }

  private checkPoison(hw: number, cls: number): void {
    const i32 = this.i32;
    const end = hw + (L.SIZE_CLASSES[cls] >>> 2);
    // Word 0 of a free payload is the free-list link; the rest must still be poison.
    for (let w = hw + L.BLOCK_HEADER_WORDS + 1; w < end; w++) {
      if (i32[w] !== L.POISON && i32[hw + B_GEN] & GEN_MASK) {
        Atomics.add(i32, L.H_PROBLEMS, 1);
        break;
      }
    }
  }

  /**
   * Moves up to CACHE_CAP/2 blocks of class `cls` into this thread's cache (or carves one fresh
   * block); returns the new count.
   *
   * Termination safety: worker.terminate() lands only at calls and loop back-edges, so every step
   * that moves blocks between a list and a cache is a run of plain writes with no call or loop in
   * it. Loops only write where nobody reads yet (cache cells past the count, links of blocks we
   * own) or normalise states, which the reaper's flush of a dead thread's cache redoes.
   */
  private refill(cls: number, cb: number, blockBytes: number): number {
    const i32 = this.i32;
    const cl = L.H_CLASSES + cls * L.CL_STRIDE;
    if (Atomics.load(i32, cl + L.CL_COUNT) > 0) {
      this.lockClass(cl);
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
        if (Atomics.load(i32, cl + L.CL_COUNT) > 0) return this.refill(cls, cb, blockBytes);
        throw Errors.noMemory(blockBytes - L.BLOCK_HEADER_BYTES, this.capacity);
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
   * Moves the `k` most recent blocks of the cache at word `cb` (this thread's, or a reaped slot's)
   * to the global free list of class `cls`; returns the cache's new count. The caller pushes the
   * block being freed after this, so LIFO reuse of the very last free is kept.
   */
  private flush(cls: number, cb: number, k: number): number {
    const i32 = this.i32;
    const cl = L.H_CLASSES + cls * L.CL_STRIDE;
    const n = i32[cb];
    this.lockClass(cl);
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

  private lockClass(cl: number): void {
    if (futexLock(this.i32, cl + L.CL_LOCK, this.me, Infinity) === ACQ_TIMEOUT)
      throw Errors.deadlock('allocator class lock taken recursively');
  }

  /* ───────────── sanitizer ───────────── */

  /**
   * Sanitizer check at an access: the block at `hw` must be live with generation `gen`.
   * Returns true when it is. On a stale access: throws UseAfterFreeError, or in counting mode
   * records it (arena-wide count and this thread's report list) and returns false.
   */
  checkAccess(hw: number, gen: number, access: string, fence: number): boolean {
    const i32 = this.i32;
    const tag = i32[hw + B_TAG];
    const state = (tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK;
    const cur = i32[hw + B_GEN] & GEN_MASK;
    if (state === STATE_LIVE && cur === gen) return true;
    const live = state === STATE_LIVE;
    const report: UseAfterFreeReport = {
      access,
      fence,
      block: hw * 4,
      takenGeneration: gen,
      currentGeneration: cur,
      freedBy: threadField(tag >>> TAG_FREE_SHIFT),
      nowType: live ? (L.BLOCK_TYPE_NAMES[(tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK] ?? 'unknown') : 'free',
      nowOwner: live ? threadField(tag >>> TAG_ALLOC_SHIFT) : -1,
      thread: this.slot,
    };
    Atomics.add(i32, L.H_UAF_COUNT, 1);
    if (!this.counting) throw new UseAfterFreeError(report);
    if (this.uafReports.length < 1000) this.uafReports.push(report);
    return false;
  }

  /* ───────────── statistics and consistency ───────────── */

  /** Word index of thread slot `s`. */
  slotWord(s: number): number {
    return this.i32[L.H_THREAD_TABLE] + s * this.i32[L.H_THREAD_STRIDE];
  }

  /** Capacity, bytes used and reserved, live blocks by type, allocations and frees (walks the heap). */
  stats(): ArenaStats {
    return arenaStats(this);
  }

  /** Calls `fn` for every carved block, in address order. Racy while other threads allocate. */
  walk(fn: (hw: number, size: number, state: number, type: number) => void): string | null {
    return walkArena(this, fn);
  }

  /**
   * Walks the whole arena: every block header, every free list, every thread cache and the
   * allocation counters must agree. Live blocks are reported as leaks (the stub fence excepted).
   * Threads: call when no other thread is allocating (the walk is not atomic).
   */
  check(): CheckReport {
    return checkArena(this);
  }

  /* ───────────── thread slots ───────────── */

  /** Thread slots whose occupant has Node threadId `tid` (live ones). */
  slotsOfThread(tid: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.maxThreads; s++) {
      const b = this.slotWord(s);
      if (Atomics.load(this.i32, b + L.T_STATE) === L.SLOT_LIVE && this.i32[b + L.T_THREAD_ID] === tid) out.push(s);
    }
    return out;
  }

  /**
   * Reaps `worker`'s thread slots when it exits, whatever the cause (`terminate()`, an uncaught
   * error, out of memory, a normal exit without {@link detach}): its locks are released and marked
   * owner-died, and the hooks of the higher layers (fds, exported fences, inbox, ledger) run.
   * The worker's threadId is recorded now: Node resets it to -1 by the time 'exit' fires.
   * Threads: the thread that created the worker (any attached thread that receives its 'exit').
   * Returns nothing; watching the same worker twice reaps once. Throws EINVAL for a non-worker.
   */
  watch(worker: Worker): void {
    if (worker === null || typeof worker !== 'object' || typeof worker.once !== 'function' || !Number.isInteger(worker.threadId))
      throw Errors.invalid('watch needs a Worker');
    const tid = worker.threadId;
    if (tid < 0) throw Errors.invalid('watch: the worker has already exited');
    worker.once('exit', () => {
      if (this.detached) return;
      for (const s of this.slotsOfThread(tid)) this.reapSlot(s);
    });
  }

  /**
   * Reaps a dead thread's slot: releases every lock it held (marked owner-died), runs the higher
   * layers' hooks (fds, fences, callbacks), returns its cached blocks to the free lists and folds
   * its statistics into the header. Threads: any live thread except the dead one.
   */
  reapSlot(s: number): void {
    const i32 = this.i32;
    const b = this.slotWord(s);
    if (s === this.slot) throw Errors.invalid('a thread cannot reap its own slot');
    if (Atomics.compareExchange(i32, b + L.T_STATE, L.SLOT_LIVE, L.SLOT_DEAD) !== L.SLOT_LIVE) return;
    const dead = s + 1;
    // The allocator's own class locks; the layers above release theirs in their reap hooks.
    for (let cls = 0; cls < L.NCLASSES; cls++) futexReleaseDead(i32, L.H_CLASSES + cls * L.CL_STRIDE + L.CL_LOCK, dead);
    runReapHooks(this, s);
    this.releaseSlot(s);
  }

  /** Flushes slot `s`'s caches to the free lists, folds its counters away and frees the slot. */
  private releaseSlot(s: number): void {
    const i32 = this.i32;
    const b = this.slotWord(s);
    for (let cls = 0; cls < L.NCLASSES; cls++) {
      const cb = b + L.T_CACHE + cls * L.CACHE_STRIDE;
      if (i32[cb] > 0) this.flush(cls, cb, i32[cb]);
    }
    Atomics.add(i32, L.H_REAPED_ALLOCS, i32[b + L.T_ALLOCS]);
    Atomics.add(i32, L.H_REAPED_FREES, i32[b + L.T_FREES]);
    i32.fill(0, b + 1, b + L.T_CACHE);
    Atomics.store(i32, b + L.T_STATE, L.SLOT_FREE);
  }

  /**
   * Leaves the arena: this thread's caches go back to the free lists and its slot is freed.
   * Throws EBUSY while this thread still holds locks. The view is unusable afterwards.
   */
  detach(): void {
    if (this.detached) return;
    const refusal = detachRefusal(this);
    if (refusal !== null) throw Errors.busy(refusal);
    this.detached = true;
    instances.delete(this.i32[L.H_ARENA_ID]);
    runReapHooks(this, this.slot);
    this.releaseSlot(this.slot);
  }

  /** True once {@link detach} ran. */
  get isDetached(): boolean {
    return this.detached;
  }
}

export { FenceError };

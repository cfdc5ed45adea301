/**
 * The arena: one SharedArrayBuffer holding a header, a thread table, an fd table and a heap of
 * size-classed blocks. Every thread attaches its own `Arena` view and gets a thread slot.
 *
 * This class is the arena's public face; the work is done by one module per concept, as free
 * functions over the view: the allocator (./alloc.ts), handles (./handles.ts), thread slots and the
 * reaper (./threads.ts), the header's setup at create and checks at attach (./setup.ts), the
 * sanitizer (./sanitizer.ts), statistics and the consistency check (./check.ts).
 */
import type { Worker } from 'node:worker_threads';
import { describeValue, Errors, type UseAfterFreeReport } from '../errors.js';
import * as K from '../locks/layout.js';
import { allocBlock, allocRaw, freeBlock, freeRaw, SMALL_PAYLOAD } from './alloc.js';
import { allocLarge, freeChecked } from './allocchecked.js';
import { arenaStats, checkArena, walkArena, type ArenaStats, type CheckReport } from './check.js';
import { handleOf, isLive, payloadBytes, resolve } from './handles.js';
import { detachRefusal, runReapHooks } from './hooks.js';
import * as L from './layout.js';
import { makeDetached, notArenaError } from './detached.js';
import { checkAccess } from './sanitizer.js';
import { adoptKeepArg, attachedWords, createBuffer } from './setup.js';
import type { ArenaDump } from '../trace/dump.js';
import { describeArena, Tracer } from '../trace/tracer.js';
import { adoptRawBlock, claimSlot, forgetView, ownSlot, reapSlot, releaseSlot, rememberView, settleRawBlocks, slotsOfThread, slotWord, viewOf, watchWorker } from './threads.js';

/** BlockType.RAW, as a module constant (a shorter load than the namespace's property). */
const RAW = L.BlockType.RAW;

/**
 * `arena` as an Arena (an argument of a public entry), else EINVAL naming `where` (EBADF for a
 * detached view): checked before anything is read through it, so a wrong value is a typed error.
 */
export function arenaArg(arena: unknown, where: string): Arena {
  if (!Arena.isView(arena)) throw notArenaError(arena, where); // EBADF for a detached view; out of line: Fence.create inlines this
  return arena;
}

/** {@link Arena.create}'s options; every one has a default. */
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

/**
 * The shared memory every fencelab object lives in: a SharedArrayBuffer with a header, a thread
 * table, an fd table and a heap of blocks (fences, locks, callbacks, …) that a lock-free allocator
 * really frees and reuses. Each thread works through its own view: {@link Arena.create} in one
 * thread, {@link Arena.attach} with the same buffer in every other; handles (plain integers) name
 * blocks across threads.
 *
 * Threads: a view belongs to the thread that made it; never pass a view, pass `arena.buffer`.
 */
export class Arena {
  /** The shared memory: post it to other threads, which call {@link Arena.attach} with it. */
  readonly buffer: SharedArrayBuffer;
  /** @internal The buffer as 32-bit words (the layers' structs). */
  readonly i32: Int32Array;
  /** @internal The buffer as 64-bit words (timestamps, 64-bit seqnos). */
  readonly i64: BigInt64Array;
  /** @internal This thread's slot. */
  readonly slot: number;
  /** @internal Owner id written into lock words: slot + 1. */
  readonly me: number;
  /** @internal Word index of this thread's slot. */
  readonly slotBase: number;
  /** True when the arena was created with a sanitizer (`sanitize: true` or `'count'`). */
  readonly sanitize: boolean;
  /** True when the sanitizer records stale accesses instead of throwing (`sanitize: 'count'`). */
  readonly counting: boolean;
  /** @internal Default lock algorithm's id (index into LOCK_KINDS); {@link lockKind} names it. */
  readonly lockKindId: number;
  /** Thread slots: at most this many threads are attached at once. */
  readonly maxThreads: number;
  /** Bytes of the heap (the buffer less its header, thread table and fd table). */
  readonly capacity: number;
  /** Stale accesses this view recorded in counting mode (the arena-wide count is {@link uafCount}). */
  readonly uafReports: UseAfterFreeReport[] = [];
  /** @internal This thread's reference ledger block as last checked (src/fence/ledger.ts): its payload word, 0 for none. */
  ledgerSeen = 0;
  /** @internal The entries {@link ledgerSeen} holds. */
  ledgerSeenCap = 0;
  /**
   * @internal Word index of the sanitizer area (the lock-order checker's graph, src/locks/lockdep.ts): the
   * SANITIZER_AREA_BYTES just below the heap of a sanitizing arena; 0 without sanitize.
   */
  readonly sanitizerArea: number;
  /** @internal Word index of this thread's first allocator cache (the allocator's, not for the layers above). */
  readonly cacheBase: number;
  /** @internal Word index of the first block of the heap. */
  readonly heapStartW: number;
  /** @internal Word index just past the heap (the buffer's end): no block header lies at or beyond it. */
  readonly heapEndW: number;
  /** @internal The buffer as 8-byte words, for clearing payloads (the allocator's) and the trace header's times. */
  readonly f64: Float64Array;
  /** @internal Tag bits of a block this thread allocated: state live, allocating thread (the allocator's). */
  readonly liveTag: number;
  /** @internal Tag bits of a block this thread freed into its cache: state cached, freeing thread (the allocator's). */
  readonly freedTag: number;
  /** @internal The public free's guess of its cache (freeRaw, ./alloc.ts): the class of this view's last raw free (-1: none). */
  rawFreeClass = -1;
  /** @internal The word of this thread's cache of class {@link rawFreeClass} (`cacheBase + class * CACHE_STRIDE`). */
  rawFreeCache = 0;
  /**
   * @internal True once {@link detach} ran: Fence and SpinLock views made on this view read it in
   * their checks (their fast paths do not go through the view's methods) and refuse with EBADF.
   */
  detached = false;
  private tracer: Tracer | undefined;

  /**
   * @internal Whether `x` is an attached Arena view (arenaArg's test). The brand test comes first:
   * it never throws and runs no Proxy trap, where `instanceof` throws a TypeError for a revoked
   * Proxy; `instanceof` then walks the prototype of a real view only, which a detached view no
   * longer has. Inlined into Fence.create with arenaArg (test/inline-budget.test.ts).
   */
  static isView(x: unknown): x is Arena {
    return typeof x === 'object' && x !== null && #view in x && x instanceof Arena;
  }

  /** The brand {@link isView} tests: only the constructor gives it, so a forged object lacks it. */
  #view(): void {}

  private constructor(buffer: SharedArrayBuffer, slot: number) {
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.i64 = new BigInt64Array(buffer);
    const i32 = this.i32;
    this.slot = slot;
    this.me = slot + 1;
    this.slotBase = slotWord(i32, slot);
    this.cacheBase = this.slotBase + L.T_CACHE;
    this.sanitize = (i32[L.H_FLAGS] & L.ARENA_SANITIZE) !== 0;
    this.counting = (i32[L.H_FLAGS] & L.ARENA_COUNT) !== 0;
    this.lockKindId = i32[L.H_LOCK_KIND];
    this.maxThreads = i32[L.H_MAX_THREADS];
    this.heapStartW = i32[L.H_HEAP_START] >>> 2;
    this.heapEndW = i32[L.H_HEAP_END] >>> 2;
    this.f64 = new Float64Array(buffer);
    this.liveTag = (L.STATE_LIVE << L.TAG_STATE_SHIFT) | (slot << L.TAG_ALLOC_SHIFT);
    this.freedTag = (L.STATE_CACHED << L.TAG_STATE_SHIFT) | (slot << L.TAG_FREE_SHIFT);
    this.capacity = i32[L.H_HEAP_END] - i32[L.H_HEAP_START];
    this.sanitizerArea = this.sanitize ? this.heapStartW - (L.SANITIZER_AREA_BYTES >>> 2) : 0;
  }

  /** Creates an arena and registers the calling thread in slot 0. Throws FenceError EINVAL for impossible options. */
  static create(options?: ArenaOptions): Arena {
    const buffer = createBuffer(options);
    return Arena.register(buffer, claimSlot(new Int32Array(buffer)));
  }

  /**
   * Attaches to an arena created in any thread and registers the calling thread (once per thread:
   * attaching again returns the same view while it is referenced, and a new view of the same slot
   * once it was collected). Throws EINVAL for a buffer that is not a fencelab arena or has another
   * layout version, EMFILE when the thread table is full.
   */
  static attach(buffer: SharedArrayBuffer): Arena {
    const i32 = attachedWords(buffer);
    const known = viewOf(i32[L.H_ARENA_ID]);
    if (known !== undefined) return known;
    // A view collected without detaching left its slot live: the thread takes it back, so
    // attaching per task (and dropping the view) does not use up the thread table.
    const own = ownSlot(i32);
    return Arena.register(buffer, own >= 0 ? own : claimSlot(i32));
  }

  private static register(buffer: SharedArrayBuffer, slot: number): Arena {
    const arena = new Arena(buffer, slot);
    rememberView(arena.i32[L.H_ARENA_ID], arena);
    return arena;
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

  /** @internal Handle (offset + generation) of the live block whose header is at word `hw`. */
  handleOf(hw: number): number {
    return handleOf(this.i32, hw);
  }

  /**
   * @internal Validates a handle and returns its block's header word index.
   * Throws EBADF (not a handle, out of bounds, misaligned, freed, stale generation) or EINVAL
   * (a live block of another type). `type` -1 accepts any type.
   */
  resolve(handle: number, type: number, what: string): number {
    return resolve(this, handle, type, what);
  }

  /** @internal Byte size of the payload of the live block at header word `hw`. */
  payloadBytes(hw: number): number {
    return payloadBytes(this.i32, hw);
  }

  /** @internal Generation (low 24 bits) of the block at header word `hw`. */
  generationAt(hw: number): number {
    return this.i32[hw + L.B_GEN] & L.GEN_MASK;
  }

  /** @internal True when the block at `hw` is live with generation `gen`. */
  isLive(hw: number, gen: number): boolean {
    return isLive(this.i32, hw, gen);
  }

  /* ───────────── allocation ───────────── */

  /**
   * Allocates a zeroed raw block of at least `bytes` payload bytes (a driver's operation struct).
   * `type`, if given, must be BlockType.RAW: typed blocks are made by their own API.
   * Threads: any attached thread. Returns its handle. Throws EINVAL for a bad size or a type other
   * than RAW, ENOMEM when the arena is exhausted (nothing changed).
   */
  alloc(bytes: number, type: number = RAW): number {
    // Small raw blocks inline (allocRaw); large ones and every check's message are out of line.
    return type === RAW && Number.isInteger(bytes) && bytes > 0 && bytes <= SMALL_PAYLOAD ? allocRaw(this, bytes) : allocLarge(this, bytes, type);
  }

  /**
   * Frees a raw or lock block by handle. Throws EBADF for a stale, freed or forged handle, EINVAL
   * for a block that has a lifetime of its own (a fence is released by its last put(), a sync file
   * by close(), a driver operation by its driver), EBUSY for a block holding a lock word the
   * calling thread holds (a SpinLock, a fence's borrowed lock): nothing changes either way.
   */
  free(ref: number): void {
    // The common case inline (freeRaw); anything it declines gets every check, out of line.
    if (!freeRaw(this, ref)) freeChecked(this, ref);
  }

  /**
   * Hands a raw block (from {@link alloc}) over. A raw block belongs to the thread that allocated
   * it: when that thread dies (see {@link watch}) the reaper frees it, so a worker's scratch
   * memory does not outlive it. A thread that goes on using a block another thread allocated
   * adopts it first: `adopt(ref)` makes it the calling thread's (its death frees it then), and
   * `adopt(ref, { keep: true })` makes it the arena's (no death frees it: free it explicitly).
   * A thread that detaches leaves its raw blocks to the arena. Threads: any attached thread.
   * Returns nothing. Throws EBADF (stale or freed handle), EINVAL (not a raw block; options not an
   * object, with a key other than `keep`, or `keep` not a boolean), before anything changes.
   */
  adopt(ref: number, options?: { keep?: boolean }): void {
    const keep = adoptKeepArg(options);
    const hw = resolve(this, ref, L.BlockType.RAW, 'raw block');
    if (!adoptRawBlock(this, hw, keep)) throw Errors.badHandle('raw block', ref, 'freed or handed over while being adopted');
  }

  /**
   * @internal Hot-path allocation: returns the header word index of a live block of `blockBytes` (header
   * included) and type `type`. The payload is not cleared (poison in sanitize mode is checked and
   * cleared). Threads: any attached thread, through its own view. Throws ENOMEM.
   */
  allocBlock(blockBytes: number, type: number): number {
    return allocBlock(this, blockBytes, type);
  }

  /**
   * @internal Hot-path free of the live block at header word `hw` (already validated by the caller).
   * Threads: any attached thread, through its own view. Throws EBADF on a double free.
   */
  freeBlock(hw: number): void {
    freeBlock(this, hw);
  }

  /* ───────────── sanitizer ───────────── */

  /**
   * @internal Sanitizer check at an access: the block at `hw` must be live with generation `gen`.
   * Returns true when it is. On a stale access: throws UseAfterFreeError, or in counting mode
   * records it (arena-wide count and this view's report list) and returns false.
   */
  checkAccess(hw: number, gen: number, access: string, fence: number): boolean {
    return checkAccess(this, hw, gen, access, fence);
  }

  /* ───────────── statistics and consistency ───────────── */

  /** @internal Word index of thread slot `s`. */
  slotWord(s: number): number {
    return slotWord(this.i32, s);
  }

  /** Capacity, bytes used and reserved, live blocks by type, allocations and frees (walks the heap). */
  stats(): ArenaStats {
    return arenaStats(this);
  }

  /** @internal Calls `fn` for every carved block, in address order. Racy while other threads allocate. */
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

  /** @internal Thread slots whose occupant has Node threadId `tid` (live ones). */
  slotsOfThread(tid: number): number[] {
    return slotsOfThread(this.i32, tid);
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
    watchWorker(this, worker);
  }

  /**
   * @internal Reaps a dead thread's slot: releases every lock it held (marked owner-died), runs the higher
   * layers' hooks (fds, fences, callbacks), returns its cached blocks to the free lists and folds
   * its statistics into the header. Threads: any live thread except the dead one.
   * Returns nothing; a slot already reaped is left alone. Throws EINVAL for the caller's own slot.
   */
  reapSlot(s: number): void {
    reapSlot(this, s);
  }

  /**
   * Leaves the arena: this thread's caches go back to the free lists and its slot is freed.
   * Throws EBUSY while this thread still holds locks or is inside a fence callback or release
   * (nothing changed). Afterwards the view's methods, every entry given it, and every Fence and
   * SpinLock view made on it throw EBADF (detach itself does nothing again).
   */
  detach(): void {
    if (this.detached) return;
    const refusal = detachRefusal(this);
    if (refusal !== null) throw Errors.busy(refusal);
    this.detached = true;
    forgetView(this.i32[L.H_ARENA_ID], this);
    runReapHooks(this, this.slot);
    settleRawBlocks(this, this.slot, false);
    releaseSlot(this, this.slot);
    makeDetached(this, Arena.prototype);
  }

  /* ───────────── observability ───────────── */

  /**
   * The trace recorder of this arena as seen from this thread: `start()`, `stop()`, `export()`
   * (Chrome trace-event JSON for Perfetto), `nameThread()`. Off until started.
   */
  get trace(): Tracer {
    return (this.tracer ??= Tracer.make(this));
  }

  /**
   * A snapshot of everything live (sync_debug style): fences with state, error, references, lock
   * mode and holder, waiters and pending callbacks, creator; timelines and their points; held locks
   * and their owners; sync-file fds; driver operations; threads and what each is blocked on.
   * Threads: any attached thread. Locking: takes none (it can describe a hung arena; while other
   * threads run, what it sees may be torn). `reason` is recorded in the dump. Throws EINVAL (a
   * reason that is no string: the dump's readers, renderDump and assertDump, would refuse it).
   */
  describe(reason?: string): ArenaDump {
    if (reason !== undefined && typeof reason !== 'string') throw Errors.invalid(`describe: reason must be a string, got ${describeValue(reason)}`);
    return describeArena(this, reason);
  }

  /** True once {@link detach} ran. */
  get isDetached(): boolean {
    return this.detached;
  }
}


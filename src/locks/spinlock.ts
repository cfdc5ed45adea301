/**
 * SpinLock: a lock word in the arena, either in its own block (`create`) or inside another block
 * (`at`: an operation lending its lock). Rebuildable in any thread from numbers alone.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { allocBlock, zeroPayload } from '../arena/alloc.js';
import { describeValue, Errors } from '../errors.js';
import { withHeld } from './scoped.js';
import { detachedError } from '../arena/detached.js';
import { lockdepAcquired, lockdepCheck, lockdepReleased, wordClass } from './lockdep.js';
import { ACQ_OWNER_DIED, ACQ_TIMEOUT, acquireWord, lockKindId, releaseWord, tryAcquireWord, wordOwner } from './lockword.js';

const LOCK_BLOCK_BYTES = 8; // word 0: the lock, word 1: its algorithm

/**
 * A robust lock word in the arena (kernel spinlock_t, with pthread's robust-mutex recovery): its
 * own block ({@link SpinLock.create}) or a word inside a raw block ({@link SpinLock.at}, a struct
 * that lends its lock to fences). The word holds its owner's thread slot: unlocking a lock the
 * caller does not hold throws EPERM, and a holder that dies is reaped — the next locker gets the
 * lock with {@link SpinLock.ownerDied} set. Share it with `lock.ref` and {@link SpinLock.fromRef}.
 *
 * Threads: any attached thread, through a view made in that thread.
 */
export class SpinLock {
  /** Payload bytes of a lock's own block. */
  static readonly SIZE = LOCK_BLOCK_BYTES;
  /** SpinLocks and borrowed fence locks one thread may hold at once (see {@link lock}). */
  static readonly MAX_HELD = L.MAX_HELD_LOCKS;
  /** The arena the lock word lives in (this thread's view). */
  readonly arena: Arena;
  /** Handle of the block holding the word. */
  readonly ref: number;
  /** Byte offset of the word in the block's payload. */
  readonly byteOffset: number;
  /** @internal Algorithm id (index into LOCK_KINDS); {@link kind} names it. */
  readonly kindId: number;
  /** @internal Int32 index of the lock word. */
  readonly index: number;
  /** True when the last successful lock()/tryLock() took over from a holder that died (EOWNERDEAD). */
  ownerDied = false;
  private readonly hw: number;
  private readonly gen: number;

  private constructor(arena: Arena, ref: number, hw: number, byteOffset: number, kindId: number) {
    this.arena = arena;
    this.ref = ref;
    this.hw = hw;
    this.gen = arena.generationAt(hw);
    this.byteOffset = byteOffset;
    this.kindId = kindId;
    this.index = hw + A.BLOCK_HEADER_WORDS + (byteOffset >>> 2);
  }

  /** Allocates a lock in its own block. Throws EINVAL (bad kind), ENOMEM. */
  static create(arena: Arena, kind?: L.LockKind): SpinLock {
    arenaArg(arena, 'SpinLock.create');
    const k = lockKindId(kind, arena.lockKindId);
    // A typed block, made here and nowhere else (arena.alloc makes raw blocks only).
    const hw = allocBlock(arena, LOCK_BLOCK_BYTES + A.BLOCK_HEADER_BYTES, A.BlockType.LOCK);
    zeroPayload(arena, hw);
    const ref = arena.handleOf(hw);
    arena.i32[hw + A.BLOCK_HEADER_WORDS + 1] = k;
    return new SpinLock(arena, ref, hw, 0, k);
  }

  /** Rebuilds a lock made by {@link create} from its handle (any thread). Throws EBADF/EINVAL. */
  static fromRef(arena: Arena, ref: number): SpinLock {
    arenaArg(arena, 'SpinLock.fromRef');
    const hw = arena.resolve(ref, A.BlockType.LOCK, 'lock');
    return new SpinLock(arena, ref, hw, 0, arena.i32[hw + A.BLOCK_HEADER_WORDS + 1]);
  }

  /**
   * A lock word inside a raw or operation block at `byteOffset` (4-byte aligned, inside the payload).
   * Throws EBADF (bad handle) or EINVAL (offset, type, kind).
   */
  static at(arena: Arena, ref: number, byteOffset = 0, kind?: L.LockKind): SpinLock {
    arenaArg(arena, 'SpinLock.at');
    const hw = arena.resolve(ref, -1, 'block');
    const type = (arena.i32[hw + A.B_TAG] >>> A.TAG_TYPE_SHIFT) & A.TAG_TYPE_MASK;
    if (type !== A.BlockType.RAW && type !== A.BlockType.OPERATION && type !== A.BlockType.LOCK)
      throw Errors.invalid(`SpinLock.at needs a raw or operation block, got a ${A.BLOCK_TYPE_NAMES[type]} block`);
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0 || byteOffset + 4 > arena.payloadBytes(hw))
      throw Errors.invalid(`lock offset ${describeValue(byteOffset)} is not a 4-byte aligned offset inside the ${arena.payloadBytes(hw)}-byte block`);
    return new SpinLock(arena, ref, hw, byteOffset, lockKindId(kind, arena.lockKindId));
  }

  /** The algorithm's name. */
  get kind(): L.LockKind {
    return L.LOCK_KINDS[this.kindId];
  }

  /** Thread slot of the holder, or -1. */
  get owner(): number {
    return wordOwner(this.arena.i32, this.index);
  }

  /**
   * Throws unless the view's block is still the one it was made on (the generation moves on free
   * as well as on allocation): EBADF for a freed lock, or in a sanitizing arena UseAfterFreeError
   * (counting mode records the access and returns). Threads: the view's.
   */
  private checkLive(): void {
    if ((this.arena.i32[this.hw + A.B_GEN] & A.GEN_MASK) !== this.gen || this.arena.detached) this.stale();
  }

  /** {@link checkLive}'s failure, out of line: throws EBADF, or reports to the sanitizer. */
  private stale(): void {
    if (this.arena.detached) throw detachedError('SpinLock view');
    if (!this.arena.sanitize || this.arena.checkAccess(this.hw, this.gen, 'lock', 0))
      throw Errors.badHandle('lock', this.ref, 'the lock was freed (its block may hold another owner\'s data now)');
  }

  /**
   * Acquires the lock. Locking: not re-entrant (EDEADLK if the caller holds it). A thread holds at
   * most {@link SpinLock.MAX_HELD} SpinLocks and borrowed fence locks at once, released in any
   * order: the next lock() throws ENOLCK and changes nothing, because the reaper recovers a dead
   * holder's words from that bounded list, and a word it could not find would stay locked forever.
   * Threads: any; on the main thread a contended lock blocks the event loop.
   * Returns true when acquired, false when `timeoutMs` passed first (a ticket lock's waiter leaves
   * the queue on time). Sets {@link ownerDied}. Throws EINVAL (bad timeout), EDEADLK, ENOLCK, EBUSY
   * (255 ticket waiters), and without a timeout ENOTRECOVERABLE when the word is in a state no
   * lock can be in (its owner is no thread of the arena, a ticket vanished): it never waits forever
   * on a corrupted or reused word; EBADF once the lock was freed. In a sanitizing arena, LockOrderError (EDEADLK, nothing taken)
   * when taking it under the locks held inverts an order some thread used (src/locks/lockdep.ts).
   */
  lock(timeoutMs?: number): boolean {
    if (this.arena.sanitize) return this.lockChecked(timeoutMs);
    this.checkLive();
    const r = acquireWord(this.arena, this.index, this.kindId, timeoutMs, L.MAX_HELD_LOCKS);
    this.ownerDied = r === ACQ_OWNER_DIED;
    return r !== ACQ_TIMEOUT;
  }

  /**
   * lock() in a sanitizing arena: the block must still be live, and the lock-order checker sees
   * the acquisition first (LockOrderError, EDEADLK, nothing taken) and lists the lock as held.
   * The lock's class is its own word (src/locks/lockdep.ts).
   */
  private lockChecked(timeoutMs: number | undefined): boolean {
    this.checkLive();
    const key = lockdepCheck(this.arena, wordClass(this.index, this.gen), this.index, 0);
    const r = acquireWord(this.arena, this.index, this.kindId, timeoutMs, L.MAX_HELD_LOCKS);
    this.ownerDied = r === ACQ_OWNER_DIED;
    if (r === ACQ_TIMEOUT) return false;
    lockdepAcquired(this.arena, key, this.index, 0);
    return true;
  }

  /**
   * Acquires the lock if it is free; returns whether it did. Throws ENOLCK like {@link lock} when
   * the calling thread already holds {@link SpinLock.MAX_HELD} locks, EBADF once the lock was freed.
   */
  tryLock(): boolean {
    this.checkLive();
    const r = tryAcquireWord(this.arena, this.index, this.kindId, L.MAX_HELD_LOCKS);
    this.ownerDied = r === ACQ_OWNER_DIED;
    if (r === ACQ_TIMEOUT) return false;
    // A try never waits, so it orders nothing; the lock held orders what is taken under it.
    if (this.arena.sanitize) lockdepAcquired(this.arena, wordClass(this.index, this.gen), this.index, 0);
    return true;
  }

  /** Releases the lock. Throws EPERM when the calling thread does not hold it, EBADF once the lock was freed. */
  unlock(): void {
    this.checkLive();
    releaseWord(this.arena, this.index, this.kindId);
    if (this.arena.sanitize) lockdepReleased(this.arena, this.index);
  }

  /** Runs `fn` with the lock held; rethrows its error after unlocking. Throws EINVAL (fn not a function: before locking). */
  withLock<T>(fn: () => T): T {
    if (typeof fn !== 'function') throw Errors.invalid(`SpinLock.withLock needs a function, got ${describeValue(fn)}`);
    return withHeld(this, fn);
  }

  /**
   * Frees the block holding the lock (for {@link at}, the whole raw/operation block). A fence still
   * borrowing it now dangles — the borrowed-lock use-after-free. Throws EBUSY while the calling
   * thread holds it, EBADF once freed (this view or another).
   */
  free(): void {
    this.checkLive();
    if (this.owner === this.arena.slot) throw Errors.busy('free of a lock the calling thread holds');
    this.arena.free(this.ref);
  }
}

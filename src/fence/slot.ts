/**
 * FenceSlot: a fence pointer in shared memory that threads replace and read — the kernel's
 * `struct dma_fence __rcu *` read with dma_fence_get_rcu_safe. The slot holds one reference on the
 * fence it names; `set` swaps in a new fence and puts the old one, `get` hands out a new reference.
 *
 * Why a lock and not the kernel's lock-free loop: the kernel re-reads the pointer after
 * kref_get_unless_zero and relies on type-stable (SLAB_TYPESAFE_BY_RCU) memory, so a fence freed
 * between the read and the get is still a fence. Arena blocks are reused as anything, so here the
 * read of S_FENCE and the reference taken on it happen under the slot's small robust lock word: the
 * slot's own reference keeps the fence alive for that moment, and a thread killed inside it cannot
 * wedge the slot (the reaper releases the word). The put of the old fence happens after the lock.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { BlockView } from '../arena/blockview.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { fenceTryGet } from './core.js';
import { Fence, fenceView, putFence } from './fence.js';
import { isFenceView } from './fencebase.js';
import { holdsFenceLock } from './held.js';
import { putUnderLock } from './release.js';

const { S_LOCK, S_FENCE, SLOT_WORDS } = L;
const { BLOCK_HEADER_WORDS } = A;

/** A published fence pointer that any thread may replace or read. */
export class FenceSlot extends BlockView {
  private constructor(arena: Arena, sw: number) {
    super(arena, sw);
  }

  /**
   * Creates an empty slot in the arena.
   * Threads: any attached thread. Returns the slot; it lives until {@link destroy}. Throws ENOMEM.
   */
  static create(arena: Arena): FenceSlot {
    arenaArg(arena, 'FenceSlot.create');
    const sw = arena.allocBlock(A.BLOCK_HEADER_BYTES + SLOT_WORDS * 4, A.BlockType.FENCE_SLOT) + BLOCK_HEADER_WORDS;
    arena.i32[sw + S_LOCK] = 0;
    arena.i32[sw + S_FENCE] = 0;
    return new FenceSlot(arena, sw);
  }

  /**
   * A view of the slot behind `handle` (from {@link FenceSlot.handle}, posted by another thread).
   * Returns the view (no ownership: whoever created the slot destroys it). Throws EBADF (stale,
   * freed or truncated handle) or EINVAL (a block of another type).
   */
  static fromHandle(arena: Arena, handle: number): FenceSlot {
    arenaArg(arena, 'FenceSlot.fromHandle');
    return new FenceSlot(arena, arena.resolve(handle, A.BlockType.FENCE_SLOT, 'fence slot') + BLOCK_HEADER_WORDS);
  }

  /** Validates the view; returns the payload word index. Throws EBADF once the slot was destroyed. */
  private v(): number {
    return this.live('fence slot', 'the slot was destroyed');
  }

  /**
   * Publishes `fence` (or empties the slot with null): takes a reference of the slot's own on it and
   * puts the fence the slot held before (kernel rcu_assign_pointer + dma_fence_put of the old one).
   * Locking: takes the slot's lock word briefly; must not be called from the old fence's release.
   * Threads: any, concurrently with {@link get} and other `set`s. Returns nothing. Throws EINVAL
   * (not a Fence, another arena), EBADF (a released fence, a destroyed slot).
   */
  set(fence: Fence | null): void {
    const sw = this.v();
    const arena = this.arena;
    const i32 = arena.i32;
    let fw = 0;
    if (fence !== null) {
      if (!isFenceView(fence)) throw Errors.invalid('FenceSlot.set needs a Fence or null');
      if (fence.arena.buffer !== arena.buffer) throw Errors.invalid('FenceSlot.set: the fence belongs to another arena');
      fw = arena.resolve(fence.handle, A.BlockType.FENCE, 'fence') + BLOCK_HEADER_WORDS;
      if (!fenceTryGet(i32, fw)) throw Errors.badHandle('fence', fence.handle, 'the fence was released (last reference put)');
    }
    acquireWord(arena, sw + S_LOCK, arena.lockKindId);
    const old = i32[sw + S_FENCE];
    // The holder of the old fence's lock may drop the slot's reference only when it is not the
    // last: dropped here, before the slot changes, or refused with nothing changed.
    let dropped = false;
    if (old !== 0 && holdsFenceLock(arena, old)) {
      try {
        putUnderLock(i32, old, 0);
        dropped = true;
      } catch (e) {
        releaseWord(arena, sw + S_LOCK, arena.lockKindId);
        if (fw !== 0) putFence(arena, fw);
        throw e;
      }
    }
    i32[sw + S_FENCE] = fw;
    releaseWord(arena, sw + S_LOCK, arena.lockKindId);
    // The old fence's release may run here (its ops, callbacks): never under the slot's lock.
    if (old !== 0 && !dropped) putFence(arena, old);
  }

  /**
   * The fence the slot holds, with a new reference the caller must put, or null when it is empty
   * (kernel dma_fence_get_rcu_safe).
   * Locking: takes the slot's lock word briefly. Threads: any, concurrently with {@link set}: the
   * result is the fence published before or after a racing set, never a released one.
   * Throws EBADF once the slot was destroyed.
   */
  get(): Fence | null {
    const sw = this.v();
    const arena = this.arena;
    const i32 = arena.i32;
    acquireWord(arena, sw + S_LOCK, arena.lockKindId);
    const fw = i32[sw + S_FENCE];
    // The slot's own reference keeps fw alive while we hold the lock: the get cannot meet a 0.
    const got = fw !== 0 && fenceTryGet(i32, fw);
    releaseWord(arena, sw + S_LOCK, arena.lockKindId);
    return got ? fenceView(arena, fw) : null;
  }

  /**
   * Puts the fence the slot holds and frees the slot; views of it elsewhere then throw EBADF.
   * Threads: any, once, when no other thread uses the slot any more. Throws EBADF when already
   * destroyed.
   */
  destroy(): void {
    const sw = this.v();
    const arena = this.arena;
    const i32 = arena.i32;
    acquireWord(arena, sw + S_LOCK, arena.lockKindId);
    const old = i32[sw + S_FENCE];
    i32[sw + S_FENCE] = 0;
    releaseWord(arena, sw + S_LOCK, arena.lockKindId);
    arena.freeBlock(sw - BLOCK_HEADER_WORDS);
    if (old !== 0) putFence(arena, old);
  }
}

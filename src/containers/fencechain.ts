/**
 * FenceChain, the public face of fence chains (kernel dma-fence-chain.c): creating a link,
 * walking and finding seqnos. The link struct, its ops, garbage collection and release are in
 * chain.ts.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { maxBlocks } from '../arena/handles.js';
import { describeValue, Errors, isInstance } from '../errors.js';
import { contextAlloc, fenceGet, fenceInit, fenceReserve, seqnoOf } from '../fence/core.js';
import { type Fence, fenceView } from '../fence/fence.js';
import { isFenceView } from '../fence/fencebase.js';
import * as FL from '../fence/layout.js';
import { ledgerForgetRef } from '../fence/ledger.js';
import { putFence } from '../fence/release.js';
import { clearSignalerAt } from '../fence/signaler.js';
import { CHAIN_BLOCK, chainOps, chainWalk, containedFw, isChainFw, prevSeqnoOf } from './chain.js';
import { fenceArg, flushDeferred, ownFenceArg } from './common.js';
import * as L from './layout.js';
import { FenceMemory } from './memory.js';

const { C_PREV, C_PREV_LOCK, C_FENCE, C_PREV_SEQNO_LO, C_PREV_SEQNO_HI, K_WORK } = L;
const { F_CONTEXT } = FL;

/** Fence chains (kernel dma-fence-chain.c). All methods are static; links are plain {@link Fence}s. */
export class FenceChain {
  private constructor() {}

  /**
   * Creates a chain link (kernel dma_fence_chain_init) and takes over the caller's references on
   * `prev` and `fence`. When `prev` is a link and `seqno` is later than its seqno, the link reuses
   * prev's context (and remembers prev's seqno for findSeqno); otherwise it gets a new context and
   * the seqno `max(prev.seqno, seqno)` when prev is a link. Seqnos are 64-bit.
   * Locking: none. Threads: any attached thread (others that use the chain import fencelab).
   * Returns the link with one reference. Throws EINVAL (`fence` is a chain, not Fences — `prev`
   * is a Fence or null, undefined is refused —, other arena, seqno not an integer in 0..2^53-1), EBADF (released fence), ENOMEM; on a throw no
   * reference was taken over.
   */
  static create(arena: Arena, prev: Fence | null, fence: Fence, seqno: number): Fence {
    arenaArg(arena, 'FenceChain.create');
    const mem = FenceChain.alloc(arena);
    try {
      return FenceChain.init(mem, prev, fence, seqno);
    } catch (e) {
      mem.free();
      throw e;
    }
  }

  /**
   * Reserves the memory of one chain link (kernel dma_fence_chain_alloc), so that {@link init}
   * later cannot fail for lack of memory.
   * Threads: any attached thread. Returns the memory; pass it to {@link init} once, or free it
   * with `mem.free()` (kernel dma_fence_chain_free). Throws ENOMEM.
   */
  static alloc(arena: Arena): FenceMemory {
    arenaArg(arena, 'FenceChain.alloc');
    return FenceMemory.make(arena, 'chain', 1, fenceReserve(arena, CHAIN_BLOCK), 0);
  }

  /**
   * Builds a link in memory from {@link alloc} (kernel dma_fence_chain_init): what {@link create}
   * does, without allocating. Takes over the caller's references on `prev` and `fence`.
   * Threads: any attached thread. Returns the link with one reference. Throws what create throws
   * but ENOMEM, plus EINVAL (memory of an array or another arena) and EBADF (memory already used
   * or freed); on a throw nothing was taken over and the memory is still the caller's.
   */
  static init(mem: FenceMemory, prev: Fence | null, fence: Fence, seqno: number): Fence {
    if (!isInstance(mem, FenceMemory)) throw Errors.invalid('FenceChain.init needs memory from FenceChain.alloc');
    const arena = mem.arena;
    const i32 = arena.i32;
    const cfw = fenceArg(arena, fence, 'fence');
    if (isChainFw(i32, cfw)) throw Errors.invalid('the fence of a chain link cannot be a chain (FenceChain.create/init)');
    // Only null means no prev (undefined is a caller's mistake, like an absent argument).
    const pfw = prev === null ? 0 : fenceArg(arena, prev, 'prev (a Fence, or null for none)');
    if (!Number.isSafeInteger(seqno) || seqno < 0)
      throw Errors.invalid(`chain seqno must be an integer in 0..2^53-1, got ${describeValue(seqno)}`);
    const prevIsChain = pfw !== 0 && isChainFw(i32, pfw);
    let context: number;
    let prevSeqno = 0;
    if (prevIsChain && seqno > seqnoOf(i32, pfw)) {
      context = i32[pfw + F_CONTEXT];
      prevSeqno = seqnoOf(i32, pfw);
    } else {
      context = contextAlloc(arena, 1);
      // Always a valid seqno: never behind the chain it extends.
      if (prevIsChain) seqno = Math.max(seqnoOf(i32, pfw), seqno);
    }
    const [fw] = mem.take(arena, 'chain');
    // The references become the link's: records of them in the caller's ledger go first (see FenceArray).
    ledgerForgetRef(arena, cfw);
    if (pfw !== 0) ledgerForgetRef(arena, pfw);
    fenceInit(arena, fw, { opsId: chainOps.id, context, seqno, seqno64: true, lockIdx: 0, lenderHw: 0 });
    clearSignalerAt(i32, fw); // its links signal it, not a thread
    i32[fw + C_PREV] = pfw;
    i32[fw + C_PREV_LOCK] = 0;
    i32[fw + C_FENCE] = cfw;
    i32[fw + C_PREV_SEQNO_LO] = prevSeqno | 0;
    i32[fw + C_PREV_SEQNO_HI] = Math.floor(prevSeqno / 0x100000000);
    i32[fw + K_WORK] = 0; // not queued
    return fenceView(arena, fw);
  }

  /**
   * True when `f` is a chain link (kernel dma_fence_is_chain); false for anything that is no Fence.
   * Threads: any. Throws EBADF on a released fence.
   */
  static isChain(f: Fence): boolean {
    return isFenceView(f) && isChainFw(f.arena.i32, fenceArg(f.arena, f, 'fence'));
  }

  /**
   * The fence a link holds, or `f` itself when it is no link (kernel dma_fence_chain_contained);
   * a view without a reference of its own, valid while `f` is held.
   */
  static contained(f: Fence): Fence {
    const fw = ownFenceArg(f, 'fence');
    const arena = f.arena;
    const c = containedFw(arena, fw);
    return c === fw ? f : fenceView(arena, c);
  }

  /**
   * One step down the chain (kernel dma_fence_chain_walk): consumes the caller's reference on `f`
   * and returns the next unsignaled predecessor with a new reference, or null at the end (also
   * when `f` is no link). Garbage-collects signaled links on the way.
   * Threads: any, concurrently with other walkers and signalers. Throws EBADF on a released fence.
   */
  static walk(f: Fence): Fence | null {
    const fw = ownFenceArg(f, 'fence');
    const arena = f.arena;
    ledgerForgetRef(arena, fw); // the walk consumes the caller's reference (see FenceArray)
    const next = chainWalk(arena, fw);
    return next === 0 ? null : fenceView(arena, next);
  }

  /**
   * Finds the link that signals `seqno` (kernel dma_fence_chain_find_seqno), walking (and
   * garbage-collecting) from `chain` down. `seqno` 0 → `chain` itself. Returns a new reference the
   * caller puts, or null when everything up to `seqno` already signaled.
   * Throws EINVAL when `chain` is not a link or `chain.seqno < seqno` (not reached yet), or seqno
   * is not an integer in 0..2^53-1; EBADF on a released fence.
   * Threads: any, while other threads signal and walk the same chain.
   */
  static findSeqno(chain: Fence, seqno: number): Fence | null {
    const fw = ownFenceArg(chain, 'chain');
    const arena = chain.arena;
    const i32 = arena.i32;
    if (!Number.isSafeInteger(seqno) || seqno < 0)
      throw Errors.invalid(`findSeqno: seqno must be an integer in 0..2^53-1, got ${describeValue(seqno)}`);
    flushDeferred(arena);
    if (seqno === 0) return chain.get();
    if (!isChainFw(i32, fw)) throw Errors.invalid('findSeqno: not a fence chain');
    if (seqnoOf(i32, fw) < seqno) throw Errors.invalid(`findSeqno: seqno ${seqno} is later than the chain's ${seqnoOf(i32, fw)}`);
    const context = i32[fw + F_CONTEXT];
    fenceGet(i32, fw);
    let f = fw;
    let hops = maxBlocks(arena);
    while (f !== 0) {
      if (i32[f + F_CONTEXT] !== context || !isChainFw(i32, f) || prevSeqnoOf(i32, f) < seqno) break;
      if (hops-- === 0) {
        putFence(arena, f);
        throw Errors.corruptArena('a fence chain does not end');
      }
      f = chainWalk(arena, f);
    }
    return f === 0 ? null : fenceView(arena, f);
  }
}

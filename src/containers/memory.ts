/**
 * Memory reserved for a container fence ahead of time (kernel dma_fence_array_alloc,
 * dma_fence_chain_alloc): a path that must not fail — a signaling path, a job's run callback —
 * allocates first, where ENOMEM can still be handled, and initialises later with
 * FenceArray.init / FenceChain.init, which allocate nothing.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import { Errors } from '../errors.js';

/** What FenceArray.alloc / FenceChain.alloc hand out: blocks reserved for one container fence. */
export class FenceMemory {
  /** The arena the blocks are reserved in. */
  readonly arena: Arena;
  /** Which constructor it is for. */
  readonly kind: 'array' | 'chain';
  /** Arrays: how many children it has room for (exactly that many are needed); chains: 1. */
  readonly count: number;
  private fw: number;
  private sw: number;

  /** Not public (one built by hand would skip its factory's checks): use {@link FenceArray.alloc} / {@link FenceChain.alloc}. */
  private constructor(arena: Arena, kind: 'array' | 'chain', count: number, fw: number, sw: number) {
    this.arena = arena;
    this.kind = kind;
    this.count = count;
    this.fw = fw;
    this.sw = sw;
  }

  /** @internal Memory of `kind` over the reserved fence payload `fw` and slots payload `sw` (or 0). */
  static make(arena: Arena, kind: 'array' | 'chain', count: number, fw: number, sw: number): FenceMemory {
    return new FenceMemory(arena, kind, count, fw, sw);
  }

  /** True until it is initialised or freed. */
  get available(): boolean {
    return this.fw !== 0;
  }

  /**
   * @internal Hands the reserved blocks to an init of `kind` (once): [fence payload word, slots
   * payload word or 0]. Throws EINVAL (another kind, another arena) or EBADF (used or freed).
   */
  take(arena: Arena, kind: 'array' | 'chain'): [number, number] {
    if (this.kind !== kind) throw Errors.invalid(`memory from ${this.kind === 'array' ? 'FenceArray' : 'FenceChain'}.alloc cannot make a ${kind}`);
    if (arena.buffer !== this.arena.buffer) throw Errors.invalid('the memory belongs to another arena');
    if (this.fw === 0) throw Errors.badHandle('fence memory', 0, 'already initialised or freed');
    const out: [number, number] = [this.fw, this.sw];
    this.fw = 0;
    this.sw = 0;
    return out;
  }

  /**
   * Frees memory that will not be initialised (kernel kfree / dma_fence_chain_free of an unused
   * allocation). Threads: any attached thread. Throws EBADF when already initialised or freed.
   */
  free(): void {
    if (this.fw === 0) throw Errors.badHandle('fence memory', 0, 'already initialised or freed');
    const { fw, sw } = this;
    this.fw = 0;
    this.sw = 0;
    if (sw !== 0) this.arena.freeBlock(sw - A.BLOCK_HEADER_WORDS);
    this.arena.freeBlock(fw - A.BLOCK_HEADER_WORDS);
  }
}

/**
 * BlockView: the base of the object views over one arena block that any thread may rebuild from a
 * handle (`Driver`, `FenceSlot`). A view remembers the block's generation when it is made, so a
 * view kept past the block's free is told so instead of reaching the block's next owner.
 */
import { Errors } from '../errors.js';
import type { Arena } from './arena.js';
import { BLOCK_HEADER_WORDS, HANDLE_OFFSET_SCALE } from './layout.js';

export abstract class BlockView {
  /** The arena the block lives in (this thread's view). */
  readonly arena: Arena;
  /** Payload word index of the block. */
  protected readonly pw: number;
  /** The block's generation when the view was made. */
  protected readonly gen: number;

  protected constructor(arena: Arena, pw: number) {
    this.arena = arena;
    this.pw = pw;
    this.gen = arena.generationAt(pw - BLOCK_HEADER_WORDS);
  }

  /** Plain-integer handle of the block, to post to other threads (a safe integer wider than 32 bits). */
  get handle(): number {
    return this.gen * HANDLE_OFFSET_SCALE + ((this.pw - BLOCK_HEADER_WORDS) >>> 1);
  }

  /**
   * The payload word index while the block is still the one this view was made for. Throws EBADF
   * naming `what` and `gone` (e.g. 'driver', 'the driver was destroyed') once it was freed.
   */
  protected live(what: string, gone: string): number {
    if (!this.arena.isLive(this.pw - BLOCK_HEADER_WORDS, this.gen)) throw Errors.badHandle(what, this.handle, gone);
    return this.pw;
  }
}

/**
 * undoStaleGet (src/fence/release.ts): a get-unless-zero taken on a block that was released and
 * reused between the caller's generation check and the get (the dead-signaler walk and the
 * signaling hand-over take such gets) is taken back by what the block now is. Reused as a fence,
 * the get is a real reference: put, so that the fence is released if its owner dropped its own in
 * between (a plain decrement left it at refcount 0 and never freed). Reused as anything else, the
 * increment is taken back from that struct's word.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence } from '../src/index.js';
import * as A from '../src/arena/layout.js';
import { fenceTryGet } from '../src/fence/core.js';
import * as FL from '../src/fence/layout.js';
import { undoStaleGet } from '../src/fence/release.js';
import { expectClean } from './support/core.js';

function payloadWord(arena: Arena, handle: number): number {
  return arena.resolve(handle, -1, 'block') + A.BLOCK_HEADER_WORDS;
}

/** An arena, a context, and the payload word of a fence just released: the next block of its size reuses it. */
function released(): { arena: Arena; ctx: number; fw: number; used: number } {
  const arena = Arena.create({ bytes: 1 << 20 });
  const ctx = Fence.contextAlloc(arena);
  // A first create and put: the thread's lasting blocks are in place before the baseline.
  Fence.create(arena, { context: ctx, seqno: 1 }).put();
  const used = arena.stats().used;
  const a = Fence.create(arena, { context: ctx, seqno: 2 });
  const fw = payloadWord(arena, a.handle);
  a.put();
  return { arena, ctx, fw, used };
}

describe('undoStaleGet: a get that landed on a reused block', () => {
  it('reused as a fence whose owner put its reference meanwhile: the fence is released, not left at refcount 0', () => {
    const { arena, ctx, fw, used } = released();
    const b = Fence.create(arena, { context: ctx, seqno: 3 });
    expect(payloadWord(arena, b.handle)).toBe(fw); // the freed block, reused
    expect(fenceTryGet(arena.i32, fw)).toBe(true); // the stale get
    b.signal();
    b.put(); // its owner's reference: not the last any more
    expect(Atomics.load(arena.i32, fw + FL.F_REFCOUNT)).toBe(1);
    undoStaleGet(arena, fw);
    expect(arena.stats().used).toBe(used);
    expectClean(arena);
  });

  it('reused as a fence still held: one reference taken back, the fence lives on', () => {
    const { arena, ctx, fw, used } = released();
    const b = Fence.create(arena, { context: ctx, seqno: 3 });
    expect(fenceTryGet(arena.i32, fw)).toBe(true);
    undoStaleGet(arena, fw);
    expect(Atomics.load(arena.i32, fw + FL.F_REFCOUNT)).toBe(1);
    b.signal();
    expect(b.status()).toBe(1);
    b.put();
    expect(arena.stats().used).toBe(used);
    expectClean(arena);
  });

  it('reused as another block: the increment is taken back from its word', () => {
    const { arena, fw, used } = released();
    const h = arena.alloc(FL.FENCE_WORDS * 4);
    expect(payloadWord(arena, h)).toBe(fw);
    arena.i32[fw + FL.F_REFCOUNT] = 5;
    expect(fenceTryGet(arena.i32, fw)).toBe(true);
    undoStaleGet(arena, fw);
    expect(arena.i32[fw + FL.F_REFCOUNT]).toBe(5);
    arena.free(h);
    expect(arena.stats().used).toBe(used);
    expectClean(arena);
  });
});

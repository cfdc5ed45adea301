/**
 * Chain walk records at every nesting depth (src/containers/chainwalk.ts): the first WALK_CAP in
 * the thread slot, deeper ones in blocks of their own, stacked on the slot and freed at each pop;
 * with no room for a block a walk still runs, unrecorded. The kill side is deep-walk-kill.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceChain, defineFenceOps } from '../src/index.js';
import { walkRecords } from '../src/containers/chainwalk.js';
import * as CL from '../src/containers/layout.js';
import { expectClean } from './support/core.js';

const DEPTH = 6;
// A poll that signals: a signaled-query walking a chain headed by such a fence signals it on the
// spot, and runs its callbacks inside the walk.
const polling = defineFenceOps('chainwalk-nesting', { getDriverName: () => 'nesting', getTimelineName: () => 'nest', signaled: () => true });

/**
 * DEPTH chains, each a link over a signaled fence under a link over a polled one; the polled fence
 * of chain k has a callback that calls `look` (inside the walk that signaled it), then queries
 * chain k + 1. Returns the outermost chain and what to put. Signals nest SIGNAL_INLINE deep before
 * their callbacks are deferred, so the walks nest one deeper than that: past WALK_CAP.
 */
function nest(arena: Arena, look: () => void): { outer: Fence; refs: Fence[] } {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  const refs: Fence[] = [];
  const heads: Fence[] = [];
  for (let k = 0; k < DEPTH; k++) {
    const leaf = Fence.create(arena, { context: ctx, seqno: seqno++ });
    leaf.signal();
    const p = Fence.create(arena, { context: ctx, seqno: seqno++, ops: polling });
    heads.push(FenceChain.create(arena, FenceChain.create(arena, null, leaf, 1), p.get(), 2));
    refs.push(p);
  }
  refs.forEach((p, k) =>
    p.addCallback(() => {
      look();
      if (k + 1 < DEPTH) heads[k + 1].isSignaled();
    }),
  );
  return { outer: heads[0], refs: [...heads, ...refs] };
}

/** One nest queried and put: the thread's own lasting blocks (its reference ledger) are in place after it. */
function warmUp(arena: Arena): void {
  const { outer, refs } = nest(arena, () => {});
  outer.isSignaled();
  for (const f of refs) f.put();
}

describe('chain walk records past WALK_CAP', () => {
  it('walks nested past WALK_CAP are each recorded; their blocks are freed as they end', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    warmUp(arena);
    const used = arena.stats().used;
    const seen: { depth: number; records: number; linked: number }[] = [];
    const { outer, refs } = nest(arena, () => {
      const b = arena.slotWord(arena.slot);
      const records = walkRecords(arena, arena.slot);
      seen.push({ depth: arena.i32[b + CL.T_WALK_DEPTH], records: records.length, linked: records.filter((r) => arena.i32[r + CL.W_LINK] !== 0).length });
    });
    expect(outer.isSignaled()).toBe(true);
    expect(seen).toHaveLength(DEPTH);
    expect(Math.max(...seen.map((x) => x.depth))).toBeGreaterThan(CL.WALK_CAP);
    // Every walk in progress is recorded, each standing on its link.
    for (const x of seen) expect(x).toEqual({ depth: x.depth, records: x.depth, linked: x.depth });
    expect(arena.i32[arena.slotWord(arena.slot) + CL.T_WALK_MORE]).toBe(0);
    for (const f of refs) f.put();
    expect(arena.stats().used).toBe(used);
    expectClean(arena);
  });

  it('without room for a record block a deeper walk runs unrecorded, and nothing is lost', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    warmUp(arena);
    const used = arena.stats().used;
    const fill: number[] = [];
    const seen: [number, number][] = [];
    const { outer, refs } = nest(arena, () => {
      seen.push([arena.i32[arena.slotWord(arena.slot) + CL.T_WALK_DEPTH], walkRecords(arena, arena.slot).length]);
    });
    // Every block the allocator can still hand out, down to the smallest class.
    for (const bytes of [4096, 512, 64, 16, 8]) {
      for (;;) {
        try {
          fill.push(arena.alloc(bytes));
        } catch (e) {
          expect((e as { code?: string }).code).toBe('ENOMEM');
          break;
        }
      }
    }
    expect(outer.isSignaled()).toBe(true);
    expect(seen).toHaveLength(DEPTH);
    expect(Math.max(...seen.map(([depth]) => depth))).toBeGreaterThan(CL.WALK_CAP);
    // The slot's records only: the deeper walks ran unrecorded.
    for (const [depth, records] of seen) expect(records).toBe(Math.min(depth, CL.WALK_CAP));
    for (const h of fill) arena.free(h);
    for (const f of refs) f.put();
    expect(arena.stats().used).toBe(used);
    expectClean(arena);
  });
});

/**
 * Unwrap and merge: mirrors the kernel's st-dma-fence-unwrap.c (sanitycheck, unwrap_array,
 * unwrap_chain, unwrap_chain_array, unwrap_merge, unwrap_merge_duplicate, unwrap_merge_seqno,
 * unwrap_merge_order, unwrap_merge_complex, unwrap_merge_complex_seqno), plus the all-signaled
 * private stub, the single-fence shortcut and bad input. Every test ends with a clean arena.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain, mergeFences, unwrapFences, defineFenceOps } from '../src/index.js';
import { expectClean, rejects } from './support/core.js';

const mockOps = defineFenceOps('test:unwrap-mock', {
  getDriverName: () => 'mock',
  getTimelineName: () => 'mock',
});

/** Kernel __mock_fence(context, seqno), with signaling enabled like the selftests do. */
function mockFenceAt(arena: Arena, context: number, seqno: number): Fence {
  const f = Fence.create(arena, { ops: mockOps, context, seqno });
  f.enableSignaling();
  return f;
}
function mockFence(arena: Arena): Fence {
  return mockFenceAt(arena, Fence.contextAlloc(arena), 1);
}
/** Kernel mock_array: takes over the references passed. */
function mockArray(arena: Arena, ...fences: Fence[]): Fence {
  return FenceArray.create(arena, fences, { context: Fence.contextAlloc(arena), seqno: 1 });
}
/** Kernel mock_chain: takes over the references passed, seqno 1. */
function mockChain(arena: Arena, prev: Fence | null, fence: Fence): Fence {
  return FenceChain.create(arena, prev, fence, 1);
}
const handles = (fs: Fence[]): number[] => fs.map((f) => f.handle);

describe('unwrapFences (kernel st-dma-fence-unwrap)', () => {
  it('sanitycheck: array in a chain, released through the chain', () => {
    const arena = Arena.create();
    const f = mockFence(arena);
    const chain = mockChain(arena, null, mockArray(arena, f));
    chain.put();
    expectClean(arena);
  });

  it('unwrap_array: both children, nothing else', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const array = mockArray(arena, f1, f2);
    expect(handles(unwrapFences(array))).toEqual(handles([f1, f2]));
    array.put();
    expectClean(arena);
  });

  it('unwrap_chain: the link fence, then the plain prev', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const chain = mockChain(arena, f1, f2);
    expect(handles(unwrapFences(chain))).toEqual(handles([f2, f1]));
    chain.put();
    expectClean(arena);
  });

  it('unwrap_chain_array: a chain whose link holds an array', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const chain = mockChain(arena, null, mockArray(arena, f1, f2));
    expect(handles(unwrapFences(chain))).toEqual(handles([f1, f2]));
    chain.put();
    expectClean(arena);
  });

  it('a plain fence unwraps to itself; bad input is refused', () => {
    const arena = Arena.create();
    const f = mockFence(arena);
    expect(unwrapFences(f)).toEqual([f]);
    rejects(arena, () => unwrapFences({} as Fence), 'EINVAL');
    f.put();
    rejects(arena, () => unwrapFences(f), 'EBADF');
    expectClean(arena);
  });
});

describe('mergeFences (kernel st-dma-fence-unwrap)', () => {
  it('unwrap_merge: two fences → an array of both', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const f3 = mergeFences(arena, [f1, f2]);
    expect(FenceArray.isArray(f3)).toBe(true);
    expect(handles(unwrapFences(f3))).toEqual(handles([f1, f2]));
    expect(f3.seqno).toBe(1);
    expect(f3.context).toBeGreaterThan(f2.context);
    expect(f1.refcount).toBe(2); // inputs are not consumed
    f3.put();
    f2.put();
    f1.put();
    expectClean(arena);
  });

  it('unwrap_merge_duplicate: merging a fence with itself gives that fence back', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mergeFences(arena, [f1, f1]);
    expect(f2.handle).toBe(f1.handle);
    expect(handles(unwrapFences(f2))).toEqual(handles([f1]));
    expect(f1.refcount).toBe(2);
    f2.put();
    f1.put();
    expectClean(arena);
  });

  it('unwrap_merge_seqno: the later fence of a context wins, contexts ascending', () => {
    const arena = Arena.create();
    const ctx0 = Fence.contextAlloc(arena);
    const ctx1 = Fence.contextAlloc(arena);
    const f1 = mockFenceAt(arena, ctx1, 1);
    const f2 = mockFenceAt(arena, ctx1, 2);
    const f3 = mockFenceAt(arena, ctx0, 1);
    const f4 = mergeFences(arena, [f1, f2, f3]);
    expect(handles(unwrapFences(f4))).toEqual(handles([f3, f2]));
    for (const f of [f4, f3, f2, f1]) f.put();
    expectClean(arena);
  });

  it('unwrap_merge_order: an array and a chain of the same fences in opposite order', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const a1 = mockArray(arena, f1, f2);
    const c1 = mockChain(arena, null, f1.get());
    const c2 = mockChain(arena, c1, f2.get());
    const a2 = mergeFences(arena, [a1, c2]);
    expect(handles(unwrapFences(a2))).toEqual(handles([f1, f2]));
    for (const f of [a2, c2, a1]) f.put();
    expectClean(arena);
  });

  it('unwrap_merge_complex: signaled fences filtered, two arrays merged', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    const f3 = mergeFences(arena, [f1, f2]);
    const f4 = mockArray(arena, f2.get(), f1.get()); // reversed
    const stub = Fence.stub(arena);
    const f5 = mergeFences(arena, [f3, f4, stub]);
    expect(handles(unwrapFences(f5))).toEqual(handles([f1, f2]));
    for (const f of [stub, f5, f4, f3, f2, f1]) f.put();
    expectClean(arena);
  });

  it('unwrap_merge_complex_seqno: newest per context across two arrays', () => {
    const arena = Arena.create();
    const ctx0 = Fence.contextAlloc(arena);
    const ctx1 = Fence.contextAlloc(arena);
    const f1 = mockFenceAt(arena, ctx0, 2);
    const f2 = mockFenceAt(arena, ctx1, 1);
    const f3 = mockFenceAt(arena, ctx0, 1);
    const f4 = mockFenceAt(arena, ctx1, 2);
    const f5 = mockArray(arena, f1.get(), f2.get());
    const f6 = mockArray(arena, f3.get(), f4.get());
    const f7 = mergeFences(arena, [f5, f6]);
    expect(handles(unwrapFences(f7))).toEqual(handles([f1, f4]));
    for (const f of [f7, f6, f5, f4, f3, f2, f1]) f.put();
    expectClean(arena);
  });

  it('32-bit wrap-around decides "newest" for 32-bit fences', () => {
    const arena = Arena.create();
    const ctx = Fence.contextAlloc(arena);
    const old = mockFenceAt(arena, ctx, 0xfffffff0);
    const wrapped = mockFenceAt(arena, ctx, 5); // later than 0xfffffff0 with wrap-around
    const m = mergeFences(arena, [old, wrapped]);
    expect(m.handle).toBe(wrapped.handle);
    for (const f of [m, wrapped, old]) f.put();
    expectClean(arena);
  });

  it('everything signaled: a private stub carrying the latest timestamp', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    f1.signalTimestamp(1_000n);
    f2.signalTimestamp(5_000n);
    const chain = mockChain(arena, f1.get(), f2.get());
    const m = mergeFences(arena, [f1, chain]);
    expect(m.isSignaled()).toBe(true);
    expect(m.timestamp).toBe(5_000n);
    expect(m.context).not.toBe(0); // private, not the shared stub
    expect(m.handle).not.toBe(f2.handle);
    for (const f of [m, chain, f2, f1]) f.put();
    expectClean(arena);
  });

  it('one unsignaled leaf among signaled ones: that fence, with a new reference', () => {
    const arena = Arena.create();
    const f1 = mockFence(arena);
    const f2 = mockFence(arena);
    f1.signal();
    const array = mockArray(arena, f1.get(), f2.get());
    const m = mergeFences(arena, [array]);
    expect(m.handle).toBe(f2.handle);
    expect(f2.refcount).toBe(3);
    for (const f of [m, array, f2, f1]) f.put();
    expectClean(arena);
  });

  it('chains of arrays of many contexts flatten into one sorted array', () => {
    const arena = Arena.create();
    const leaves: Fence[] = [];
    let chain: Fence | null = null;
    for (let i = 0; i < 8; i++) {
      const a = mockFence(arena);
      const b = mockFence(arena);
      leaves.push(a, b);
      chain = FenceChain.create(arena, chain, mockArray(arena, b.get(), a.get()), i + 1);
    }
    leaves[3].signal(); // filtered out
    const m = mergeFences(arena, [chain!, leaves[15]]);
    const expected = leaves.filter((_, i) => i !== 3).sort((x, y) => x.context - y.context);
    expect(handles(unwrapFences(m))).toEqual(handles(expected));
    for (const f of [m, chain!, ...leaves]) f.put();
    expectClean(arena);
  });

  it('refuses bad input without leaking', () => {
    const arena = Arena.create();
    const f = mockFence(arena);
    rejects(arena, () => mergeFences(arena, []), 'EINVAL');
    rejects(arena, () => mergeFences(arena, [f, null as unknown as Fence]), 'EINVAL');
    const other = Arena.create({ bytes: 1 << 20 });
    const foreign = Fence.create(other, { context: 1, seqno: 1 });
    rejects(arena, () => mergeFences(arena, [f, foreign]), 'EINVAL');
    foreign.put();
    expect(f.refcount).toBe(1);
    f.put();
    expectClean(arena);
    expectClean(other);
  });
});

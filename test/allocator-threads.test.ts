/**
 * Allocator under threads: two real workers hammer alloc/free on one arena, hand blocks over to each
 * other to free, and at the end every count is exact and check() finds the arena clean.
 */
import { describe, expect, it } from 'vitest';
import { Arena } from '../src/index.js';
import { TestWorker, expectClean } from './support/core.js';

const RING_BYTES = 16 + 256 * 8;
const ITERATIONS = 200_000;

async function hammer(arena: Arena, iterations: number, seed: number) {
  const rings = [new SharedArrayBuffer(RING_BYTES), new SharedArrayBuffer(RING_BYTES)];
  const workers = [1, 2].map(
    (id) =>
      new TestWorker('alloc-hammer', {
        buffer: arena.buffer,
        id,
        iterations,
        seed: seed * 31 + id,
        outRing: rings[id - 1],
        inRing: rings[2 - id],
      }),
  );
  try {
    const results = await Promise.all(workers.map((w) => w.next('done', 60_000)));
    await Promise.all(workers.map((w) => w.exited()));
    return results as unknown as { allocs: number; frees: number; corrupt: number; handedOver: number; received: number }[];
  } finally {
    for (const w of workers) await w.worker.terminate();
  }
}

describe('allocator with two worker threads', () => {
  it('two workers hammering alloc/free: exact counts, no block owned twice, check() clean', async () => {
    const arena = Arena.create({ bytes: 8 << 20, maxThreads: 4 });
    const [a, b] = await hammer(arena, ITERATIONS, 1);
    for (const r of [a, b]) {
      expect(r.corrupt).toBe(0);
      expect(r.allocs).toBeGreaterThan(ITERATIONS / 3);
      expect(r.handedOver).toBeGreaterThan(0);
    }
    // Every block handed over was freed by the peer, exactly once.
    expect(a.received).toBe(b.handedOver);
    expect(b.received).toBe(a.handedOver);
    const stats = arena.stats();
    expect(stats.allocs).toBe(a.allocs + b.allocs);
    expect(stats.frees).toBe(a.frees + b.frees);
    expect(stats.frees).toBe(stats.allocs);
    expect(stats.live).toEqual({});
    expect(stats.used).toBe(0);
    expectClean(arena);
    // The detached workers' slots came back; their cached blocks are reusable here.
    const refs = Array.from({ length: 200 }, (_, i) => arena.alloc(8 + (i % 7) * 50));
    for (const r of refs) arena.free(r);
    expect(arena.stats().allocs).toBe(a.allocs + b.allocs + 200);
    expectClean(arena);
  });

  it('the main thread allocates and frees alongside the workers', async () => {
    const arena = Arena.create({ bytes: 8 << 20, maxThreads: 4 });
    const mine: number[] = [];
    let allocs = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 50; i++) {
        mine.push(arena.alloc(56));
        allocs++;
      }
      while (mine.length > 20) arena.free(mine.shift()!);
    }, 1);
    let results;
    try {
      results = await hammer(arena, 20_000, 7);
    } finally {
      clearInterval(pump);
    }
    for (const r of mine) arena.free(r);
    const [a, b] = results;
    expect(a.corrupt + b.corrupt).toBe(0);
    const stats = arena.stats();
    expect(stats.allocs).toBe(a.allocs + b.allocs + allocs);
    expect(stats.frees).toBe(stats.allocs);
    expectClean(arena);
  });
});

/**
 * Locks under threads: for every algorithm, two real workers hammer one lock and increment a
 * non-atomic counter inside the critical section. Mutual exclusion holds exactly when the final
 * count equals the number of rounds and nobody ever met another thread inside.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, LOCK_KINDS, SpinLock, type LockKind } from '../src/index.js';
import { TestWorker, expectClean } from './support/core.js';

const ITERATIONS: Record<LockKind, number> = { tas: 150_000, ttas: 150_000, ticket: 100_000, futex: 150_000 };

interface Result {
  rounds: number;
  violations: number;
  timeouts: number;
}

/** Two lock-hammer workers on one lock (`fence`: that fence's lock instead of `ref`'s); asserts the exact counts. */
async function hammer(arena: Arena, iterations: number, data: { ref: number; fence?: number }): Promise<void> {
  const shared = new SharedArrayBuffer(16);
  const counter = new Int32Array(shared);
  const workers = [0, 1].map(() => new TestWorker('lock-hammer', { buffer: arena.buffer, iterations, shared, ...data }));
  let results: Result[];
  try {
    results = (await Promise.all(workers.map((w) => w.next('done', 50_000)))) as unknown as Result[];
    await Promise.all(workers.map((w) => w.exited()));
  } finally {
    for (const w of workers) await w.worker.terminate();
  }
  for (const r of results) {
    expect(r.violations).toBe(0);
    expect(r.timeouts).toBe(0);
    expect(r.rounds).toBe(iterations);
  }
  expect(counter[0]).toBe(2 * iterations);
  expect(counter[1]).toBe(0); // nobody left inside
}

describe.each(LOCK_KINDS.map((k) => [k]))('two workers hammering one %s lock', (kind: LockKind) => {
  it('exact final count, no overlap, no timeout, arena clean', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const lock = SpinLock.create(arena, kind);
    await hammer(arena, ITERATIONS[kind], { ref: lock.ref });
    expect(lock.owner).toBe(-1);
    // The lock still works for a third thread after the hammering.
    expect(lock.tryLock()).toBe(true);
    lock.unlock();
    lock.free();
    expectClean(arena);
  });
});

describe.each(LOCK_KINDS.map((k) => [k]))('two workers hammering one fence lock in a %s arena', (kind: LockKind) => {
  it('inline lock (the lock() fast path): exact final count, no overlap, free afterwards, arena clean', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, lockKind: kind });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    await hammer(arena, ITERATIONS[kind], { ref: 0, fence: f.handle });
    // Free, and no waiter bit left behind for a fast path to miss (a ticket word keeps its counters).
    if (kind !== 'ticket') expect(Atomics.load(arena.i32, f.lockWordIndex)).toBe(0);
    expect(f.lock(0)).toBe(true);
    f.unlock();
    f.put();
    expectClean(arena);
  });

  it('borrowed lock: the same counts through the lender’s word', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, lockKind: kind });
    const lender = SpinLock.create(arena, kind);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lender });
    await hammer(arena, ITERATIONS[kind] / 2, { ref: 0, fence: f.handle });
    expect(lender.owner).toBe(-1);
    f.put();
    lender.free();
    expectClean(arena);
  });
});

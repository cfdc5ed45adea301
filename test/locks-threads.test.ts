/**
 * Locks under threads: for every algorithm, two real workers hammer one lock and increment a
 * non-atomic counter inside the critical section. Mutual exclusion holds exactly when the final
 * count equals the number of rounds and nobody ever met another thread inside.
 */
import { describe, expect, it } from 'vitest';
import { Arena, LOCK_KINDS, SpinLock, type LockKind } from '../src/index.js';
import { TestWorker, expectClean } from './support/core.js';

const ITERATIONS: Record<LockKind, number> = { tas: 150_000, ttas: 150_000, ticket: 100_000, futex: 150_000 };

interface Result {
  rounds: number;
  violations: number;
  timeouts: number;
}

describe.each(LOCK_KINDS.map((k) => [k]))('two workers hammering one %s lock', (kind: LockKind) => {
  it('exact final count, no overlap, no timeout, arena clean', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const lock = SpinLock.create(arena, kind);
    const shared = new SharedArrayBuffer(16);
    const counter = new Int32Array(shared);
    const iterations = ITERATIONS[kind];
    const workers = [0, 1].map(() => new TestWorker('lock-hammer', { buffer: arena.buffer, ref: lock.ref, iterations, shared }));
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
    expect(lock.owner).toBe(-1);
    // The lock still works for a third thread after the hammering.
    expect(lock.tryLock()).toBe(true);
    lock.unlock();
    lock.free();
    expectClean(arena);
  });
});

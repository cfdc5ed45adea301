/**
 * Kill window of a deferred container-child drop: a worker releases fence arrays while holding
 * their child's lock (each child's drop goes to its deferred queue), then is terminated at a
 * seeded random point — before the queue runs, while it runs, after. After each kill and reap:
 * a child the main thread still holds is back to exactly its one reference, a child whose last
 * reference the array held is released (unsignaled with a callback: signaled -EDEADLK, the
 * callback run once); at the end every callback ran exactly once and the arena is clean with its
 * bytes in use back to the baseline.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceArray, pendingCallbacks } from '../src/index.js';
import { DK_AT, DK_CELLS, DK_DONE, DK_GO } from './fixtures/defer-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, until } from './support/core.js';
import { KillTarget, moreKills } from './support/killloop.js';

const KILLS = 60;
const PAIRS = 200; // per round; the even children are also held by the main thread

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

describe('deferred container-child drop kill window', () => {
  it(`a thread terminated before or while its deferred child drops run (at least ${KILLS} kills): no reference lost, callbacks exactly once, no leak`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'defer-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const baseline = arena.stats().used;
    const seen = [0, 0, 0]; // kills before the queue ran, while it ran, after
    let delay = 1000; // µs of jitter range in the odd rounds
    const all: number[][] = [];
    let round = 0;
    for (; moreKills(round, seen[0] > KILLS / 4 && seen[1] > KILLS / 10, KILLS); round++) {
      const fencesBefore = arena.stats().live.fence ?? 0;
      const ctx = Fence.contextAlloc(arena);
      const children = Array.from({ length: PAIRS }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
      const counts = new Array<number>(PAIRS).fill(0);
      const errors = new Array<number>(PAIRS).fill(1);
      all.push(counts);
      children.forEach((c, i) =>
        c.addCallback((f) => {
          counts[i]++;
          errors[i] = f.error;
        }),
      );
      const kept = children.filter((_, i) => i % 2 === 0);
      for (const c of kept) c.get();
      // Each array takes over the main thread's reference on its child (the only one of an odd child).
      const arrays = children.map((c, i) => FenceArray.create(arena, [c], { context: Fence.contextAlloc(arena), seqno: i + 1 }));
      const shared = new SharedArrayBuffer(DK_CELLS * 4);
      const s = new Int32Array(shared);
      const pairs = children.map((c, i) => [c.handle, arrays[i].handle]);
      const k = new KillTarget(arena, 'defer-kill', { buffer: arena.buffer, shared, pairs, spinUs: round % 2 === 0 ? 3000 : 0 });
      running.push(k.worker);
      // The odd children's drops (the array held their last reference) deferred and recorded; the
      // even ones', not the last, done at once.
      expect((await k.ready).deferred).toBe(PAIRS / 2);
      k.go(s, DK_GO);
      // Even rounds: a kill before the queue runs (the worker spins 3 ms first); odd rounds: once
      // it runs, after a seeded jitter adapted so that the kill lands inside it.
      if (round % 2 === 1) k.awaitWork(s, DK_AT);
      await k.kill(rand(round % 2 === 0 ? 1000 : delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      seen[s[DK_DONE] ? 2 : s[DK_AT] ? 1 : 0]++;
      if (round % 2 === 1) delay = s[DK_DONE] ? Math.max(10, delay >> 1) : Math.min(5000, delay * 2);
      // The held children have exactly the main thread's reference again.
      for (const c of kept) expect(c.refcount, `round ${round} (seed ${seed})`).toBe(1);
      for (const c of kept) {
        expect(c.lock(5_000)).toBe(true);
        c.unlock();
        c.signal();
        c.put();
      }
      const roundOk = await until(() => counts.every((c) => c >= 1), 10_000);
      expect(roundOk, `round ${round} (seed ${seed}): callbacks missing`).toBe(true);
      // Every child freed now (a delivered callback's reference is dropped once it ran).
      expect(arena.stats().live.fence ?? 0, `round ${round} (seed ${seed})`).toBe(fencesBefore);
      errors.forEach((e, i) => expect(e, `round ${round} child ${i}`).toBe(i % 2 === 0 ? 0 : Errno.EDEADLK));
    }
    await new Promise((r) => setTimeout(r, 20));
    for (const counts of all) expect(counts.every((c) => c === 1)).toBe(true);
    expect(pendingCallbacks()).toBe(0);
    console.log(`defer-kill: ${round} kills (seed ${seed}): ${seen[0]} before the deferred drops ran, ${seen[1]} while they ran, ${seen[2]} after; ${round * PAIRS} children`);
    expect(seen[0]).toBeGreaterThan(KILLS / 4);
    expect(seen[1]).toBeGreaterThan(KILLS / 10);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 180_000);
});

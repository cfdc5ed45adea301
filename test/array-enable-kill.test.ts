/**
 * Kill window of an array's enableSignaling: it takes an array reference for each child's callback
 * before linking the callback's node, and a thread terminated between the two used to leak that
 * reference (and so the array and its children). The reference is now named in a walk record
 * (src/containers/chainwalk.ts) from its take to its link, so the reaper drops it. After every kill
 * and reap, the test signals every child and puts its references: every array is released, and the
 * arena is back to its bytes in use. (The array cut off in its arming is not signaled: a window
 * left open, see docs/architecture.md.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray } from '../src/index.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 50;
const ARRAYS = 40;
const CHILDREN = 4;
const running: KillTarget[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((k) => k.worker.terminate()));
});

describe('array enableSignaling kill window', () => {
  it(`a thread terminated while arrays arm their children (${KILLS} kills): every array released, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'array-enable-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    // This thread's ledger, grown to hold a round's share records once, before the baseline.
    const warm = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    for (const t of Array.from({ length: ARRAYS }, () => warm.share())) Fence.receive(arena, t).put();
    warm.signal();
    warm.put();
    const baseline = arena.stats().used;
    const cells = new Int32Array(new SharedArrayBuffer(12));
    let jitter = 200;
    let inside = 0;
    for (let round = 0; round < KILLS; round++) {
      const where = `round ${round} (seed ${seed})`;
      const ctx = Fence.contextAlloc(arena);
      const children = Array.from({ length: ARRAYS * CHILDREN }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
      for (const c of children) c.get(); // the array takes one reference over, the test keeps one
      const arrays = Array.from({ length: ARRAYS }, (_, i) =>
        FenceArray.create(arena, children.slice(i * CHILDREN, (i + 1) * CHILDREN), { context: Fence.contextAlloc(arena), seqno: 1 }),
      );
      for (let c = 0; c < cells.length; c++) Atomics.store(cells, c, 0);
      const k = new KillTarget(arena, 'array-enable-kill', { buffer: arena.buffer, shared: cells.buffer, tokens: arrays.map((a) => a.share()) });
      running.push(k);
      await k.ready;
      k.go(cells, 0);
      k.awaitWork(cells, 1);
      await k.kill(rand(jitter));
      running.splice(0);
      expect(k.errors).toEqual([]);
      const done = Atomics.load(cells, 2);
      if (Atomics.load(cells, 1) > done) inside++;
      jitter = adaptJitter(jitter, done, ARRAYS);
      for (const c of children) {
        c.signal();
        c.put();
      }
      // Not waited for: the array the worker was arming when it died stays unsignaled (its arming is
      // not resumed by the reaper: docs/architecture.md, kill windows left). Its armed children's
      // callbacks and the puts release it all the same.
      for (const a of arrays) a.put();
      expect(arena.stats().used, `${where}: bytes in use`).toBe(baseline);
    }
    console.log(`array-enable-kill (seed ${seed}): ${KILLS} kills, ${inside} inside an enableSignaling`);
    expect(inside).toBeGreaterThan(KILLS / 3);
    expectClean(arena);
  }, 180_000);
});

/**
 * Kill window of an array's enableSignaling: it takes an array reference for each child's callback
 * before linking the callback's node, and a thread terminated between the two used to leak that
 * reference (and so the array and its children); one terminated between two children left the
 * array enabled with the rest unarmed, never to signal. The arming is now recorded in a walk record
 * (src/containers/chainwalk.ts): the reaper drops the reference and arms the rest. After every kill
 * and reap, the test signals every child and puts its references: every array is released, and the
 * arena is back to its bytes in use, and every array signaled: the one cut off in its arming was
 * armed the rest of the way by the reaper (src/containers/arraychildren.ts). Every PARK_EVERY-th
 * round one seeded child carries ops whose enableSignaling parks the worker (test/fixtures/
 * array-enable-park.ts), and the kill lands there, inside its array's arming, by construction
 * (under two busy loops seeded kills once landed there 5 times in 200).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray } from '../src/index.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { KillTarget, killInStep, moreKills } from './support/killloop.js';
import { PARKED, parkOps } from './fixtures/array-enable-park.js';

/** Planned kills; more until a third of them landed inside an enableSignaling (~30 % do on a quiet machine, fewer on a loaded one: see moreKills). */
const KILLS = 50;
const ARRAYS = 40;
const CHILDREN = 4;
const PARK_EVERY = 3; // enough parked rounds to meet the floor by round KILLS / 3 * PARK_EVERY
const running: KillTarget[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((k) => k.worker.terminate()));
});

describe('array enableSignaling kill window', () => {
  it(`a thread terminated while arrays arm their children (at least ${KILLS} kills): every array released, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'array-enable-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    // This thread's ledger, grown to hold a round's share records once, before the baseline.
    const warm = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    for (const t of Array.from({ length: ARRAYS }, () => warm.share())) Fence.receive(arena, t).put();
    warm.signal();
    warm.put();
    const baseline = arena.stats().used;
    const cells = new Int32Array(new SharedArrayBuffer((PARKED + 1) * 4));
    const ops = parkOps(() => {}); // this thread's copy: it only accepts
    let jitter = 200;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, inside > KILLS / 3, KILLS); round++) {
      const where = `round ${round} (seed ${seed})`;
      const ctx = Fence.contextAlloc(arena);
      const parks = round % PARK_EVERY === PARK_EVERY - 1;
      const parkAt = parks ? rand(ARRAYS * CHILDREN) : -1; // the child whose arming parks the worker
      const children = Array.from({ length: ARRAYS * CHILDREN }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1, ...(i === parkAt ? { ops } : {}) }));
      for (const c of children) c.get(); // the array takes one reference over, the test keeps one
      const arrays = Array.from({ length: ARRAYS }, (_, i) =>
        FenceArray.create(arena, children.slice(i * CHILDREN, (i + 1) * CHILDREN), { context: Fence.contextAlloc(arena), seqno: 1 }),
      );
      for (let c = 0; c < cells.length; c++) Atomics.store(cells, c, 0);
      const k = new KillTarget(arena, 'array-enable-kill', { buffer: arena.buffer, shared: cells.buffer, tokens: arrays.map((a) => a.share()) });
      running.push(k);
      await k.ready;
      if (parks) {
        await k.killParked(cells, 0, PARKED);
        expect(k.errors).toEqual([]);
        const a = Math.floor(parkAt / CHILDREN); // parked arming array a: AT = a + 1, DONE = a
        expect([cells[1], cells[2]], `${where}: parked arming array ${a}`).toEqual([a + 1, a]);
        inside++;
      } else {
        const r = await killInStep(k, cells, rand(jitter), jitter, ARRAYS);
        if (r.inside) inside++;
        jitter = r.jitter;
      }
      running.splice(0);
      for (const c of children) {
        c.signal();
        c.put();
      }
      // Every array signals, the one whose arming was cut off included (its reaper armed the rest);
      // a wait enables signaling on those the worker had not reached.
      for (const a of arrays) {
        expect(a.wait(5_000), `${where}: array ${arrays.indexOf(a)} (armed up to ${cells[1]}, ${cells[2]} done)`).toBe(true);
        a.put();
      }
      expect(arena.stats().used, `${where}: bytes in use`).toBe(baseline);
    }
    console.log(`array-enable-kill (seed ${seed}): ${round} kills, ${inside} inside an enableSignaling`);
    expect(inside, 'kills in the window under test').toBeGreaterThan(KILLS / 3);
    expectClean(arena);
  }, 600_000);
});

/**
 * A thread terminated while its last put frees the fence block, in a sanitizing arena. The
 * sanitizer poisons a freed payload; it used to do so before the block stopped being live, so a
 * kill between the poison and the commit left a live block of poison at the generation the dead
 * thread's release record names. The reaper then finished "the release" from that payload: flags
 * 0x5afedead (OPS_RELEASE and SIGNALED set) and ops id 0x5afedead, which warned "release of a
 * fence whose ops (id 1526652589) are not registered" (seen once in a 10-minute stress soak).
 *
 * The poison now goes in after the commit (src/arena/alloc.ts freeSlow), and the reaper finishes a
 * poison cut off there (flushSlotCaches). Checked three ways: the order itself, deterministically
 * (the state of the block when its poison is laid); the reaper's half on a forged cache; and a
 * seeded kill loop on fence puts, end to end (before the fix 21 of 360 such kills, ~6%, landed in
 * the window; with 24 kills the loop failed 3 runs of 7: it is the witness, not the guard).
 */
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceError } from '../src/index.js';
import * as A from '../src/arena/layout.js';
import { RK_AT, RK_CELLS, RK_DONE, RK_GO } from './fixtures/release-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 16;
const FENCES = 2000; // per kill

const running: Worker[] = [];

/** Whether `handle` still names a live fence. */
function fenceLive(arena: Arena, handle: number): boolean {
  try {
    Fence.fromHandle(arena, handle);
    return true;
  } catch (e) {
    if (e instanceof FenceError && e.code === 'EBADF') return false;
    throw e;
  }
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

describe('the sanitizer poisons a freed block only once the free has committed', () => {
  it('every poison fill of a free lands on a block no longer live (raw blocks, a fence\'s last put)', () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const i32 = arena.i32;
    const live = (A.STATE_LIVE << A.TAG_STATE_SHIFT) as number;
    const stateBits = A.TAG_STATE_MASK << A.TAG_STATE_SHIFT;
    const fills: boolean[] = []; // per poison fill of a payload: was its block still live?
    // The poison is one TypedArray fill over the payload: watched through an own property of
    // this arena's view, the block's state at that moment is read.
    const fill = i32.fill.bind(i32);
    Object.defineProperty(i32, 'fill', {
      configurable: true,
      value: (v: number, start?: number, end?: number) => {
        if (v === A.POISON && start !== undefined) fills.push((i32[start - A.BLOCK_HEADER_WORDS + A.B_TAG] & stateBits) === live);
        return fill(v, start, end);
      },
    });
    try {
      for (const bytes of [8, 100, 5000]) arena.free(arena.alloc(bytes));
      const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
      f.signal();
      f.put();
    } finally {
      delete (i32 as { fill?: unknown }).fill;
    }
    expect(fills.length).toBe(4);
    expect(fills).toEqual([false, false, false, false]);
    expectClean(arena);
  });
});

describe('a dead thread\'s free cut off between its commit and its poison (sanitizing arena)', () => {
  it('the reaper lays the poison on its cache\'s top block: the next allocation of it finds all poison', async () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const i32 = arena.i32;
    const bytes = 100;
    const k = new KillTarget(arena, 'poison-free', { buffer: arena.buffer, bytes });
    running.push(k.worker);
    const ref = (await k.ready).ref as number;
    const hw = (ref % A.HANDLE_OFFSET_SCALE) * 2;
    const end = hw + (A.SIZE_CLASSES[i32[hw + A.B_TAG] & A.TAG_CLASS_MASK] >>> 2);
    // Forged: what a worker terminated inside the poison's fill leaves (the block already cached).
    i32[end - 1] = 0;
    await k.kill(0);
    running.splice(running.indexOf(k.worker), 1);
    expect(k.errors).toEqual([]);
    // Word 0 of the payload is now the free list's link; the rest is poison again.
    expect(i32.subarray(hw + A.BLOCK_HEADER_WORDS + 1, end).every((w) => w === A.POISON)).toBe(true);
    // The allocation that takes it checks the poison (a problem counted in the arena otherwise).
    const again = arena.alloc(bytes);
    expect((again % A.HANDLE_OFFSET_SCALE) * 2).toBe(hw);
    arena.free(again);
    expectClean(arena);
  });
});

describe('a worker terminated inside the last put of fences (sanitizing arena)', () => {
  it(`seeded kills (${KILLS}) among the puts: no release from a poisoned block, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'release-kill-1';
    const rand = seededInt(seed);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const arena = Arena.create({ bytes: 8 << 20, sanitize: true });
      const baseline = arena.stats().used;
      let delay = 300; // µs of jitter range, adapted so that kills land among the puts
      let inside = 0;
      for (let round = 0; round < KILLS; round++) {
        const s = new Int32Array(new SharedArrayBuffer(RK_CELLS * 4));
        const k = new KillTarget(arena, 'release-kill', { buffer: arena.buffer, shared: s.buffer, fences: FENCES });
        running.push(k.worker);
        const handles = (await k.ready).handles as number[];
        await k.killDuringWork(s, RK_GO, RK_AT, rand(delay));
        running.splice(running.indexOf(k.worker), 1);
        expect(k.errors).toEqual([]);
        const at = s[RK_AT];
        if (at !== s[RK_DONE]) inside++;
        delay = adaptJitter(delay, s[RK_DONE], FENCES);
        // Fences at.. are the dead worker's untracked references, which the test drops for it; so
        // is fence at-1 when the kill came inside its put before the drop (the reaper leaves an
        // intent to the holders). Dropped, it is freed: its handle is stale (EBADF).
        if (at !== s[RK_DONE] && fenceLive(arena, handles[at - 1])) Fence.fromHandle(arena, handles[at - 1]).put();
        for (const h of handles.slice(at)) Fence.fromHandle(arena, h).put();
        await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
      }
      console.log(`release-kill: ${KILLS} kills (seed ${seed}), ${inside} inside a put`);
      expect(warnings).toEqual([]);
      expectClean(arena);
      expect(arena.stats().used).toBe(baseline);
    } finally {
      process.off('warning', onWarning);
    }
  }, 120_000);
});

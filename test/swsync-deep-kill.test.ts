/**
 * Kill window of sw_sync incs nested deeper than the thread slot's timeline records (SW_CAP;
 * docs/architecture.md, "Kill safety": timeline records). A callback that increments another
 * timeline nests that inc inside the inc that signaled its point; before records past SW_CAP were
 * blocks of their own (pushTimelineRecord in src/sync/signaling.ts), an inc nested deeper was
 * counted, not recorded, so a thread terminated inside it left the points its counter had reached
 * unsignaled (their waiters hanging until some later inc or close) and leaked the point reference
 * it held for signaling.
 *
 * A worker (test/fixtures/swsync-deep-kill.ts) increments the first of LEVELS timelines; a callback
 * of the worker on points of each timeline increments the next, so the incs nest up to
 * SIGNAL_INLINE + 1 deep (deeper signals are deferred and run at that depth). Every point carries a
 * callback of the test. The worker is terminated at seeded points. After each kill and reap, read
 * without polling (flags, not status()): every point its timeline's counter reached is signaled
 * without error, no other; every test callback of a signaled point ran exactly once. Then the
 * test closes the timelines (the rest -ENOENT, callbacks once), puts its points, and the arena is
 * clean with its bytes in use back to the baseline. Every PARK_EVERY-th round the worker parks in
 * a callback of the deepest inc and is terminated there (the kill lands past SW_CAP records by
 * construction: on a loaded machine seeded points alone landed there in 6 of 240 kills); the
 * other rounds kill at seeded points.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, BlockType, drain, Errno, SwTimeline, ledgerCompact, pendingCallbacks, setAutoDispatch, stopDispatcher } from '../src/index.js';
import { onReap, ReapStage } from '../src/arena/hooks.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';
import { FLAG_SIGNALED } from '../src/fence/layout.js';
import { SW_CAP, T_SW_DEPTH, TL_VALUE } from '../src/sync/layout.js';
import { SW_AT, SW_CELLS, SW_DONE, SW_GO } from './fixtures/swsync-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, timelinePoint } from './support/core.js';
import { adaptJitter, killRound, killTargets, moreKills } from './support/killloop.js';

const KILLS = 60;
const LEVELS = 8; // timelines of the cascade
const STEP = 4; // each inc's increment: the points it reaches
const STEPS = 6; // the worker's incs of the first timeline per round
const POINTS = STEP * STEPS; // per timeline, at 1..POINTS
const PARK_EVERY = 4;
const PARKED = SW_CELLS; // the cell the parked worker sets

const targets = killTargets();
afterEach(() => {
  setAutoDispatch(true);
});

/* Where the kills landed, read before the TIMELINES reap stage: a dead thread with more timeline records than SW_CAP. */
let deep = 0;
onReap(ReapStage.SIGNALS, (arena, slot) => {
  if (slot !== arena.slot && arena.i32[arena.slotWord(slot) + T_SW_DEPTH] > SW_CAP) deep++;
});

describe('sw_sync incs nested past the slot\'s timeline records', () => {
  it(`an inc cascade ${LEVELS} timelines deep cut off at seeded points (at least ${KILLS} kills): reached points signaled, callbacks once, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'swsync-deep-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20, maxFds: 64 });
    // No dispatcher: this thread drains its inbox itself once a round's worker is reaped.
    setAutoDispatch(false);
    stopDispatcher(arena);
    const baseline = arena.stats().used;
    const cells = new Int32Array(new SharedArrayBuffer((SW_CELLS + 1) * 4));
    deep = 0;
    let delay = 300;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, deep > KILLS / 10, KILLS); round++) {
      const tls = Array.from({ length: LEVELS }, (_, k) => SwTimeline.create(arena, `deep-${round}-${k}`));
      const points = tls.map((tl) => Array.from({ length: POINTS }, (_, i) => timelinePoint(arena, tl, i + 1)));
      const counts = points.map((ps) => ps.map(() => 0));
      points.forEach((ps, k) => ps.forEach((f, i) => expect(f.addCallback(() => counts[k][i]++)).not.toBeNull()));
      // The first point each inc reaches increments the next timeline: the nested inc starts before its parent's walk ends.
      const triggers = points.slice(0, -1).map((ps) => ps.filter((_, i) => i % STEP === 0).map((f) => f.handle));
      const parks = round % PARK_EVERY === PARK_EVERY - 1;
      const park = parks ? { cell: PARKED, point: points[LEVELS - 1][0].handle } : null;
      const data = { buffer: arena.buffer, shared: cells.buffer, timelines: tls.map((tl) => tl.handle), triggers, step: STEP, steps: STEPS, park };
      const deepBefore = deep;
      const steps = { go: SW_GO, at: SW_AT, done: SW_DONE };
      const { at, done, errors } = await killRound(arena, 'swsync-deep-kill', data, targets, cells, steps, parks ? 0 : rand(delay), parks ? PARKED : undefined);
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      if (parks) expect(deep, `round ${round}: parked in the deepest inc, reaped past ${SW_CAP} records`).toBe(deepBefore + 1);
      else delay = adaptJitter(delay, done, STEPS);
      drain(arena); // the test's callbacks the worker (or its reaper) queued to this thread
      for (let k = 0; k < LEVELS; k++) {
        const tw = arena.resolve(tls[k].handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
        const value = arena.i32[tw + TL_VALUE];
        points[k].forEach((f, i) => {
          const where = `round ${round} (seed ${seed}, at ${at} done ${done}) timeline ${k} point ${i + 1}, counter ${value}`;
          expect(f.flags & FLAG_SIGNALED, where).toBe(i + 1 <= value ? FLAG_SIGNALED : 0);
          expect(f.error, where).toBe(0);
          expect(counts[k][i], `${where}: callbacks`).toBe(i + 1 <= value ? 1 : 0);
        });
      }
      for (const tl of tls) tl.close(); // the rest: -ENOENT
      drain(arena);
      for (const ps of points) for (const f of ps) {
        expect(f.flags & FLAG_SIGNALED).toBe(FLAG_SIGNALED);
        expect([0, Errno.ENOENT]).toContain(f.error);
        f.put();
      }
      expect(counts.flat().every((c) => c === 1), `round ${round}: each callback once`).toBe(true);
      expectClean(arena);
    }
    expect(pendingCallbacks()).toBe(0);
    // Our timelines' references were closed: our ledger holds nothing and is freed.
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used, 'bytes in use back to the baseline').toBe(baseline);
    console.log(`swsync-deep-kill (seed ${seed}): ${round} kills, ${inside} inside an inc, ${deep} more than ${SW_CAP} timeline records deep`);
    expect(deep, 'kills in the window under test').toBeGreaterThan(KILLS / 10);
  }, 300_000);
});

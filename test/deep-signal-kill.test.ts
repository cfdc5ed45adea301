/**
 * Kill window of signals nested deeper than the signal records (docs/architecture.md, "Kill
 * safety": signal records). A callback that signals another fence nests that signal inside its
 * own; before deeper signals were deferred (SIGNAL_INLINE, runRecorded in src/fence/signal.ts), a
 * signal nested deeper than the records ran its callbacks with no record at all, so a thread
 * terminated there lost what it had in hand: a list still on a signaled fence (never run), an array
 * child callback cut off after its node's free (the array never signaled, its reference kept), a
 * remote callback between its delivery reference and its push (the reference kept).
 *
 * A worker (test/fixtures/deep-signal-kill.ts) signals the first fence of chains whose every fence's
 * worker callback signals the next, DEPTH fences deep; every fence also carries the test's callbacks
 * and is the child of an array carrying more. It is terminated at seeded points. After each kill and
 * reap the test signals what the worker did not; then every array is signaled, each of the test's
 * callbacks ran exactly once, bounded waits end, and after the puts the arena is clean with its
 * bytes in use back to the baseline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, pendingCallbacks, setAutoDispatch } from '../src/index.js';
import { onReap, ReapStage } from '../src/arena/hooks.js';
import * as FL from '../src/fence/layout.js';
import { SK_CELLS, SK_STEPS } from './fixtures/signal-kill-cells.js';
import { adaptJitter, killRound, killTargets, moreKills, settleContainerRound, signalKillSetup } from './support/killloop.js';

const KILLS = 60;
const CHAINS = 40; // per round
const DEPTH = 9; // fences per chain: signals nest this deep, more than SIGNAL_INLINE
const CALLBACKS = 2; // the test's callbacks on each fence and on each array
const WAIT_MS = 10_000;

const targets = killTargets();
afterEach(() => {
  setAutoDispatch(true);
});

/*
 * Where the kills landed, read by a reap hook that runs before the SIGNALS stage: a dead thread
 * nested SIGNAL_INLINE or more signals deep (running the callbacks of a signal that deep, deferred
 * or not) was killed in the window under test.
 */
let deep = 0;
onReap(ReapStage.CALLBACKS, (arena, slot) => {
  if (slot !== arena.slot && arena.i32[arena.slotWord(slot) + FL.T_SIGNAL_DEPTH] >= FL.SIGNAL_INLINE) deep++;
});

/** One round's chains (DEPTH fences each, the test's callbacks on each) and the arrays over their fences. */
function chains(arena: Arena, rand: (n: number) => number) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  const fences: Fence[][] = [];
  const arrays: Fence[] = [];
  const counts: number[] = [];
  const count = (f: Fence): void => {
    for (let c = 0; c < CALLBACKS; c++) {
      const k = counts.push(0) - 1;
      f.addCallback(() => counts[k]++);
    }
  };
  for (let i = 0; i < CHAINS; i++) {
    const chain: Fence[] = [];
    for (let j = 0; j < DEPTH; j++) {
      // The array takes over one reference, the test keeps the other (to signal what the worker did not).
      const f = Fence.create(arena, { context: ctx, seqno: seqno++ }).get();
      const a = FenceArray.create(arena, [f], { context: Fence.contextAlloc(arena), seqno: 1 });
      count(a); // enables the array's signaling: its child callback goes first on f's list
      count(f);
      chain.push(f);
      arrays.push(a);
    }
    fences.push(chain);
  }
  // A seeded order of chains (Fisher–Yates): which chain the kills meet varies with the seed.
  for (let i = fences.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [fences[i], fences[j]] = [fences[j], fences[i]];
  }
  return { fences, arrays, counts };
}

describe('threads terminated inside deeply nested signals', () => {
  it(`signals nested ${DEPTH} deep cut off at seeded points (at least ${KILLS} kills): every callback once, nothing leaks`, async () => {
    const { seed, rand, arena, baseline, cells } = signalKillSetup('deep-signal-kill-1', SK_CELLS);
    deep = 0;
    let delay = 300;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, deep > KILLS / 10, KILLS); round++) {
      const { fences, arrays, counts } = chains(arena, rand);
      const { at, done, errors } = await killRound(arena, 'deep-signal-kill', { buffer: arena.buffer, shared: cells.buffer, chains: fences.map((c) => c.map((f) => f.handle)) }, targets, cells, SK_STEPS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      delay = adaptJitter(delay, done, fences.length);
      // What the worker did not signal, the test does, each chain in order (the worker's callbacks
      // died with it): every array's count then reaches its end here or was finished by the reaper.
      await settleContainerRound(arena, fences.flat(), arrays, counts, baseline, `round ${round} (seed ${seed}, at ${at} done ${done})`, WAIT_MS);
    }
    expect(pendingCallbacks()).toBe(0);
    console.log(`deep-signal-kill (seed ${seed}): ${round} kills, ${inside} inside a signal, ${deep} nested ${FL.SIGNAL_INLINE} or more deep`);
    expect(deep, 'kills in the window under test').toBeGreaterThan(KILLS / 10);
  }, 300_000);
});

/**
 * Kill window of a fence array's child callback (docs/architecture.md, "Kill safety": container
 * callbacks). The callback (CB_ARRAY_CHILD) runs in the thread that signals the child and holds a
 * reference on the array. Before it recorded its progress in the signal record (SIG_SHARED), a
 * thread terminated after the callback node's free and before the drop of that reference lost the
 * call: the array's signal when its count had reached zero (the array's flag never set, its
 * callbacks never run) and the reference (the array and its children stay allocated).
 *
 * A worker (test/fixtures/signal-kill.ts, the signal-kill suite's) signals the children of arrays whose signaling the
 * test enabled, and is terminated at seeded points. After each kill and reap the test signals what
 * the worker did not; then every array is signaled (its flag set at once: nothing left to poll it
 * up), each of the test's callbacks ran exactly once, bounded waits end, and after the puts the
 * arena is clean with its bytes in use back to the baseline. (The chain's link callback got the
 * same treatment, see reapChainLink; its re-arm's walk is under test/chain-rearm-kill.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, pendingCallbacks, setAutoDispatch } from '../src/index.js';
import { onReap, ReapStage } from '../src/arena/hooks.js';
import * as A from '../src/arena/layout.js';
import * as FL from '../src/fence/layout.js';
import { SK_CELLS, SK_STEPS } from './fixtures/signal-kill-cells.js';
import { adaptJitter, killRound, killTargets, moreKills, settleContainerRound, signalKillSetup } from './support/killloop.js';

const KILLS = 60;
const ARRAYS = 300; // per round (see containers)
const CALLBACKS = 4; // main-thread callbacks on each container
const WAIT_MS = 10_000;

const targets = killTargets();
afterEach(() => {
  setAutoDispatch(true);
});

/*
 * What the kills hit, read by a reap hook that runs before the SIGNALS stage: a dead thread's signal
 * record whose shared handler was cut off after its node's free (the window under test), by handler.
 */
const cutOff = new Map<number, number>();
function countCutOff(arena: Arena, slot: number): void {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const n = Math.min(i32[b + FL.T_SIGNAL_DEPTH], FL.SIGNAL_CAP);
  for (let j = 0; j < n; j++) {
    const rec = b + FL.T_SIGNAL + j * FL.SIG_WORDS;
    const sh = i32[rec + FL.SIG_SHARED];
    const nw = i32[rec + FL.SIG_NODE];
    if (sh === 0 || nw === 0 || arena.isLive(nw - A.BLOCK_HEADER_WORDS, i32[rec + FL.SIG_NGEN])) continue;
    const id = sh & FL.SIG_HANDLER_MASK;
    cutOff.set(id, (cutOff.get(id) ?? 0) + 1);
  }
}
onReap(ReapStage.CALLBACKS, countCutOff);


/** One round's arrays, signaling enabled by the test's callbacks (CALLBACKS on each). */
function containers(arena: Arena, rand: (n: number) => number, arrays: number) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  // The array takes over one reference, the test keeps the other (to signal what the worker did not).
  const plain = (): Fence => Fence.create(arena, { context: ctx, seqno: seqno++ }).get();
  const leaves: Fence[] = []; // every child, for the worker to signal
  const tops: Fence[] = [];
  for (let i = 0; i < arrays; i++) {
    // Mostly one child: its callback's count is the last, and the array's signal (delivering the
    // test's callbacks) runs inside the window under test. One in three has two (every other of
    // those signaling on any): a count that is not the last, and one past the end.
    const cs = i % 3 === 2 ? [plain(), plain()] : [plain()];
    leaves.push(...cs);
    tops.push(FenceArray.create(arena, cs, { context: Fence.contextAlloc(arena), seqno: i + 1, signalOnAny: i % 6 === 5 }));
  }
  // A seeded order (Fisher–Yates), so the kills meet first and last counts.
  for (let i = leaves.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [leaves[i], leaves[j]] = [leaves[j], leaves[i]];
  }
  const counts = new Array<number>(tops.length * CALLBACKS).fill(0);
  tops.forEach((t, i) => {
    for (let c = 0; c < CALLBACKS; c++) t.addCallback(() => counts[i * CALLBACKS + c]++);
  });
  return { leaves, tops, counts };
}

describe('threads terminated inside container callbacks', () => {
  it(`array child callbacks cut off at seeded points (at least ${KILLS} kills): every array signaled once, nothing leaks`, async () => {
    const { seed, rand, arena, baseline, cells } = signalKillSetup('array-child-kill-1', SK_CELLS);
    cutOff.clear();
    let delay = 300;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, (cutOff.get(1) ?? 0) > KILLS / 10, KILLS); round++) {
      const { leaves, tops, counts } = containers(arena, rand, ARRAYS);
      const { at, done, errors } = await killRound(arena, 'signal-kill', { buffer: arena.buffer, shared: cells.buffer, handles: leaves.map((f) => f.handle) }, targets, cells, SK_STEPS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      delay = adaptJitter(delay, done, leaves.length);
      await settleContainerRound(arena, leaves, tops, counts, baseline, `round ${round} (seed ${seed}, at ${at} done ${done})`, WAIT_MS);
    }
    expect(pendingCallbacks()).toBe(0);
    const cut = cutOff.get(1) ?? 0; // CB_ARRAY_CHILD
    console.log(`array-child-kill (seed ${seed}): ${round} kills, ${inside} inside a signal, ${cut} in an array child callback after its node's free`);
    expect(cut, 'kills in the window under test').toBeGreaterThan(KILLS / 10);
  }, 240_000);
});

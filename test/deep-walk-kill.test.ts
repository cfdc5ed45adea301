/**
 * Kill window of chain walks nested deeper than the thread slot holds records for (WALK_CAP): a
 * walk's signaled-query signals a fence whose callback walks another chain, and so on, five deep
 * (test/fixtures/deep-walk-kill.ts). Each level's walk holds references on the links it stands on
 * and steps to; a thread terminated inside one must leave them named where its reaper finds them.
 *
 * After each kill and reap the test signals every fence: every chain then reads signaled, and
 * after the puts the arena is clean with its bytes in use back to the baseline.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceChain, defineFenceOps } from '../src/index.js';
import * as CL from '../src/containers/layout.js';
import { SK_CELLS, SK_STEPS } from './fixtures/signal-kill-cells.js';
import { countWalkHits } from './support/chainwalks.js';
import { expectClean } from './support/core.js';
import { adaptJitter, killRound, killSetup, killTargets, moreKills } from './support/killloop.js';

const KILLS = 50;
const GROUPS = 6; // nests per round: one worker step each
const DEPTH = 5; // chains per nest: walks nest this deep
const LONG = 150; // signaled links of the two innermost chains (where the walks spend their time)

const targets = killTargets();

// What the kills hit in the chain walk records (test/support/chainwalks.ts).
const hits = countWalkHits();
// In this thread the polled fences are pending until the test signals them.
const polledOps = defineFenceOps('deep-walk-kill', { getDriverName: () => 'deep-walk-kill', getTimelineName: () => 'nest', signaled: () => false });

/** One round's nests: per group DEPTH chains, each headed by a polled fence over signaled links. */
function nests(arena: Arena) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  const fences: Fence[] = []; // every link's fence (the test keeps a reference on each)
  const groups: Fence[][] = [];
  const polled: Fence[][] = [];
  for (let g = 0; g < GROUPS; g++) {
    const heads: Fence[] = [];
    const heads0: Fence[] = [];
    for (let k = 0; k < DEPTH; k++) {
      let head: Fence | null = null;
      const links = k >= DEPTH - 2 ? LONG : 1;
      for (let l = 0; l < links; l++) {
        const f = Fence.create(arena, { context: ctx, seqno: seqno++ });
        f.signal();
        fences.push(f);
        head = FenceChain.create(arena, head, f.get(), l + 1);
      }
      const p = Fence.create(arena, { context: ctx, seqno: seqno++, ops: polledOps });
      fences.push(p);
      heads0.push(p);
      heads.push(FenceChain.create(arena, head, p.get(), links + 1));
    }
    groups.push(heads);
    polled.push(heads0);
  }
  return { fences, groups, polled };
}

describe('threads terminated inside chain walks nested past the slot records', () => {
  it(`nested walks cut off at seeded points (at least ${KILLS} kills): every chain still reads signaled, nothing leaks`, async () => {
    const { seed, rand, arena, baseline, cells } = killSetup('deep-walk-kill-1', SK_CELLS, 16 << 20);
    hits.inWalk = hits.holding = hits.refs = hits.deep = 0;
    let delay = 300;
    let round = 0;
    for (; moreKills(round, hits.deep > KILLS / 5, KILLS); round++) {
      const { fences, groups, polled } = nests(arena);
      const data = {
        buffer: arena.buffer,
        shared: cells.buffer,
        groups: groups.map((g) => g.map((h) => h.handle)),
        polled: polled.map((g) => g.map((p) => p.handle)),
      };
      const { at, done, errors } = await killRound(arena, 'deep-walk-kill', data, targets, cells, SK_STEPS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      delay = adaptJitter(delay, done, GROUPS);
      for (const f of fences) if (!f.testSignaledFlag()) f.signal();
      const heads = groups.flat();
      const unsignaled = heads.flatMap((h, i) => (h.isSignaled() ? [] : [i]));
      expect(unsignaled, `round ${round} (seed ${seed}, at ${at} done ${done}): chains reading unsignaled`).toEqual([]);
      for (const f of [...heads, ...fences]) f.put();
      expect(arena.stats().used - baseline, `round ${round} (seed ${seed}, at ${at} done ${done}): bytes leaked`).toBe(0);
      expectClean(arena);
    }
    console.log(`deep-walk-kill (seed ${seed}): ${round} kills, ${hits.inWalk} inside a chain walk, ${hits.deep} deeper than ${CL.WALK_CAP} (${hits.refs} walk references named)`);
    expect(hits.deep, 'kills in walks past the slot records').toBeGreaterThan(KILLS / 5);
  }, 300_000);
});

/**
 * Kill window of the chain walks other than a re-arm's: a signaled-query (ops.signaled,
 * chainSignaled: walks from the head and collects signaled links) and a deadline
 * (ops.setDeadline, chainSetDeadline: walks every link still on the chain). Each takes a reference
 * on the link it stands on and on the predecessor it steps to (and, collecting, on that one's
 * predecessor). Before they were named in the thread's chain walk records (T_WALK, as a
 * re-arm's are), a thread terminated inside such a walk leaked them: the links stayed allocated.
 *
 * A worker (test/fixtures/chain-walk-kill.ts) queries and sets deadlines on long chains whose
 * newest links' fences are signaled (a seeded number per chain: the first query collects them),
 * and is terminated at seeded points. After each kill and reap the test signals every fence;
 * then each chain reads signaled, and after the puts the arena is clean with its bytes in use
 * back to the baseline.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceChain } from '../src/index.js';
import { SK_CELLS, SK_STEPS } from './fixtures/signal-kill-cells.js';
import { countWalkHits } from './support/chainwalks.js';
import { expectClean } from './support/core.js';
import { adaptJitter, killRound, killSetup, killTargets, moreKills } from './support/killloop.js';

const KILLS = 60;
const CHAINS = 16; // per round
const LINKS = 64; // per chain
const PASSES = 4; // walks of each chain by the worker (a query and a deadline each)

const targets = killTargets();

// What the kills hit in the chain walk records (test/support/chainwalks.ts).
const hits = countWalkHits();

/** One round's chains: LINKS links each, the fences of a seeded number of the newest signaled. */
function chains(arena: Arena, rand: (n: number) => number) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  const leaves: Fence[] = []; // every link's fence (the test keeps a reference on each)
  const heads: Fence[] = [];
  for (let i = 0; i < CHAINS; i++) {
    const signaledFrom = LINKS - rand(LINKS); // links [signaledFrom, LINKS) have signaled fences
    let head: Fence | null = null;
    for (let l = 0; l < LINKS; l++) {
      const f = Fence.create(arena, { context: ctx, seqno: seqno++ });
      if (l >= signaledFrom) f.signal();
      leaves.push(f);
      head = FenceChain.create(arena, head, f.get(), l + 1);
    }
    heads.push(head!);
  }
  return { leaves, heads };
}

describe('threads terminated inside a chain signaled-query or deadline walk', () => {
  it(`chain walks cut off at seeded points (at least ${KILLS} kills): every chain still reads signaled, nothing leaks`, async () => {
    const { seed, rand, arena, baseline, cells } = killSetup('chain-walk-kill-1', SK_CELLS, 16 << 20);
    hits.inWalk = hits.holding = hits.refs = 0;
    let delay = 300;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, hits.holding > KILLS / 10, KILLS); round++) {
      const { leaves, heads } = chains(arena, rand);
      const data = { buffer: arena.buffer, shared: cells.buffer, handles: heads.map((h) => h.handle), passes: PASSES };
      const { at, done, errors } = await killRound(arena, 'chain-walk-kill', data, targets, cells, SK_STEPS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      delay = adaptJitter(delay, done, heads.length * PASSES);
      for (const f of leaves) if (!f.testSignaledFlag()) f.signal();
      // The query walks every link still on the chain (and collects them all now).
      const unsignaled = heads.flatMap((h, i) => (h.isSignaled() ? [] : [i]));
      expect(unsignaled, `round ${round} (seed ${seed}, at ${at} done ${done}): chains reading unsignaled`).toEqual([]);
      for (const f of [...heads, ...leaves]) f.put();
      const leaked = arena.stats().used - baseline;
      expect(leaked, `round ${round} (seed ${seed}, at ${at} done ${done}): bytes leaked`).toBe(0);
      expectClean(arena);
    }
    console.log(
      `chain-walk-kill (seed ${seed}): ${round} kills, ${inside} inside a step, ${hits.inWalk} inside a chain walk ` +
        `(${hits.holding} holding walk references, ${hits.refs} references in all)`,
    );
    expect(hits.holding, 'kills in the window under test').toBeGreaterThan(KILLS / 10);
  }, 400_000);
});

/**
 * Kill window of a fence chain's re-arm (docs/architecture.md, "Kill safety": container
 * callbacks). The chain's link callback (CB_CHAIN_LINK) runs in the thread that signals the armed
 * link's fence and re-arms the chain: it walks from the head down, collecting signaled links, and
 * arms a new callback on the first unsignaled fence (armChain). That walk holds fence references
 * of its own — on the link it stands on, on the predecessor it took, on a collected link's
 * predecessor, on the chain for the callback it is arming. Before they were named in the thread's
 * chain walk records (T_WALK), a thread terminated inside the walk lost them: the chain still
 * signaled (its reaper re-arms from the start), but the links those references held stayed
 * allocated.
 *
 * A worker (test/fixtures/signal-kill.ts) signals, in a seeded order, the fences of the links of
 * chains whose signaling the test enabled — so the chains' re-arms run in its callbacks — and is
 * terminated at seeded points. After each kill and reap the test signals what the worker did not;
 * then every chain is signaled (its flag up at once: nothing left to poll it up), each of the
 * test's callbacks ran exactly once, bounded waits end, and after the puts the arena is clean
 * with its bytes in use back to the baseline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceChain, pendingCallbacks, setAutoDispatch } from '../src/index.js';
import { SK_CELLS, SK_STEPS } from './fixtures/signal-kill-cells.js';
import { countWalkHits } from './support/chainwalks.js';
import { adaptJitter, killRound, killTargets, moreKills, settleContainerRound, signalKillSetup } from './support/killloop.js';

const KILLS = 60;
const CHAINS = 80; // per round
const LINKS = 5; // per chain
const CALLBACKS = 4; // main-thread callbacks on each chain
const WAIT_MS = 10_000;

const targets = killTargets();
afterEach(() => {
  setAutoDispatch(true);
});

// What the kills hit in the chain walk records (test/support/chainwalks.ts).
const hits = countWalkHits();

/** One round's chains, signaling enabled by the test's callbacks (CALLBACKS on each head). */
function chains(arena: Arena, rand: (n: number) => number) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  // The link takes over one reference, the test keeps the other (to signal what the worker did not).
  const plain = (): Fence => Fence.create(arena, { context: ctx, seqno: seqno++ }).get();
  const leaves: Fence[] = []; // every link's fence, for the worker to signal
  const heads: Fence[] = [];
  for (let i = 0; i < CHAINS; i++) {
    let head: Fence | null = null;
    for (let l = 0; l < LINKS; l++) {
      const f = plain();
      leaves.push(f);
      head = FenceChain.create(arena, head, f, l + 1);
    }
    heads.push(head!);
  }
  // A seeded order (Fisher–Yates): the armed fence signals early or late, so the re-arms' walks
  // meet signaled links to collect, and unsignaled ones to arm on, at every depth.
  for (let i = leaves.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [leaves[i], leaves[j]] = [leaves[j], leaves[i]];
  }
  const counts = new Array<number>(heads.length * CALLBACKS).fill(0);
  heads.forEach((h, i) => {
    for (let c = 0; c < CALLBACKS; c++) h.addCallback(() => counts[i * CALLBACKS + c]++);
  });
  return { leaves, heads, counts };
}

describe('threads terminated inside a chain re-arm', () => {
  it(`chain re-arms cut off at seeded points (at least ${KILLS} kills): every chain signaled once, nothing leaks`, async () => {
    const { seed, rand, arena, baseline, cells } = signalKillSetup('chain-rearm-kill-1', SK_CELLS);
    hits.inWalk = hits.holding = hits.refs = 0;
    let delay = 300;
    let inside = 0;
    let round = 0;
    for (; moreKills(round, hits.holding > KILLS / 10, KILLS); round++) {
      const { leaves, heads, counts } = chains(arena, rand);
      const { at, done, errors } = await killRound(arena, 'signal-kill', { buffer: arena.buffer, shared: cells.buffer, handles: leaves.map((f) => f.handle) }, targets, cells, SK_STEPS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      delay = adaptJitter(delay, done, leaves.length);
      await settleContainerRound(arena, leaves, heads, counts, baseline, `round ${round} (seed ${seed}, at ${at} done ${done})`, WAIT_MS);
    }
    expect(pendingCallbacks()).toBe(0);
    console.log(
      `chain-rearm-kill (seed ${seed}): ${round} kills, ${inside} inside a signal, ${hits.inWalk} inside a re-arm's walk ` +
        `(${hits.holding} holding walk references, ${hits.refs} references in all)`,
    );
    expect(hits.holding, 'kills in the window under test').toBeGreaterThan(KILLS / 10);
  }, 400_000);
});

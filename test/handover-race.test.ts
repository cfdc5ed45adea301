/**
 * A stale token never claims the newer record that reused its block. A worker receives each
 * token the parent publishes while the parent races it: withdraws the same token at once and
 * shares again on another fence, which takes the block the won withdrawal just freed (the top of
 * the thread's cache). Before the fix, a receive that had resolved the old token read the block's
 * generation after that and claimed the new share: the worker got the other fence, and the
 * parent's withdrawal of a token it never published failed. Exact invariants: nothing stolen,
 * every unpublished share withdrawn, references and bytes back where they were. How often the
 * window is hit depends on scheduling (with the old read, 29 and 71 receives of 5,000 and 20,000
 * rounds on a quiet machine got the newer share; on a loaded one the withdrawal may never win),
 * so the test asserts only what holds in every interleaving.
 */
import { Worker } from 'node:worker_threads';
import { expect, it } from 'vitest';
import { Arena, Fence, ledgerCompact } from '../src/index.js';
import { seededInt, testSeed } from './fixtures/seeded.js';
import { CELL_EMPTY, CELL_FULL, RACE_STOLEN, RACE_STOP, raceViews } from './fixtures/handover-cells.js';
import { expectClean, fixture, WORKER_WAIT_MS } from './support/core.js';

/** Rounds at most, and the wall time they may take: on a loaded machine each hand-off waits for a time slice. */
const ROUNDS = 5_000;
const BUDGET_MS = 4_000;

/** Spins until `state[0]` leaves (`away` true) or reaches `value`; throws past `deadline`. */
function await0(state: Int32Array, value: number, away: boolean, deadline: number): void {
  while ((Atomics.load(state, 0) === value) === away) if (performance.now() > deadline) throw new Error('the receiver stalled');
}

it(`a stale token claims nothing: up to ${ROUNDS} receives raced by a withdrawal and a new share of the freed block`, async () => {
  const arena = Arena.create({ bytes: 4 << 20 });
  const context = Fence.contextAlloc(arena);
  const a = Fence.create(arena, { context, seqno: 1 });
  const b = Fence.create(arena, { context, seqno: 2 });
  const baseline = arena.stats().used;
  const cell = new SharedArrayBuffer(16);
  const { state, token } = raceViews(cell);
  const w = new Worker(fixture('handover-race'), { workerData: { buffer: arena.buffer, cell, expected: a.handle } });
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  arena.watch(w);
  const messages: { type: string; message?: string }[] = [];
  const looping = new Promise<void>((resolve, reject) => {
    w.on('message', (m) => {
      messages.push(m);
      if (m.type === 'looping') resolve();
    });
    w.once('error', reject);
  });
  await looping;
  const rand = seededInt(testSeed('handover-race'));
  const start = performance.now();
  let lost = 0;
  try {
    for (let r = 0; r < ROUNDS && performance.now() - start < BUDGET_MS; r++) {
      const deadline = performance.now() + WORKER_WAIT_MS;
      token[0] = a.share();
      Atomics.store(state, 0, CELL_FULL);
      await0(state, CELL_FULL, true, deadline); // taken: the receive is under way
      for (let s = rand(16); s > 0; s--) Atomics.load(state, 0); // varies where in it we land
      Fence.withdraw(arena, token[0]); // races the claim: either may win
      const unpublished = b.share(); // after a won withdrawal: the block just freed
      await0(state, CELL_EMPTY, false, deadline);
      if (!Fence.withdraw(arena, unpublished)) lost++;
    }
  } catch (e) {
    await w.terminate(); // a stalled receiver spins forever
    throw e;
  }
  Atomics.store(state, 0, RACE_STOP); // read at the top of its loop, where it is now (the cell is EMPTY)
  await exited;
  expect(messages.filter((m) => m.type === 'error')).toEqual([]);
  expect(state[RACE_STOLEN], 'receives that got the newer share').toBe(0);
  expect(lost, 'unpublished shares not withdrawable').toBe(0);
  expect(a.refcount).toBe(1);
  expect(b.refcount).toBe(1);
  expect(ledgerCompact(arena)).toBe(0);
  expect(arena.stats().used).toBe(baseline);
  for (const f of [a, b]) {
    f.signal();
    f.put();
  }
  expectClean(arena);
}, 120_000);

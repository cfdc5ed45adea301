/**
 * Container work queued by a thread whose arena is full: an array's signal and a chain's re-arm
 * are queued in the thread's container work list, through the containers' own words (K_WORK), so
 * queuing needs no memory and nothing is lost however full the arena is; a child drop under the
 * child's lock that is not its last reference is done at once. Before, each queued item needed a
 * ledger entry, and with no room for one (ENOMEM) it was queued unrecorded: a death lost it (the
 * array never signaled, the chain never re-armed, their references leaked).
 *
 * A worker (test/fixtures/container-work-enomem.ts) fills the arena until its ledger cannot even
 * be created, then does what queues the work. 'run': it frees what it filled and its queue runs.
 * 'kill': it is terminated with the work still queued, and its reaper runs it.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain } from '../src/index.js';
import { expectClean } from './support/core.js';
import { type KillMsg, KillTarget, killTargets } from './support/killloop.js';

const targets = killTargets();

const LINKS = 4;

/** The fences a run needs; the test keeps one reference on each but pairArray (handed to the worker). */
function setup(arena: Arena) {
  const ctx = Fence.contextAlloc(arena);
  let seqno = 1;
  const plain = (): Fence => Fence.create(arena, { context: ctx, seqno: seqno++ });
  const child = plain();
  const array = FenceArray.create(arena, [child.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
  array.enableSignaling(); // arms the child callback
  const leaves: Fence[] = [];
  let chain: Fence | null = null;
  for (let l = 0; l < LINKS; l++) {
    const f = plain();
    leaves.push(f);
    chain = FenceChain.create(arena, chain, f.get(), l + 1);
  }
  chain!.enableSignaling(); // arms the chain callback on the head's fence (the newest)
  const held = plain();
  const x = plain();
  const pairArray = FenceArray.create(arena, [x.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
  return { child, array, leaves, chain: chain!, armed: leaves[LINKS - 1], held, x, pairArray };
}

async function start(arena: Arena, mode: 'run' | 'kill') {
  const s = setup(arena);
  const data = {
    buffer: arena.buffer, mode, array: s.array.handle, child: s.child.handle, chain: s.chain.handle, armed: s.armed.handle,
    held: s.held.handle, pairArray: s.pairArray.handle, x: s.x.handle,
  };
  const k = new KillTarget(arena, 'container-work-enomem', data);
  targets.push(k);
  // Listened for from the start: 'ran' may come right after 'ready'.
  const ran = new Promise<KillMsg>((resolve) => k.worker.on('message', (m: KillMsg) => m.type === 'ran' && resolve(m)));
  const ready = await k.ready;
  expect(k.errors).toEqual([]);
  return { s, k, ready, ran };
}

/** What the worker saw with the arena full: its ledger could not grow, both items listed, x dropped. */
function expectQueuedWithoutMemory(ready: KillMsg): void {
  expect(ready.filled as number).toBeGreaterThan(0);
  expect(ready.ledgerGrow).toBe('ENOMEM');
  expect(ready.listed).toBe(2); // the array's signal and the chain's re-arm
  expect(ready.queued).toBe(2);
  expect(ready.arraySignaled).toBe(false);
  expect(ready.chainSignaled).toBe(false);
  expect(ready.xRefs).toBe(1); // the array's drop of x (not the last) done at once
}

/** Signals what is left, checks both containers signaled, puts everything: nothing leaks. */
function finish(arena: Arena, s: ReturnType<typeof setup>, baseline: number): void {
  for (const f of s.leaves) f.signal();
  s.held.signal();
  s.x.signal();
  expect(s.array.testSignaledFlag()).toBe(true);
  expect(s.chain.isSignaled()).toBe(true);
  for (const f of [s.child, s.array, s.chain, s.held, s.x, ...s.leaves]) f.put();
  expect(arena.stats().used - baseline).toBe(0);
  expectClean(arena);
}

describe('container work queued with the arena full', () => {
  it('is queued without memory and runs once the thread holds no lock', async () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const baseline = arena.stats().used;
    const { s, k, ready, ran } = await start(arena, 'run');
    expectQueuedWithoutMemory(ready);
    expect(await ran).toMatchObject({ listed: 0, queued: 0, arraySignaled: true });
    await k.kill(0);
    expect(k.errors).toEqual([]);
    finish(arena, s, baseline);
  });

  it('is finished by the reaper of a thread terminated before its queue ran: nothing lost, nothing leaked', async () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const baseline = arena.stats().used;
    const { s, k, ready } = await start(arena, 'kill');
    expectQueuedWithoutMemory(ready);
    // The chain's other fences signal first, so the reaper's re-arm finds nothing left to arm on
    // (arming allocates a callback node, and the dead worker's blocks fill the arena until its
    // reap ends): it signals the chain.
    for (const f of s.leaves) if (f !== s.armed) f.signal();
    await k.kill(0);
    expect(k.errors).toEqual([]);
    expect(s.array.testSignaledFlag()).toBe(true); // the reaper ran the array's signal
    expect(s.chain.testSignaledFlag()).toBe(true); // …and the chain's re-arm, which signaled it
    finish(arena, s, baseline);
  });
});

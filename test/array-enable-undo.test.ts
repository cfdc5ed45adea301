/**
 * An enable of a container's signaling that fails loses nothing. A fence array arms one callback
 * per child; an arming refused part way (a child lock the caller holds, no memory for a callback
 * node, a child's own op throwing) used to leave the array flagged enabled with only the first
 * children armed: it never signaled, and every later wait on it hung. Now a child lock the caller
 * holds is refused (EDEADLK) before anything is armed; any other failure keeps the children armed
 * so far, undoes the enable, and the next enable arms the rest — each child exactly once. A waiter
 * that relied on the undone enable (another thread's) is woken and enables signaling itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain, FenceError, defineFenceOps } from '../src/index.js';
import * as FL from '../src/fence/layout.js';
import * as CL from '../src/containers/layout.js';
import { BLOCK_HEADER_BYTES } from '../src/arena/layout.js';
import { TestWorker, WORKER_WAIT_MS, expectClean, rejects } from './support/core.js';

const workers: TestWorker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.worker.terminate()));
});

/** An arena, `n` plain fences and an array holding a reference on each (the test keeps its own). */
function setup(n: number, opts: { signalOnAny?: boolean } = {}) {
  const arena = Arena.create({ bytes: 1 << 20 });
  const ctx = Fence.contextAlloc(arena);
  const children = Array.from({ length: n }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
  const array = FenceArray.create(arena, children.map((c) => c.get()), { context: Fence.contextAlloc(arena), seqno: 1, ...opts });
  return { arena, children, array };
}

/** Callback nodes on fence `f`'s list. */
function callbacksOn(f: Fence): number {
  const i32 = f.arena.i32;
  let count = 0;
  for (let nw = i32[f.fw + FL.F_CB_HEAD]; nw !== 0; nw = i32[nw + FL.CB_NEXT]) count++;
  return count;
}

function enabled(f: Fence): boolean {
  return (Atomics.load(f.arena.i32, f.fw + FL.F_FLAGS) & FL.FLAG_ENABLE_SIGNAL) !== 0;
}

/** The array's count of children still to signal. */
function pending(array: Fence): number {
  return array.arena.i32[array.fw + CL.A_PENDING];
}

/** Signals every child, checks the array signaled with its count at exactly zero (and `ran`'s callback ran once), puts everything. */
function finish(arena: Arena, children: Fence[], array: Fence, ran?: () => number): void {
  for (const c of children) if (!c.isSignaled()) c.signal();
  expect(array.wait(WORKER_WAIT_MS)).toBe(true);
  expect(pending(array)).toBe(0);
  if (ran) expect(ran()).toBe(1);
  for (const f of [array, ...children]) f.put();
  expectClean(arena);
}

/** Allocates raw blocks of `bytes` until none fits; returns their handles. */
function fill(arena: Arena, bytes: number): number[] {
  const out: number[] = [];
  for (;;) {
    try {
      out.push(arena.alloc(bytes));
    } catch (e) {
      if (e instanceof FenceError && e.code === 'ENOMEM') return out;
      throw e;
    }
  }
}

/** Bytes of a raw block in the callback node's size class. */
const NODE_BYTES = FL.CB_WORDS * 4;

/** Leaves room for exactly `nodes` callback nodes; returns what to free afterwards. */
function roomFor(arena: Arena, nodes: number): number[] {
  const kept = Array.from({ length: nodes }, () => arena.alloc(NODE_BYTES));
  const filled = [...fill(arena, 1024 - BLOCK_HEADER_BYTES), ...fill(arena, NODE_BYTES), ...fill(arena, 8)];
  for (const h of kept) arena.free(h);
  return filled;
}

const ENABLES: [string, (a: Fence) => unknown][] = [
  ['wait(20)', (a) => a.wait(20)],
  ['enableSignaling()', (a) => a.enableSignaling()],
  ['addCallback(fn)', (a) => a.addCallback(() => {})],
  ['Fence.waitAny([array], 20)', (a) => Fence.waitAny([a], 20)],
];

describe('a fence array enable refused because the caller holds a child lock', () => {
  for (const [name, call] of ENABLES) {
    it(`${name} is EDEADLK with nothing armed; after the unlock the array signals`, () => {
      const { arena, children, array } = setup(3);
      children[2].lock();
      rejects(arena, () => call(array), 'EDEADLK');
      expect(children.map(callbacksOn)).toEqual([0, 0, 0]);
      expect(enabled(array)).toBe(false);
      children[2].unlock();
      let ran = 0;
      expect(array.addCallback(() => ran++)).not.toBeNull();
      expect(children.map(callbacksOn)).toEqual([1, 1, 1]);
      finish(arena, children, array, () => ran);
    });
  }

  it('a chain over the array: its enable is refused and undone too', () => {
    const { arena, children, array } = setup(2);
    const chain = FenceChain.create(arena, null, array.get(), 1);
    children[1].lock();
    rejects(arena, () => chain.wait(20), 'EDEADLK');
    expect(enabled(chain)).toBe(false);
    expect(enabled(array)).toBe(false);
    expect(callbacksOn(array)).toBe(0);
    children[1].unlock();
    chain.enableSignaling();
    expect(children.map(callbacksOn)).toEqual([1, 1]);
    for (const c of children) c.signal();
    expect(chain.wait(WORKER_WAIT_MS)).toBe(true);
    chain.put();
    finish(arena, children, array);
  });

  it('a chain whose link fence the caller holds: EDEADLK, undone, then it signals', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const chain = FenceChain.create(arena, null, f.get(), 1);
    f.lock();
    rejects(arena, () => chain.enableSignaling(), 'EDEADLK');
    expect(enabled(chain)).toBe(false);
    f.unlock();
    let ran = 0;
    chain.addCallback(() => ran++);
    f.signal();
    expect(ran).toBe(1);
    for (const x of [chain, f]) x.put();
    expectClean(arena);
  });
});

describe('a fence array arming that runs out of memory part way', () => {
  it('keeps the children armed so far; the next enable arms the rest, each child once', () => {
    const { arena, children, array } = setup(4);
    const filled = roomFor(arena, 2);
    rejects(arena, () => array.enableSignaling(), 'ENOMEM');
    expect(children.map(callbacksOn)).toEqual([1, 1, 0, 0]);
    expect(enabled(array)).toBe(false);
    // An armed child signaling before the rest are armed is counted once, by its callback.
    children[0].signal();
    expect(pending(array)).toBe(3);
    expect(array.isSignaled()).toBe(false);
    rejects(arena, () => array.wait(20), 'ENOMEM'); // still no room: refused again, nothing lost
    for (const h of filled) arena.free(h);
    let ran = 0;
    array.addCallback(() => ran++);
    expect(children.map(callbacksOn)).toEqual([0, 1, 1, 1]);
    finish(arena, children, array, () => ran);
  });

  it('signal-on-any: a child signaled while the rest are unarmed signals the array', () => {
    const { arena, children, array } = setup(3, { signalOnAny: true });
    const filled = roomFor(arena, 1);
    rejects(arena, () => array.wait(20), 'ENOMEM');
    expect(children.map(callbacksOn)).toEqual([1, 0, 0]);
    children[0].signal();
    expect(array.testSignaledFlag()).toBe(true);
    for (const h of filled) arena.free(h);
    finish(arena, children, array);
  });

  it('a chain with no room for its callback: ENOMEM, undone, then it signals', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const chain = FenceChain.create(arena, null, f.get(), 1);
    const filled = roomFor(arena, 0);
    rejects(arena, () => chain.enableSignaling(), 'ENOMEM');
    expect(enabled(chain)).toBe(false);
    for (const h of filled) arena.free(h);
    f.signal();
    expect(chain.wait(WORKER_WAIT_MS)).toBe(true);
    for (const x of [chain, f]) x.put();
    expectClean(arena);
  });
});

describe("a waiter relying on another thread's enable that is undone", () => {
  it('is woken and arms the array itself: its wait ends when the children signal', async () => {
    const gate = new Int32Array(new SharedArrayBuffer(8));
    let calls = 0;
    const arena = Arena.create({ bytes: 1 << 20 });
    // Child 1's op, in this thread: the first call holds the enable until the worker sleeps on the
    // array, then throws; the worker's registration of the same name accepts.
    const ops = defineFenceOps('test:undo-ops', {
      getDriverName: () => 'undo',
      getTimelineName: () => 'main',
      enableSignaling: () => {
        if (calls++ > 0) return true;
        const end = Date.now() + WORKER_WAIT_MS;
        while (!(Atomics.load(arena.i32, array.fw + FL.F_FLAGS) & FL.FLAG_WAITERS) && Date.now() < end) Atomics.wait(gate, 0, 0, 1);
        throw new Error('refused once');
      },
    });
    const ctx = Fence.contextAlloc(arena);
    const children = [
      Fence.create(arena, { context: ctx, seqno: 1 }),
      Fence.create(arena, { context: ctx, seqno: 2, ops }),
      Fence.create(arena, { context: ctx, seqno: 3 }),
    ];
    const array = FenceArray.create(arena, children.map((c) => c.get()), { context: Fence.contextAlloc(arena), seqno: 1 });
    const w = new TestWorker('array-undo-wait', { buffer: arena.buffer, handle: array.get().handle, gate: gate.buffer, timeoutMs: WORKER_WAIT_MS });
    workers.push(w);
    // This thread's enable sets the flag, arms child 0, and is held in child 1's op until the
    // worker (which found the flag up) sleeps on the array; then the op throws.
    expect(() => array.enableSignaling()).toThrow('refused once');
    expect(Atomics.load(gate, 0)).toBe(1);
    // The worker's wait re-enables in the worker: child 1's op there accepts, children 1 and 2 are armed.
    await expect.poll(() => children.map(callbacksOn), { timeout: WORKER_WAIT_MS }).toEqual([1, 1, 1]);
    expect(Atomics.load(gate, 1)).toBe(1);
    expect(calls).toBe(1);
    for (const c of children) c.signal();
    expect((await w.next('waited')).ok).toBe(true);
    expect(await w.exited()).toBe(0);
    finish(arena, children, array);
  });
});

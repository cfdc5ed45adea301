/**
 * The lock-order checker (sanitize mode): an order between two lock classes that some thread took
 * the other way round is reported before the acquisition waits, with both call sites — in one
 * thread, across real workers (by a hand-off, and with both threads holding their first lock at
 * once), and never for a container's child taken under the container. Without sanitize nothing is
 * recorded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain, FenceError, LockOrderError, lockOrderCount, lockOrderReports, SpinLock } from '../src/index.js';
import { expectClean, TestWorker } from './support/core.js';

const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

function fence(arena: Arena): Fence {
  return Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
}

/** Runs `fn`, which must throw a LockOrderError; returns it. */
function inversion(fn: () => void): LockOrderError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LockOrderError);
    expect((e as FenceError).code).toBe('EDEADLK');
    return e as LockOrderError;
  }
  throw new Error('no lock-order inversion was reported');
}

function takeAThenB(a: { lock(): boolean; unlock(): void }, b: { lock(): boolean; unlock(): void }): void {
  a.lock();
  try {
    b.lock();
    b.unlock();
  } finally {
    a.unlock();
  }
}

describe('lock-order checker (sanitize)', () => {
  it('one thread, A then B, later B then A: reported before taking A, with both call sites; nothing taken; reported again', () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const a = fence(arena);
    const b = fence(arena);
    takeAThenB(a, b);
    function takeBThenA(): void {
      b.lock();
      try {
        a.lock();
      } finally {
        b.unlock();
      }
    }
    const e = inversion(takeBThenA);
    expect(e.report.holding).toBe(`fence context ${b.context}`);
    expect(e.report.acquiring).toBe(`fence context ${a.context}`);
    expect(e.report.stack).toContain('takeBThenA');
    expect(e.report.previous).toHaveLength(1);
    expect(e.report.previous[0]).toMatchObject({ holding: `fence context ${a.context}`, acquiring: `fence context ${b.context}`, thread: arena.slot });
    expect(e.report.previous[0].stack).toContain('takeAThenB');
    expect(e.message).toContain('lock order inversion');
    expect(() => a.assertHeld()).toThrow(/EPERM/); // refused before it was taken
    expect(() => b.assertHeld()).toThrow(/EPERM/);
    expect(lockOrderCount(arena)).toBe(1);
    // The recorded order stays; the inverted one is reported every time it is taken.
    inversion(takeBThenA);
    takeAThenB(a, b);
    expect(lockOrderCount(arena)).toBe(2);
    a.put();
    b.put();
    expectClean(arena);
  });

  it('a chain of orders (A→B, B→C, then C→A) and SpinLocks: the whole path is reported', () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const a = SpinLock.create(arena);
    const b = fence(arena);
    const c = SpinLock.create(arena);
    takeAThenB(a, b);
    takeAThenB(b, c);
    const e = inversion(() => {
      c.lock();
      try {
        a.lock();
      } finally {
        c.unlock();
      }
    });
    expect(e.report.holding).toBe(`lock word @${c.index * 4}`);
    expect(e.report.previous.map((p) => [p.holding, p.acquiring])).toEqual([
      [`lock word @${a.index * 4}`, `fence context ${b.context}`],
      [`fence context ${b.context}`, `lock word @${c.index * 4}`],
    ]);
    // A tryLock never waits, so taking A that way orders nothing.
    c.lock();
    expect(a.tryLock()).toBe(true);
    a.unlock();
    c.unlock();
    expect(lockOrderCount(arena)).toBe(1);
    b.put();
    a.free();
    c.free();
    expectClean(arena);
  });

  it('a borrowed fence lock is the class of the lent word: the SpinLock at that word', () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const lender = arena.alloc(16);
    const lent = SpinLock.at(arena, lender, 0);
    const borrower = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lent });
    const other = fence(arena);
    takeAThenB(borrower, other);
    const e = inversion(() => {
      other.lock();
      try {
        lent.lock();
      } finally {
        other.unlock();
      }
    });
    expect(e.report.acquiring).toBe(`lock word @${lent.index * 4}`);
    borrower.put();
    other.put();
    arena.free(lender);
    expectClean(arena);
  });

  it("counting mode ('count'): the inversion is recorded and the acquisition goes on", () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: 'count' });
    const a = fence(arena);
    const b = fence(arena);
    takeAThenB(a, b);
    takeAThenB(b, a);
    expect(lockOrderCount(arena)).toBe(1);
    expect(lockOrderReports(arena)).toHaveLength(1);
    expect(lockOrderReports(arena)[0].acquiring).toBe(`fence context ${a.context}`);
    a.put();
    b.put();
    expectClean(arena);
  });

  it('an inline lock found held by another thread is waited for and listed once: the orders taken after it are its own', async () => {
    // Fence.lock records a lock on an empty held list before its compare-exchange and takes the
    // record back when the word is held; a record left behind would make the next lock look nested in it.
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const [f, g] = [fence(arena), fence(arena)];
    const holder = new TestWorker('lock-holder', { buffer: arena.buffer });
    workers.push(holder);
    await holder.next('ready', 60_000);
    await holder.ask({ type: 'lockFence', handle: f.handle, untilWaited: true }, 'locked', 60_000);
    expect(f.lock()).toBe(true); // the word is held: this waits, and the worker drops it once it sees the wait
    f.unlock();
    await holder.next('unlocked', 60_000);
    takeAThenB(g, f); // g → f: nothing held before g, so no order with a stale f
    expect(lockOrderCount(arena)).toBe(0);
    inversion(() => takeAThenB(f, g)); // f → g against g → f
    expect(lockOrderCount(arena)).toBe(1);
    await holder.ask({ type: 'exit' }, 'bye', 60_000);
    f.put();
    g.put();
    expectClean(arena);
  });

  it('across threads: a worker took A then B; the main thread taking B then A is told, with the worker\'s call site', async () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const a = fence(arena);
    const b = SpinLock.create(arena);
    const gate = new SharedArrayBuffer(4);
    const w = new TestWorker('lockdep-order', { buffer: arena.buffer, gate });
    workers.push(w);
    const { slot } = await w.next('ready', 60_000);
    // The worker finishes its A → B before the main thread starts: no deadlock could happen this
    // time, and the inversion is reported anyway.
    const done = await w.ask({ type: 'order', first: { kind: 'fence', ref: a.handle }, second: { kind: 'lock', ref: b.ref } }, 'ordered', 60_000);
    expect(done.code).toBeNull();
    const e = inversion(() => {
      b.lock();
      try {
        a.lock();
      } finally {
        b.unlock();
      }
    });
    expect(e.report.thread).toBe(arena.slot);
    expect(e.report.previous[0].thread).toBe(slot);
    expect(e.report.previous[0].stack).toContain('lockdep-order');
    await w.ask({ type: 'exit' }, 'bye', 60_000);
    a.put();
    b.free();
    expectClean(arena);
  });

  it('across threads, both holding their first lock at once (A then B against B then A): reported, nobody deadlocks', async () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const ROUNDS = 5;
    for (let round = 0; round < ROUNDS; round++) {
      const g = new Int32Array(new SharedArrayBuffer(4));
      const worker = new TestWorker('lockdep-order', { buffer: arena.buffer, gate: g.buffer });
      workers.push(worker);
      await worker.next('ready', 60_000);
      const a = fence(arena);
      const b = fence(arena);
      // Both take their first lock, meet at the gate, then each asks for the other's: the classic
      // ABBA, by construction. Whoever reports drops its lock, and the other gets it.
      const reply = worker.ask({ type: 'race', first: { kind: 'fence', ref: b.handle }, second: { kind: 'fence', ref: a.handle } }, 'raced', 120_000);
      a.lock();
      let mine: LockOrderError | null = null;
      try {
        Atomics.add(g, 0, 1);
        Atomics.notify(g, 0);
        for (let v; (v = Atomics.load(g, 0)) < 2; ) expect(Atomics.wait(g, 0, v, 60_000)).not.toBe('timed-out');
        try {
          expect(b.lock(60_000)).toBe(true);
          b.unlock();
        } catch (e) {
          if (!(e instanceof LockOrderError)) throw e;
          mine = e;
        }
      } finally {
        a.unlock();
      }
      const theirs = await reply;
      expect(mine !== null || theirs.code === 'EDEADLK', `round ${round}: nobody was told`).toBe(true);
      await worker.ask({ type: 'exit' }, 'bye', 60_000);
      a.put();
      b.put();
    }
    expect(lockOrderCount(arena)).toBeGreaterThanOrEqual(ROUNDS);
    expectClean(arena);
  });

  it("a container's child taken under the container's lock is nested, not an inversion; another fence of the child's context is", () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const child = fence(arena);
    const sibling = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const array = FenceArray.create(arena, [child.get(), sibling.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    array.addCallback(() => {}); // arms the array's callbacks on its children
    // The library's own order: a child signaled under its lock signals the array from its
    // callback, under the child's lock (child → array).
    sibling.signal();
    child.withLock(() => child.signalLocked());
    expect(array.isSignaled()).toBe(true);
    // The container's order: its child under its lock. Nested: no inversion.
    takeAThenB(array, child);
    // A fence of the child's context that is not the array's child is an ordinary order: inverted.
    const stranger = Fence.create(arena, { context: child.context, seqno: 2 });
    const e = inversion(() => takeAThenB(array, stranger));
    expect(e.report.holding).toBe(`fence context ${array.context}`);
    expect(e.report.acquiring).toBe(`fence context ${child.context}`);
    // A chain link's fence under the link's lock: nested too.
    const link = FenceChain.create(arena, null, stranger.get(), 1);
    takeAThenB(stranger, link); // fence → link (as the chain's callback path may)
    takeAThenB(link, stranger); // link → its own fence: nested
    expect(lockOrderCount(arena)).toBe(1);
    for (const f of [link, stranger, array, sibling, child]) f.put();
    expectClean(arena);
  });

  it('without sanitize nothing is recorded and the inverted order simply runs', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    expect(arena.sanitizerArea).toBe(0);
    const a = fence(arena);
    const b = fence(arena);
    takeAThenB(a, b);
    takeAThenB(b, a);
    expect(lockOrderCount(arena)).toBe(0);
    expect(lockOrderReports(arena)).toEqual([]);
    a.put();
    b.put();
    expectClean(arena);
  });
});

/**
 * Ticket-lock recovery, one state at a time: a ticket taken by a thread that never takes its turn
 * — terminated while it waits (in the middle or last in the queue), terminated at its very turn
 * before writing its owner id (the reported stuck word: next = serving + 1, owner 0), or timed
 * out with others behind it — is passed over or handed back, so the lock keeps working and a
 * waiter's timeout is kept. Plus lock words of random bytes, for every kind: no call hangs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceError, LOCK_KINDS, SpinLock, type LockKind } from '../src/index.js';
import * as FL from '../src/fence/layout.js';
import * as K from '../src/locks/layout.js';
import { heldLockCount } from '../src/locks/lockword.js';
import { ORPHAN_GRACE_MS } from '../src/locks/owners.js';
import { seededInt } from './fixtures/seeded.js';
import { TestWorker, expectClean } from './support/core.js';

const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

let arena: Arena;
beforeAll(() => {
  arena = Arena.create({ bytes: 1 << 20, maxThreads: 8, maxFds: 16, lockKind: 'ticket' });
});
afterAll(() => {
  expectClean(arena);
});

const nextOf = (w: number): number => (w >>> K.LOCK_TICKET_NEXT_SHIFT) & K.LOCK_TICKET_MASK;
const servingOf = (w: number): number => (w >>> K.LOCK_TICKET_SERVING_SHIFT) & K.LOCK_TICKET_MASK;
const word = (idx: number): number => Atomics.load(arena.i32, idx);

/** A lock-holder worker, optionally watched (reaped when it exits). */
async function holder(watch = true): Promise<{ w: TestWorker; slot: number }> {
  const w = new TestWorker('lock-holder', { buffer: arena.buffer });
  workers.push(w);
  if (watch) arena.watch(w.worker);
  const { slot } = await w.next('ready');
  return { w, slot: slot as number };
}

/** Waits (bounded) until the word's next ticket is `next`: a worker has taken its ticket. */
async function ticketTaken(idx: number, next: number): Promise<void> {
  const until = Date.now() + 60_000;
  while (nextOf(word(idx)) !== next) {
    if (Date.now() > until) throw new Error(`no ticket taken: word 0x${(word(idx) >>> 0).toString(16)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function kill(w: TestWorker): Promise<void> {
  const gone = new Promise((r) => w.worker.once('exit', r));
  await w.worker.terminate();
  await gone;
}

function expectFree(idx: number): void {
  const w = word(idx);
  expect(w & K.LOCK_OWNER_MASK).toBe(0);
  expect(nextOf(w)).toBe(servingOf(w));
}

/**
 * With `lock` held here since ticket `t0`, the waiters queued behind it dead and reaped: the next
 * ticket is ours plus one (theirs were handed back), and the lock comes free and works. Frees it.
 */
function expectDeadTicketHandedBack(lock: SpinLock, t0: number): void {
  expect(nextOf(word(lock.index))).toBe((t0 + 1) & 0xff);
  lock.unlock();
  expectFree(lock.index);
  expect(lock.tryLock()).toBe(true);
  lock.unlock();
  lock.free();
}

/**
 * A ticket lock held here (ticket `t0`), with holder `a` then holder `b` queued behind it, each
 * asking with the timeout given (none: it waits). Returns when both have taken their tickets.
 */
async function queueOfTwo(aTimeoutMs?: number, bTimeoutMs?: number): Promise<{ lock: SpinLock; a: { w: TestWorker; slot: number }; b: { w: TestWorker; slot: number }; t0: number }> {
  const lock = SpinLock.create(arena, 'ticket');
  const [a, b] = [await holder(), await holder()];
  expect(lock.lock()).toBe(true);
  const t0 = servingOf(word(lock.index));
  a.w.post({ type: 'lock', ref: lock.ref, timeoutMs: aTimeoutMs });
  await ticketTaken(lock.index, (t0 + 2) & 0xff);
  b.w.post({ type: 'lock', ref: lock.ref, timeoutMs: bTimeoutMs });
  await ticketTaken(lock.index, (t0 + 3) & 0xff);
  return { lock, a, b, t0 };
}

describe('a ticket taken by a thread that never takes its turn', () => {
  it('a waiter terminated in the middle of the queue: the waiter behind passes its ticket over', async () => {
    const { lock, a, b, t0 } = await queueOfTwo();
    await kill(a.w); // reaped: its ticket t0+1 sits between ours and b's
    expect(nextOf(word(lock.index))).toBe((t0 + 3) & 0xff);
    lock.unlock();
    const got = await b.w.next('locked', 60_000);
    expect(got.ownerDied).toBe(false); // a never held the lock: nothing to repair
    await b.w.ask({ type: 'unlock' }, 'unlocked');
    expectFree(lock.index);
    expect(lock.tryLock()).toBe(true);
    lock.unlock();
    lock.free();
  });

  it('a waiter terminated last in the queue: its reaper hands the ticket back', async () => {
    const lock = SpinLock.create(arena, 'ticket');
    const a = await holder();
    expect(lock.lock()).toBe(true);
    const t0 = servingOf(word(lock.index));
    a.w.post({ type: 'lock', ref: lock.ref });
    await ticketTaken(lock.index, (t0 + 2) & 0xff);
    await kill(a.w);
    expectDeadTicketHandedBack(lock, t0);
  });

  it('terminated at its turn before writing its owner id (next = serving + 1, owner 0): its reaper serves the ticket', async () => {
    const lock = SpinLock.create(arena, 'ticket');
    const a = await holder(false); // reaped by hand below, once its turn has come
    expect(lock.lock()).toBe(true);
    const t0 = servingOf(word(lock.index));
    a.w.post({ type: 'lock', ref: lock.ref });
    await ticketTaken(lock.index, (t0 + 2) & 0xff);
    await kill(a.w);
    lock.unlock();
    // The reported stuck word: a's turn, nobody's owner id.
    const stuck = word(lock.index);
    expect(stuck & K.LOCK_OWNER_MASK).toBe(0);
    expect(servingOf(stuck)).toBe((t0 + 1) & 0xff);
    expect(nextOf(stuck)).toBe((t0 + 2) & 0xff);
    expect(lock.tryLock()).toBe(false);
    arena.reapSlot(a.slot);
    expectFree(lock.index);
    expect(lock.lock(1000)).toBe(true);
    expect(lock.ownerDied).toBe(false);
    lock.unlock();
    lock.free();
  });

  it('the same at a fence’s inline ticket lock', async () => {
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const idx = f.lockWordIndex;
    const a = await holder(false);
    expect(f.lock()).toBe(true);
    const t0 = servingOf(word(idx));
    a.w.post({ type: 'lockFence', handle: f.handle });
    await ticketTaken(idx, (t0 + 2) & 0xff);
    await kill(a.w);
    f.unlock();
    expect(f.lock(20)).toBe(false); // its turn, nobody's owner id: stuck until the reap
    arena.reapSlot(a.slot);
    expect(f.lock(1000)).toBe(true);
    f.unlock();
    expectFree(idx);
    f.signal();
    f.put();
  });

  it('a waiter that times out with a waiter behind it returns on time; the one behind passes its ticket over', async () => {
    // a must still be queued when b takes the ticket behind it: with 100 ms a main thread starved
    // that long on a loaded machine saw a give up first (its ticket withdrawn, next never reached).
    const { lock, a, b, t0 } = await queueOfTwo(5000);
    await a.w.next('timedout', 60_000); // on time, although its ticket could not be handed back
    expect(arena.i32[arena.slotWord(a.slot) + K.T_ROBUST_TICKET]).toBe(0);
    lock.unlock();
    await b.w.next('locked', 60_000);
    await b.w.ask({ type: 'unlock' }, 'unlocked');
    expectFree(lock.index);
    // a is still fine: it takes the lock again.
    await a.w.ask({ type: 'lock', ref: lock.ref }, 'locked');
    await a.w.ask({ type: 'unlock' }, 'unlocked');
    lock.free();
  });

  it('the last waiter times out: it hands back its ticket and the orphaned one below it', async () => {
    const { lock, a, b, t0 } = await queueOfTwo(undefined, 300);
    await kill(a.w); // in the middle: left in the queue
    await b.w.next('timedout', 60_000);
    expectDeadTicketHandedBack(lock, t0);
  });

  it('a waiter whose word is rewritten under it (a freed and reused lock) gives up at once, not at its deadline', async () => {
    const ref = arena.alloc(16);
    const lock = SpinLock.at(arena, ref, 0, 'ticket');
    const a = await holder();
    expect(lock.lock()).toBe(true);
    const t0 = servingOf(word(lock.index));
    // Its deadline is ten minutes away; the reply is awaited for two: a waiter that slept until its
    // deadline fails the test, without a wall-clock assertion a loaded machine could break.
    a.w.post({ type: 'lock', ref, byteOffset: 0, kind: 'ticket', timeoutMs: 600_000 });
    await ticketTaken(lock.index, (t0 + 2) & 0xff);
    Atomics.store(arena.i32, lock.index, 0); // what a reallocation does to the word
    await a.w.next('timedout', 120_000);
    expect(() => lock.unlock()).toThrow(FenceError); // EPERM: the word is not ours any more
    expect(heldLockCount(arena)).toBe(0);
    arena.free(ref);
  });
});

describe.each(LOCK_KINDS.map((k) => [k]))('%s lock words of random bytes', (kind: LockKind) => {
  it('lock(timeout) and lock() always return or throw a FenceError; what they take can be released', () => {
    const lock = SpinLock.create(arena, kind);
    const rand = seededInt(`random-words-${kind}`);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      // Half of them with a free owner field: those are taken, or (ticket) their queue passed over.
      const bytes = ((rand(0x10000) << 16) | rand(0x10000)) & (rand(2) ? -1 : ~K.LOCK_OWNER_MASK);
      for (const timeout of [2, undefined]) {
        Atomics.store(arena.i32, lock.index, bytes);
        let outcome: string;
        try {
          outcome = lock.lock(timeout) ? 'taken' : 'timeout';
        } catch (e) {
          if (!(e instanceof FenceError)) throw e;
          outcome = e.code;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (outcome === 'taken') {
          expect(lock.owner).toBe(arena.slot);
          lock.unlock();
          expect(lock.owner).toBe(-1);
        }
        expect(heldLockCount(arena)).toBe(0);
        expect(arena.i32[arena.slotBase + K.T_ROBUST_TICKET]).toBe(0); // no ticket record left behind
      }
    }
    for (const code of outcomes.keys()) expect(['taken', 'timeout', 'ENOTRECOVERABLE', 'EDEADLK', 'EBUSY']).toContain(code);
    expect(outcomes.get('taken')).toBeGreaterThan(0);
    expect(outcomes.get('ENOTRECOVERABLE')).toBeGreaterThan(0);
    Atomics.store(arena.i32, lock.index, 0);
    lock.free();
  });

  it('a word naming a free thread slot as its holder: lock() gives up with ENOTRECOVERABLE after the grace period', () => {
    const lock = SpinLock.create(arena, kind);
    const freeSlot = arena.maxThreads - 1;
    const bytes = kind === 'ticket' ? (freeSlot + 1) | (5 << K.LOCK_TICKET_NEXT_SHIFT) | (4 << K.LOCK_TICKET_SERVING_SHIFT) : freeSlot + 1;
    Atomics.store(arena.i32, lock.index, bytes);
    expect(lock.lock(20)).toBe(false); // a deadline bounds the wait whatever the word holds
    const t = performance.now();
    let caught: unknown;
    try {
      lock.lock();
    } catch (e) {
      caught = e;
    }
    expect((caught as FenceError)?.code).toBe('ENOTRECOVERABLE');
    expect((caught as FenceError).message).toMatch(new RegExp(`thread ${freeSlot}, whose slot has been free`));
    expect(performance.now() - t).toBeGreaterThanOrEqual(ORPHAN_GRACE_MS - 1);
    expect(heldLockCount(arena)).toBe(0);
    Atomics.store(arena.i32, lock.index, 0);
    lock.free();
  });
});

describe('a ticket word full of orphaned tickets', () => {
  it('255 tickets out, none recorded anywhere: lock() passes them all and takes the lock', () => {
    const lock = SpinLock.create(arena, 'ticket');
    const serving = 7;
    Atomics.store(arena.i32, lock.index, (serving << K.LOCK_TICKET_SERVING_SHIFT) | (((serving - 1) & 0xff) << K.LOCK_TICKET_NEXT_SHIFT));
    expect(lock.tryLock()).toBe(false);
    expect(lock.lock()).toBe(true);
    lock.unlock();
    expectFree(lock.index);
    lock.free();
  });
});

describe('the stub fence’s creation lock', () => {
  it('is a robust lock word: one naming a thread that is gone makes Fence.stub() throw, not spin forever', () => {
    const other = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    Atomics.store(other.i32, FL.H_STUB_LOCK, 3 + 1); // slot 3: free
    let caught: unknown;
    try {
      Fence.stub(other);
    } catch (e) {
      caught = e;
    }
    expect((caught as FenceError)?.code).toBe('ENOTRECOVERABLE');
    expect(heldLockCount(other)).toBe(0);
    Atomics.store(other.i32, FL.H_STUB_LOCK, 0);
    const stub = Fence.stub(other);
    expect(stub.isSignaled()).toBe(true);
    stub.put();
    expectClean(other);
  });
});

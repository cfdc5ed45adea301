/**
 * The robust list — the lock words a thread holds, from which the reaper recovers a dead thread's
 * locks — under many locks released in any order: the held-lock count is exact at every step,
 * a thread holds at most SpinLock.MAX_HELD (32) SpinLocks and borrowed fence locks (the next one
 * is refused with ENOLCK and changes nothing), the library's own internal locks still work at that
 * limit, detach works once everything is released, and a dead thread's words all come back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceChain, LOCK_KINDS, SpinLock } from '../src/index.js';
import * as K from '../src/locks/layout.js';
import { heldLockCount } from '../src/locks/lockword.js';
import { seededInt, testSeed } from './fixtures/seeded.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

function locksOf(arena: Arena, n: number): SpinLock[] {
  return Array.from({ length: n }, (_, i) => SpinLock.create(arena, LOCK_KINDS[i % LOCK_KINDS.length]));
}

/** Indexes 0..n-1 in a seeded random order. */
function shuffled(n: number, seed: string): number[] {
  const rand = seededInt(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rand(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

describe('held-lock bookkeeping', () => {
  it.each([
    ['FIFO', (n: number) => Array.from({ length: n }, (_, i) => i)],
    ['LIFO', (n: number) => Array.from({ length: n }, (_, i) => n - 1 - i)],
    ['random', (n: number) => shuffled(n, testSeed('release-order'))],
  ])('%s release of 32 locks: the count is exact at every step and back to 0; detach works', (_name, order) => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const locks = locksOf(arena, SpinLock.MAX_HELD);
    locks.forEach((l, i) => {
      expect(i % 3 === 0 ? l.tryLock() : l.lock()).toBe(true);
      expect(heldLockCount(arena)).toBe(i + 1);
    });
    order(locks.length).forEach((i, k) => {
      locks[i].unlock();
      expect(locks[i].owner).toBe(-1);
      expect(heldLockCount(arena)).toBe(locks.length - k - 1);
    });
    // Every word really is free, and the list holds nothing stale: each can be locked again.
    for (const l of locks) {
      expect(l.lock(0)).toBe(true);
      l.unlock();
    }
    expect(heldLockCount(arena)).toBe(0);
    for (const l of locks) l.free();
    expectClean(arena);
    arena.detach();
    expect(arena.isDetached).toBe(true);
  });

  it('inline fence locks (40, past the robust list\'s 32) mixed with SpinLocks, released in random order: the count is exact; check() reports a count below 0', () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const context = Fence.contextAlloc(arena);
    const fences = Array.from({ length: 40 }, (_, i) => Fence.create(arena, { context, seqno: i + 1 }));
    const locks = locksOf(arena, 8);
    const all: { lock(): boolean; unlock(): void }[] = [...fences, ...locks];
    const order = shuffled(all.length, testSeed('inline-release-order'));
    order.forEach((i, k) => {
      expect(all[i].lock()).toBe(true);
      expect(heldLockCount(arena)).toBe(k + 1);
    });
    shuffled(all.length, testSeed('inline-release-order-2')).forEach((i, k) => {
      all[i].unlock();
      expect(heldLockCount(arena)).toBe(all.length - k - 1);
    });
    expect(arena.i32[arena.slotBase + K.T_INLINE_HELD]).toBe(0);
    arena.i32[arena.slotBase + K.T_INLINE_HELD] = -1;
    expect(arena.check().problems).toContain(`thread ${arena.slot} counts -1 held fence inline locks`);
    arena.i32[arena.slotBase + K.T_INLINE_HELD] = 0;
    for (const f of fences) f.put();
    for (const l of locks) l.free();
    expectClean(arena);
  });

  it('the 33rd lock is refused with ENOLCK (lock, tryLock, a borrowed fence lock) and changes nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const locks = locksOf(arena, SpinLock.MAX_HELD + 1);
    const extra = locks.pop()!;
    const lender = SpinLock.create(arena, arena.lockKind);
    const borrowed = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lender });
    const inline = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 2 });
    for (const l of locks) expect(l.lock()).toBe(true);
    expect(heldLockCount(arena)).toBe(32);
    const word = Atomics.load(arena.i32, extra.index);
    const err = rejects(arena, () => extra.lock(), 'ENOLCK');
    expect(err.message).toMatch(/32 lock words/);
    rejects(arena, () => extra.lock(100), 'ENOLCK');
    rejects(arena, () => extra.tryLock(), 'ENOLCK');
    rejects(arena, () => borrowed.lock(), 'ENOLCK');
    expect(Atomics.load(arena.i32, extra.index)).toBe(word);
    expect(extra.owner).toBe(-1);
    expect(lender.owner).toBe(-1);
    expect(heldLockCount(arena)).toBe(32);
    // Inline fence locks are not listed (the reaper finds them by walking the heap): not limited.
    expect(inline.lock()).toBe(true);
    expect(heldLockCount(arena)).toBe(33);
    inline.unlock();
    // At the limit, the library's own short locks still work: signal() takes the borrowed lock,
    // a chain walk takes its links' prev locks.
    const chain = FenceChain.create(arena, null, borrowed.get(), 1);
    borrowed.signal();
    expect(chain.isSignaled()).toBe(true);
    expect(heldLockCount(arena)).toBe(32);
    // One released (not the last one taken): room for exactly one more.
    locks[3].unlock();
    expect(extra.lock()).toBe(true);
    rejects(arena, () => locks[3].lock(), 'ENOLCK');
    extra.unlock();
    for (const [i, l] of locks.entries()) if (i !== 3) l.unlock();
    expect(heldLockCount(arena)).toBe(0);
    chain.put();
    borrowed.put();
    inline.put();
    for (const l of [...locks, extra, lender]) l.free();
    expectClean(arena);
  });

  it('the reported program — 33 locks, FIFO unlock, a fence signaled under a FenceChain — exits by itself', async () => {
    const w = new TestWorker('lock-many', { n: SpinLock.MAX_HELD + 1 });
    workers.push(w);
    const done = await w.next('done', 60_000);
    expect(done.locked).toBe(32);
    expect(done.refused).toEqual(['ENOLCK']);
    expect(done.heldAfter).toBe(0);
    expect(done.callbackRan).toBe(1);
    expect(await w.exited()).toBe(0);
  });

  it('a worker terminated holding locks after out-of-order releases: every word it held comes back, owner-died', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const locks = locksOf(arena, SpinLock.MAX_HELD);
    const release = shuffled(locks.length, testSeed('hoard')).slice(0, 8); // given back in a random order
    const hoard = new TestWorker('lock-hoard', { buffer: arena.buffer, refs: locks.map((l) => l.ref), release });
    workers.push(hoard);
    arena.watch(hoard.worker);
    const { slot } = await hoard.next('held');
    const held = locks.filter((l) => l.owner === slot);
    expect(held.length).toBe(locks.length - release.length);
    const gone = new Promise((r) => hoard.worker.once('exit', r));
    await hoard.worker.terminate();
    await gone;
    for (const l of locks) {
      expect(l.owner).toBe(-1);
      expect(l.lock(1000)).toBe(true);
      expect(l.ownerDied).toBe(held.includes(l));
      l.unlock();
    }
    for (const l of locks) l.free();
    expectClean(arena);
  });

  it('the reaper leaves alone a word the dead thread released long ago (its block reused for data)', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
    const ref = arena.alloc(16);
    const w = new TestWorker('lock-holder', { buffer: arena.buffer });
    workers.push(w);
    arena.watch(w.worker);
    const { slot } = await w.next('ready');
    await w.ask({ type: 'lock', ref, byteOffset: 0, kind: 'futex' }, 'locked');
    await w.ask({ type: 'unlock' }, 'unlocked');
    // The block now holds data that happens to equal the dead thread's owner id.
    const data = (slot as number) + 1;
    const idx = arena.resolve(ref, -1, 'block') + 2;
    arena.i32[idx] = data;
    const gone = new Promise((r) => w.worker.once('exit', r));
    await w.worker.terminate();
    await gone;
    expect(arena.i32[idx]).toBe(data);
    arena.free(ref);
    expectClean(arena);
  });
});

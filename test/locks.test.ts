/**
 * Locks: every algorithm (tas, ttas, ticket, futex) through SpinLock — lock/tryLock/unlock,
 * timeouts against a holder in another thread, EPERM for a non-owner unlock, EDEADLK for a
 * recursive lock, and SpinLock.create/fromRef/at/free with their bad inputs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena, BlockType, Fence, LOCK_KINDS, SpinLock, type LockKind } from '../src/index.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

let arena: Arena;
let holder: TestWorker;
let holderSlot: number;

beforeAll(async () => {
  arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
  holder = new TestWorker('lock-holder', { buffer: arena.buffer });
  holderSlot = (await holder.next('ready')).slot as number;
});

afterAll(async () => {
  await holder.ask({ type: 'exit' }, 'bye');
  await holder.exited();
  expectClean(arena);
});

describe.each(LOCK_KINDS.map((k) => [k]))('%s lock', (kind: LockKind) => {
  it('lock / tryLock / unlock in one thread; the word records the owner', () => {
    const lock = SpinLock.create(arena, kind);
    expect(lock.kind).toBe(kind);
    expect(lock.owner).toBe(-1);
    expect(lock.lock()).toBe(true);
    expect(lock.owner).toBe(arena.slot);
    expect(lock.ownerDied).toBe(false);
    lock.unlock();
    expect(lock.owner).toBe(-1);
    expect(lock.tryLock()).toBe(true);
    expect(lock.owner).toBe(arena.slot);
    expect(lock.tryLock()).toBe(false); // held (by us): an expected outcome, not a throw
    lock.unlock();
    expect(lock.lock(0)).toBe(true); // a free lock is taken even with a zero timeout
    lock.unlock();
    // Many rounds keep the word consistent (ticket counters wrap at 256).
    for (let i = 0; i < 1000; i++) {
      expect(lock.lock(1000)).toBe(true);
      lock.unlock();
    }
    expect(lock.owner).toBe(-1);
    expect(lock.withLock(() => lock.owner)).toBe(arena.slot);
    expect(lock.owner).toBe(-1);
    lock.free();
    expectClean(arena);
  });

  it('recursive lock → EDEADLK, and the lock stays held once', () => {
    const lock = SpinLock.create(arena, kind);
    expect(lock.lock()).toBe(true);
    rejects(arena, () => lock.lock(), 'EDEADLK');
    rejects(arena, () => lock.lock(5), 'EDEADLK');
    rejects(arena, () => lock.withLock(() => 1), 'EDEADLK');
    expect(lock.owner).toBe(arena.slot);
    lock.unlock();
    expect(lock.owner).toBe(-1);
    rejects(arena, () => lock.unlock(), 'EPERM'); // unlocking twice
    lock.free();
    expectClean(arena);
  });

  it('unlock of a free lock, or of a lock another thread holds → EPERM (the word is untouched)', async () => {
    const lock = SpinLock.create(arena, kind);
    rejects(arena, () => lock.unlock(), 'EPERM');
    await holder.ask({ type: 'lock', ref: lock.ref }, 'locked');
    expect(lock.owner).toBe(holderSlot);
    const word = Atomics.load(arena.i32, lock.index);
    const err = rejects(arena, () => lock.unlock(), 'EPERM');
    expect(err.message).toMatch(new RegExp(`thread ${holderSlot}`));
    expect(Atomics.load(arena.i32, lock.index)).toBe(word);
    await holder.ask({ type: 'unlock' }, 'unlocked');
    lock.free();
    expectClean(arena);
  });

  it('lock(timeout) and tryLock() fail while another thread holds it, succeed after its unlock', async () => {
    const lock = SpinLock.create(arena, kind);
    await holder.ask({ type: 'lock', ref: lock.ref }, 'locked');
    expect(lock.tryLock()).toBe(false);
    const t0 = performance.now();
    expect(lock.lock(20)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(19);
    expect(lock.lock(0)).toBe(false);
    expect(lock.owner).toBe(holderSlot);
    expect(arena.check().ok).toBe(true);
    // A timed-out waiter left nothing behind: the holder unlocks, we get it.
    await holder.ask({ type: 'unlock' }, 'unlocked');
    expect(lock.lock(1000)).toBe(true);
    expect(lock.owner).toBe(arena.slot);
    lock.unlock();
    // And the holder can take it again after us (ticket: the serving count is right).
    await holder.ask({ type: 'lock', ref: lock.ref }, 'locked');
    await holder.ask({ type: 'unlock' }, 'unlocked');
    expect(lock.tryLock()).toBe(true);
    lock.unlock();
    lock.free();
    expectClean(arena);
  });

  it('a lock word inside a raw block (SpinLock.at) is shared by every view of it', async () => {
    const ref = arena.alloc(64);
    const a = SpinLock.at(arena, ref, 8, kind);
    const b = SpinLock.at(arena, ref, 8, kind);
    expect(a.index).toBe(b.index);
    expect(a.byteOffset).toBe(8);
    expect(a.kind).toBe(kind);
    expect(a.lock()).toBe(true);
    expect(b.tryLock()).toBe(false);
    rejects(arena, () => b.lock(), 'EDEADLK');
    b.unlock(); // same word, same thread: the view does not matter
    expect(a.owner).toBe(-1);
    // Another thread sees the same word through its own view.
    await holder.ask({ type: 'lock', ref, byteOffset: 8, kind }, 'locked');
    expect(a.lock(10)).toBe(false);
    await holder.ask({ type: 'unlock' }, 'unlocked');
    // Neighbouring words are untouched by locking.
    const hw = arena.resolve(ref, -1, 'block');
    expect(arena.i32[hw + 2 + 1]).toBe(0);
    expect(arena.i32[hw + 2 + 3]).toBe(0);
    a.free(); // frees the whole block
    rejects(arena, () => SpinLock.at(arena, ref, 8), 'EBADF');
    expectClean(arena);
  });
});

describe('SpinLock construction', () => {
  it('create / fromRef: a lock rebuilt from its ref has the same word and kind', () => {
    for (const kind of LOCK_KINDS) {
      const lock = SpinLock.create(arena, kind);
      const again = SpinLock.fromRef(arena, lock.ref);
      expect(again.index).toBe(lock.index);
      expect(again.kind).toBe(kind);
      expect(again.byteOffset).toBe(0);
      lock.lock();
      rejects(arena, () => again.lock(), 'EDEADLK');
      again.unlock();
      expect(lock.owner).toBe(-1);
      lock.free();
    }
    // Without a kind, the arena's default.
    const dflt = SpinLock.create(arena);
    expect(dflt.kind).toBe(arena.lockKind);
    expect(SpinLock.at(arena, dflt.ref).kind).toBe(arena.lockKind);
    dflt.free();
    const ticketArena = Arena.create({ bytes: 1 << 20, lockKind: 'ticket', maxThreads: 2, maxFds: 16 });
    const t = SpinLock.create(ticketArena);
    expect(t.kind).toBe('ticket');
    t.free();
    expectClean(ticketArena);
    expectClean(arena);
  });

  it('bad kind → EINVAL', () => {
    const ref = arena.alloc(16);
    rejects(arena, () => SpinLock.create(arena, 'mcs' as LockKind), 'EINVAL');
    rejects(arena, () => SpinLock.create(arena, '' as LockKind), 'EINVAL');
    rejects(arena, () => SpinLock.at(arena, ref, 0, 'spin' as LockKind), 'EINVAL');
    expect(arena.stats().live).toEqual({ raw: 1 }); // nothing allocated by the failed creates
    arena.free(ref);
    expectClean(arena);
  });

  it('bad timeouts → EINVAL', () => {
    for (const kind of LOCK_KINDS) {
      const lock = SpinLock.create(arena, kind);
      rejects(arena, () => lock.lock(-1), 'EINVAL');
      rejects(arena, () => lock.lock(NaN), 'EINVAL');
      rejects(arena, () => lock.lock('5' as never), 'EINVAL'); // not a number, though '5' >= 0
      expect(lock.owner).toBe(-1);
      lock.free();
    }
    expectClean(arena);
  });

  it('fromRef / at with stale, forged or wrong-type refs → EBADF / EINVAL', () => {
    const lock = SpinLock.create(arena, 'futex');
    const ref = lock.ref;
    lock.free();
    rejects(arena, () => SpinLock.fromRef(arena, ref), 'EBADF');
    rejects(arena, () => SpinLock.fromRef(arena, 0), 'EBADF');
    rejects(arena, () => SpinLock.fromRef(arena, -5), 'EBADF');
    const raw = arena.alloc(16);
    rejects(arena, () => SpinLock.fromRef(arena, raw), 'EINVAL');
    rejects(arena, () => SpinLock.at(arena, raw, 2), 'EINVAL'); // misaligned offset
    rejects(arena, () => SpinLock.at(arena, raw, -4), 'EINVAL');
    rejects(arena, () => SpinLock.at(arena, raw, 1 << 20), 'EINVAL'); // outside the block
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    rejects(arena, () => SpinLock.at(arena, f.handle), 'EINVAL'); // a fence is not a lender
    f.put();
    arena.free(raw);
    expectClean(arena);
  });

  it('free: frees the lock block; freeing a held lock → EBUSY; a freed lock is gone', () => {
    const lock = SpinLock.create(arena, 'ttas');
    lock.lock();
    rejects(arena, () => lock.free(), 'EBUSY');
    lock.unlock();
    lock.free();
    rejects(arena, () => lock.free(), 'EBADF');
    rejects(arena, () => SpinLock.fromRef(arena, lock.ref), 'EBADF');
    expect(arena.stats().live).toEqual({});
    expectClean(arena);
  });

  // arena.free of a block under a lock word the caller holds: the robust list would go on naming
  // freed memory, the lock could never be released, and detach would be EBUSY for good.
  for (const kind of LOCK_KINDS) {
    it(`arena.free refuses a block holding a ${kind} word the caller holds (EBUSY), and frees it once unlocked`, () => {
      const own = SpinLock.create(arena, kind);
      const raw = arena.alloc(64);
      const at = SpinLock.at(arena, raw, 8, kind);
      const lent = arena.alloc(16);
      const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lent });
      own.lock();
      at.lock();
      f.lock();
      rejects(arena, () => arena.free(own.ref), 'EBUSY');
      rejects(arena, () => arena.free(raw), 'EBUSY');
      rejects(arena, () => arena.free(lent), 'EBUSY'); // a fence's borrowed lock, taken through the fence
      const other = arena.alloc(64); // a block under no held word frees as ever
      arena.free(other);
      for (const l of [f, at, own]) l.unlock();
      f.signal();
      f.put();
      for (const ref of [own.ref, raw, lent]) arena.free(ref);
      expect(arena.stats().live).toEqual({});
      expectClean(arena);
    });
  }
});

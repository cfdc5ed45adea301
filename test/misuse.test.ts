/**
 * Misuse that used to wedge a process or slip through untyped: each is refused with a FenceError
 * naming the problem, and nothing changes (the arena stays consistent, nothing leaks).
 */
import { describe, expect, it } from 'vitest';
import { heldLockCount } from '../src/locks/lockword.js';
import { Arena, BlockType, Driver, Fence, FenceArray, FenceChain, FenceError, FenceSlot, SwTimeline, SyncFile, ledgerSize, mergeFences, trackRef } from '../src/index.js';
import * as AL from '../src/arena/layout.js';
import { expectClean, rejects } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });

describe('put() of the last reference under the fence lock', () => {
  it('is refused with EDEADLK and frees nothing: callbacks still run once, the lock count comes back', () => {
    const arena = arenaOf();
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    let ran = 0;
    f.addCallback(() => ran++);
    f.lock();
    rejects(arena, () => f.put(), 'EDEADLK');
    expect(f.refcount).toBe(1);
    // A reference that is not the last may be dropped under the lock.
    f.get();
    f.put();
    expect(f.refcount).toBe(1);
    f.unlock();
    expect(heldLockCount(arena)).toBe(0);
    f.put(); // now released: signaled -EDEADLK, its callback ran
    expect(ran).toBe(1);
    expectClean(arena);
    arena.detach();
  });

  it('putTracked is refused the same way, and the ledger keeps its entry until the real put', () => {
    const arena = arenaOf();
    const f = Fence.createTracked(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    let ran = 0;
    f.addCallback(() => ran++);
    const entries = ledgerSize(arena);
    f.lock();
    rejects(arena, () => f.putTracked(), 'EDEADLK');
    expect([f.refcount, ledgerSize(arena)]).toEqual([1, entries]);
    // Not the last: dropped under the lock, with its entry.
    trackRef(f.get());
    expect([f.refcount, ledgerSize(arena)]).toEqual([2, entries + 1]);
    f.putTracked();
    expect([f.refcount, ledgerSize(arena)]).toEqual([1, entries]);
    f.unlock();
    expect(heldLockCount(arena)).toBe(0);
    f.putTracked();
    expect([ran, ledgerSize(arena)]).toEqual([1, entries - 1]);
    expectClean(arena);
    arena.detach();
  });

  it('SyncFile.close of the last reference and SwTimeline.close under a point lock are refused the same way', () => {
    const arena = arenaOf();
    const tl = SwTimeline.create(arena, 't');
    const fd = tl.createFence(3);
    const p = SyncFile.getFence(arena, fd)!;
    p.lock();
    rejects(arena, () => tl.close(), 'EDEADLK');
    p.put(); // not the last: the fd holds one
    rejects(arena, () => SyncFile.close(arena, fd), 'EDEADLK');
    rejects(arena, () => p.status(), 'EDEADLK');
    expect(p.statusLocked()).toBe(0);
    p.unlock();
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
    arena.detach();
  });
  it('FenceSlot.set refuses to drop the last reference of a fence whose lock the caller holds, with the slot unchanged', () => {
    const arena = arenaOf();
    const ctx = Fence.contextAlloc(arena, 1);
    const f = Fence.create(arena, { context: ctx, seqno: 1 });
    const g = Fence.create(arena, { context: ctx, seqno: 2 });
    const slot = FenceSlot.create(arena);
    slot.set(f);
    f.lock();
    f.put(); // the slot's reference is now the last
    rejects(arena, () => slot.set(g), 'EDEADLK');
    expect(g.refcount).toBe(1); // the reference the slot took on g was given back
    const held = slot.get()!;
    expect(held.handle).toBe(f.handle);
    held.put();
    f.unlock();
    slot.set(g);
    slot.destroy();
    g.put();
    expectClean(arena);
    arena.detach();
  });

  it('polling or walking a chain under a held lock changes nothing: no half-done walk, nothing leaks', () => {
    const arena = arenaOf();
    const ctx = Fence.contextAlloc(arena, 1);
    const a = Fence.create(arena, { context: ctx, seqno: 1 });
    const b = Fence.create(arena, { context: ctx, seqno: 2 });
    a.get();
    const l1 = FenceChain.create(arena, null, a, 1);
    const l2 = FenceChain.create(arena, l1, b, 2);
    a.signal();
    // The thread holds a's lock and link 1 holds a's last reference: a walk collecting link 1
    // would put it under the lock, refused half-way after the chain changed.
    a.lock();
    a.put();
    expect(l2.isSignaled()).toBe(false);
    expect(l2.status()).toBe(0);
    const m = mergeFences(arena, [l2]); // walks the chain: b is the one unsignaled leaf
    expect(m.handle).toBe(b.handle);
    m.put();
    a.unlock();
    b.signal();
    expect(l2.status()).toBe(1);
    l2.put();
    expectClean(arena);
    arena.detach();
  });

  it('releasing a container that holds the last reference of a child whose lock the caller holds completes: the drop waits for the unlock', async () => {
    const arena = arenaOf();
    const ctx = Fence.contextAlloc(arena, 1);
    const a = Fence.create(arena, { context: ctx, seqno: 1 });
    const b = Fence.create(arena, { context: ctx, seqno: 2 });
    let ran = 0;
    a.addCallback(() => ran++);
    b.addCallback(() => ran++);
    a.get();
    b.get();
    const link = FenceChain.create(arena, null, a, 1);
    const arr = FenceArray.create(arena, [b], { context: Fence.contextAlloc(arena), seqno: 1 });
    a.lock();
    b.lock();
    a.put(); // not the last: the link holds one
    b.put(); // not the last: the array holds one
    // Each container now holds its child's last reference under the child's lock: the release
    // used to refuse that drop half-way (EDEADLK after the container was freed), leaking the child.
    link.put();
    arr.put();
    expect(a.refcount).toBe(1);
    expect(b.refcount).toBe(1);
    b.unlock();
    a.unlock();
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toBe(2); // released unsignaled: signaled -EDEADLK, each callback once
    expect(heldLockCount(arena)).toBe(0);
    expectClean(arena);
    arena.detach();
  });
});

describe('typed blocks on every public entry', () => {
  it('arena.alloc makes raw blocks only; arena.free refuses a live driver operation and a fence', () => {
    const arena = arenaOf();
    for (const t of [BlockType.FENCE, BlockType.OPERATION, BlockType.LOCK, BlockType.TIMELINE, 2 ** 24])
      expect(rejects(arena, () => arena.alloc(56, t), 'EINVAL').message).toMatch(/raw blocks only/);
    const d = Driver.create(arena);
    const op = d.submit();
    rejects(arena, () => arena.free(op.handle), 'EINVAL');
    expect(op.fence.testSignaledFlag()).toBe(false);
    rejects(arena, () => Fence.fromHandle(arena, op.handle), 'EINVAL');
    const raw = arena.alloc(56);
    rejects(arena, () => Fence.fromHandle(arena, raw), 'EINVAL');
    rejects(arena, () => Driver.fromHandle(arena, raw), 'EINVAL');
    rejects(arena, () => SwTimeline.fromHandle(arena, raw), 'EINVAL');
    expect(d.execute(op)).toBe(1);
    d.destroy();
    arena.free(raw);
    expectClean(arena);
    arena.detach();
  });

  it('attach refuses a corrupted header (lock kind 2^24, heap bounds) with EINVAL', () => {
    const arena = arenaOf();
    const copy = new SharedArrayBuffer(arena.buffer.byteLength);
    new Int32Array(copy).set(arena.i32);
    const i32 = new Int32Array(copy);
    i32[AL.H_ARENA_ID] = 12345; // another arena for the attach cache
    i32[AL.H_LOCK_KIND] = 2 ** 24;
    expect(() => Arena.attach(copy)).toThrow(/corrupted arena header: lock kind/);
    i32[AL.H_LOCK_KIND] = 0;
    i32[AL.H_HEAP_START] = 3;
    expect(() => Arena.attach(copy)).toThrow(FenceError);
    arena.detach();
  });
});

describe('bad input is typed, and messages are safe for any value', () => {
  const hostile = { toString: (): never => { throw new Error('toString'); } };
  const cases: [string, (a: Arena) => unknown][] = [
    ['Arena.create(null)', () => Arena.create(null as never)],
    ['Arena.create(5)', () => Arena.create(5 as never)],
    ['Arena.create({ bytes: Symbol })', () => Arena.create({ bytes: Symbol('b') as never })],
    ['Driver.create(arena, null)', (a) => Driver.create(a, null as never)],
    ["Driver.create(arena, 'x')", (a) => Driver.create(a, 'x' as never)],
    ['Driver.create(null)', () => Driver.create(null as never)],
    ['submit(null)', (a) => Driver.create(a).submit(null as never)],
    ['execute(null)', (a) => Driver.create(a).execute(null as never)],
    ['Fence.create({ ops: null })', (a) => Fence.create(a, { context: 1, seqno: 1, ops: null as never })],
    ['Fence.fromHandle(arena, Symbol)', (a) => Fence.fromHandle(a, Symbol('h') as never)],
    ['Fence.fromHandle(null, 1)', () => Fence.fromHandle(null as never, 1)],
    ['Fence.contextAlloc(arena, hostile)', (a) => Fence.contextAlloc(a, hostile as never)],
    ['arena.free(hostile)', (a) => a.free(hostile as never)],
    ['arena.alloc(Symbol)', (a) => a.alloc(Symbol('n') as never)],
    ['Fence.isLater(f, null)', (a) => Fence.isLater(Fence.stub(a), null as never)],
    // A misspelled option is refused, not a silent default.
    ['Arena.create({ size })', () => Arena.create({ size: 1 << 20 } as never)],
    ['Driver.create(arena, { ring })', (a) => Driver.create(a, { ring: 16 } as never)],
    ['submit({ duration })', (a) => Driver.create(a).submit({ duration: 5 } as never)],
    ['share({ signal })', (a) => Fence.create(a, { context: 1, seqno: 1 }).share({ signal: true } as never)],
    ['trace.start({ events })', (a) => a.trace.start({ events: 100 } as never)],
    ['FenceArray.create(…, { any })', (a) => FenceArray.create(a, [Fence.create(a, { context: 1, seqno: 1 })], { context: 2, seqno: 1, any: true } as never)],
  ];
  it('waitAsync(ms, { abort }) → a promise rejected with FenceError EINVAL', async () => {
    const arena = arenaOf();
    const f = Fence.create(arena, { context: 1, seqno: 1 });
    await expect(f.waitAsync(1, { abort: new AbortController().signal } as never)).rejects.toMatchObject({ code: 'EINVAL' });
    f.signal();
    f.put();
    expectClean(arena);
  });
  for (const [name, fn] of cases) {
    it(`${name} → FenceError EINVAL/EBADF`, () => {
      const arena = arenaOf();
      let caught: unknown;
      try {
        fn(arena);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(FenceError);
      expect(['EINVAL', 'EBADF']).toContain((caught as FenceError).code);
    });
  }
});

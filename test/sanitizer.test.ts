/**
 * The sanitizer (KASAN for the arena): freed blocks are poisoned, and every lock acquisition and
 * field access through a fence checks that the block behind it is live and of the generation taken.
 * Throwing mode raises UseAfterFreeError naming the fence, the stale block, the free and the current
 * owner; counting mode records the access and lets it go on.
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Fence, FenceError, SpinLock, UseAfterFreeError, type UseAfterFreeReport } from '../src/index.js';
import { expectClean } from './support/core.js';

const OFFSET = 2 ** 28;

function arenaWith(sanitize: boolean | 'count'): Arena {
  return Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, sanitize });
}

/** Byte offset of a block's header, as the sanitizer reports it. */
function blockByte(ref: number): number {
  return (ref % OFFSET) * 8;
}

/** Asserts `fn` raises UseAfterFreeError and that the arena is still consistent afterwards. */
function uaf(arena: Arena, fn: () => unknown): UseAfterFreeError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(UseAfterFreeError);
  expect(caught).toBeInstanceOf(FenceError);
  expect((caught as FenceError).code).toBe('EFAULT');
  expect(arena.check().ok).toBe(true);
  return caught as UseAfterFreeError;
}

/** An operation struct lending its lock word (offset 0) to a fence; the fence signaled, the op freed. */
function danglingFence(arena: Arena) {
  const op = arena.alloc(48);
  const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: SpinLock.at(arena, op, 0) });
  fence.signal();
  arena.free(op);
  return { op, fence };
}

describe('throwing mode', () => {
  it('a borrowed lock taken after its lender was freed → UseAfterFreeError naming fence, block, free, owner', () => {
    const arena = arenaWith(true);
    const { op, fence } = danglingFence(arena);
    const gen = Math.floor(op / OFFSET);
    // Freed, not reused yet (a free moves the generation on too).
    let err = uaf(arena, () => fence.lock(10));
    expect(err.report).toEqual<UseAfterFreeReport>({
      access: 'fence-lock',
      fence: fence.handle,
      block: blockByte(op),
      takenGeneration: gen,
      currentGeneration: gen + 1,
      freedBy: arena.slot,
      nowType: 'free',
      nowOwner: -1,
      thread: arena.slot,
    });
    expect(err.message).toContain(`fence ${fence.handle}`);
    expect(err.message).toContain(`block @${blockByte(op)}`);
    expect(err.message).toContain(`freed by thread ${arena.slot}`);
    expect(err.message).toContain('it is free now');
    // Reused by a new operation: the report names the new owner.
    const op2 = arena.alloc(48);
    expect(op2 % OFFSET).toBe(op % OFFSET); // LIFO: the very same memory
    err = uaf(arena, () => fence.withLock(() => 0));
    expect(err.report).toMatchObject({
      access: 'fence-lock',
      fence: fence.handle,
      block: blockByte(op),
      takenGeneration: gen,
      currentGeneration: Math.floor(op2 / OFFSET),
      freedBy: arena.slot,
      nowType: 'raw',
      nowOwner: arena.slot,
    });
    expect(err.message).toContain(`it now holds a raw (generation ${Math.floor(op2 / OFFSET)}) allocated by thread ${arena.slot}`);
    // Every path that takes the fence lock is checked; nothing was acquired behind our back.
    uaf(arena, () => fence.status());
    uaf(arena, () => fence.assertHeld());
    expect(SpinLock.at(arena, op2, 0).owner).toBe(-1);
    expect(arena.uafCount).toBe(4);
    // Lock-free reads of a signaled fence stay fine; the fence itself is live.
    expect(fence.isSignaled()).toBe(true);
    expect(fence.driverName).toBe('detached-driver');
    fence.put();
    arena.free(op2);
    expectClean(arena);
  });

  it('a stale SpinLock view and a released fence view are caught too', () => {
    const arena = arenaWith(true);
    const lock = SpinLock.create(arena);
    lock.free();
    let err = uaf(arena, () => lock.lock(5));
    expect(err.report).toMatchObject({ access: 'lock', fence: 0, block: blockByte(lock.ref), nowType: 'free' });
    const other = SpinLock.create(arena); // reuses the lock's block
    err = uaf(arena, () => lock.tryLock());
    expect(err.report).toMatchObject({ access: 'lock', nowType: 'lock', nowOwner: arena.slot });
    expect(other.owner).toBe(-1);
    other.free();

    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 3 });
    const handle = f.handle;
    f.put();
    err = uaf(arena, () => f.signal());
    expect(err.report).toMatchObject({ access: 'fence', fence: handle, block: blockByte(handle), nowType: 'free' });
    const g = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 4 }); // same block
    expect(g.handle % OFFSET).toBe(handle % OFFSET);
    err = uaf(arena, () => f.seqno);
    expect(err.report).toMatchObject({ access: 'fence', nowType: 'fence', currentGeneration: Math.floor(g.handle / OFFSET) });
    expect(g.seqno).toBe(4);
    g.put();
    expectClean(arena);
  });

  it('freed blocks are poisoned; a write after free is found at the next allocation', () => {
    const arena = arenaWith(true);
    const ref = arena.alloc(56);
    const hw = arena.resolve(ref, -1, 'block');
    arena.free(ref);
    const payload = Array.from(arena.i32.subarray(hw + 3, hw + 16));
    expect(new Set(payload)).toEqual(new Set([0x5afe_dead | 0]));
    arena.i32[hw + 5] = 42; // a stale writer
    const again = arena.alloc(56);
    expect(again % OFFSET).toBe(ref % OFFSET);
    const report = arena.check();
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/written after free/);
    arena.free(again);
    expect(report.leakedBytes).toBe(64);
    expect(arena.check().leakedBytes).toBe(0);
  });

  it('normal use reports nothing', () => {
    const arena = arenaWith(true);
    const op = arena.alloc(48);
    const lent = SpinLock.at(arena, op, 0);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lent });
    const g = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const ran: number[] = [];
    f.addCallback(() => ran.push(1));
    g.addCallback(() => ran.push(2));
    expect(f.status()).toBe(0);
    f.signal();
    g.signal();
    expect(f.status() + g.status()).toBe(2);
    expect(ran).toEqual([1, 2]);
    f.put(); // the fence goes before its lender: correct order
    arena.free(op);
    g.put();
    expect(arena.uafCount).toBe(0);
    expectClean(arena);
  });
});

describe('counting mode', () => {
  it('records every stale access, lets it go on, and counts exactly', () => {
    const arena = arenaWith('count');
    expect(arena.counting).toBe(true);
    const { op, fence } = danglingFence(arena);
    const op2 = arena.alloc(48);
    const newLock = SpinLock.at(arena, op2, 0);
    const rounds = 25;
    for (let i = 0; i < rounds; i++) {
      expect(fence.lock(100)).toBe(true); // goes on: it locks the new operation's word
      expect(newLock.owner).toBe(arena.slot);
      fence.unlock();
    }
    // One report per stale critical section: the acquisition is checked, the matching unlock not.
    expect(arena.uafCount).toBe(rounds);
    expect(arena.uafReports).toHaveLength(rounds);
    expect(arena.uafReports[0]).toMatchObject({
      access: 'fence-lock',
      fence: fence.handle,
      block: blockByte(op),
      takenGeneration: Math.floor(op / OFFSET),
      currentGeneration: Math.floor(op2 / OFFSET),
      nowType: 'raw',
      nowOwner: arena.slot,
      freedBy: arena.slot,
      thread: arena.slot,
    });
    // A released fence view is counted as well, and then rejected as a bad handle.
    const g = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    g.put();
    let threw: unknown;
    try {
      g.refcount;
    } catch (e) {
      threw = e;
    }
    expect(arena.uafCount).toBe(rounds + 1);
    // Counting mode does not throw for it; the access goes on like in production.
    expect(threw).toBeUndefined();
    fence.put();
    arena.free(op2);
    expectClean(arena);
  });
});

/**
 * Input checks of the fence, container, sync-file and driver entries: each bad argument is a
 * FenceError with the exact code, thrown before anything changes (arena.check() clean, nothing leaked).
 */
import { describe, expect, it } from 'vitest';
import { heldLockCount } from '../src/locks/lockword.js';
import { Arena, Driver, Errno, Fence, FenceArray, FenceChain, FenceError, FenceSlot, SpinLock, SwTimeline, SyncFile, dedupArray, defineFenceOps, isContainer, ledgerSize, mergeFences, type FenceInit, type FenceOpsTable } from '../src/index.js';
import { expectClean, rejects, thrown } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });
const fenceOf = (arena: Arena) => Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });

describe('times stored in 64-bit words', () => {
  const bad: unknown[] = [-1n, -5n, 2n ** 63n, 2n ** 64n, 2n ** 64n + 5n, 1.5, NaN, '12345', {}, Symbol('t'), 5];

  it('signalTimestamp, signalLocked and setDeadline refuse what is no bigint in 0..2^63-1, unsignaled after', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    for (const ts of bad) {
      rejects(arena, () => f.signalTimestamp(ts as bigint), 'EINVAL');
      rejects(arena, () => f.setDeadline(ts as bigint), 'EINVAL');
      f.lock();
      try {
        rejects(arena, () => f.signalLocked(ts as bigint), 'EINVAL');
      } finally {
        f.unlock();
      }
      rejects(arena, () => Fence.privateStub(arena, ts as bigint), 'EINVAL');
    }
    expect(f.isSignaled()).toBe(false);
    f.signalTimestamp(2n ** 63n - 1n);
    expect(f.timestamp).toBe(2n ** 63n - 1n);
    f.put();
    expectClean(arena);
    arena.detach();
  });

  it('SyncFile.setDeadline refuses an out-of-range deadline and records none', () => {
    const arena = arenaOf();
    const tl = SwTimeline.create(arena, 't');
    const fd = tl.createFence(3);
    for (const ns of [2n ** 64n + 9n, 2n ** 63n, -1n]) rejects(arena, () => SyncFile.setDeadline(arena, fd, ns), 'EINVAL');
    SyncFile.setDeadline(arena, fd, 9n);
    expect(tl.getDeadline(fd)).toBe(9n);
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
    arena.detach();
  });
});

describe('fence arguments', () => {
  it('isArray and isChain answer false for what is no Fence (a forged one too), and keep EBADF for a released one', () => {
    const arena = arenaOf();
    for (const x of [null, undefined, {}, 5, 'f', Object.create(Fence.prototype)]) {
      expect(FenceArray.isArray(x as Fence)).toBe(false);
      expect(FenceChain.isChain(x as Fence)).toBe(false);
    }
    const f = fenceOf(arena);
    expect([FenceArray.isArray(f), FenceChain.isChain(f)]).toEqual([false, false]);
    const stale = Fence.fromHandle(arena, f.handle);
    f.put();
    rejects(arena, () => FenceArray.isArray(stale), 'EBADF');
    rejects(arena, () => FenceChain.isChain(stale), 'EBADF');
    expectClean(arena);
    arena.detach();
  });

  it('a forged Fence (Object.create(Fence.prototype)) is EINVAL everywhere, nothing taken', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    const forged = Object.create(Fence.prototype) as Fence;
    const half = Object.assign(Object.create(Fence.prototype), { arena: {}, fw: 'x' }) as Fence;
    const slot = FenceSlot.create(arena);
    for (const x of [forged, half]) {
      rejects(arena, () => Fence.isLater(x, f), 'EINVAL');
      rejects(arena, () => Fence.isLater(f, x), 'EINVAL');
      rejects(arena, () => SyncFile.create(arena, x), 'EINVAL');
      rejects(arena, () => slot.set(x), 'EINVAL');
      rejects(arena, () => mergeFences(arena, [f, x]), 'EINVAL');
      rejects(arena, () => FenceChain.create(arena, null, x, 1), 'EINVAL');
      rejects(arena, () => FenceArray.create(arena, [x], { context: Fence.contextAlloc(arena), seqno: 1 }), 'EINVAL');
      rejects(arena, () => Fence.waitAny([f, x], 0), 'EINVAL');
      rejects(arena, () => isContainer(x), 'EINVAL');
    }
    expect(f.refcount).toBe(1);
    slot.destroy();
    f.put();
    expectClean(arena);
    arena.detach();
  });

  it('withLock of what is no function is EINVAL before locking', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    const sl = SpinLock.create(arena);
    for (const fn of [5, null, {}, 'x']) {
      rejects(arena, () => f.withLock(fn as unknown as () => void), 'EINVAL');
      rejects(arena, () => sl.withLock(fn as unknown as () => void), 'EINVAL');
    }
    expect(heldLockCount(arena)).toBe(0);
    expect(f.withLock(() => 7)).toBe(7);
    expect(sl.withLock(() => 8)).toBe(8);
    sl.free();
    f.put();
    expectClean(arena);
    arena.detach();
  });

  it('FenceChain.create takes null as "no prev", not undefined; FenceArray signalOnAny must be a boolean', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    rejects(arena, () => FenceChain.create(arena, undefined as unknown as null, f, 1), 'EINVAL');
    for (const any of [Symbol('a'), 'yes', 1, null])
      rejects(arena, () => FenceArray.create(arena, [f], { context: Fence.contextAlloc(arena), seqno: 1, signalOnAny: any as unknown as boolean }), 'EINVAL');
    expect(f.refcount).toBe(1);
    const link = FenceChain.create(arena, null, f, 1);
    link.put();
    expectClean(arena);
    arena.detach();
  });

  it("FenceArray.init's refusals name init, create's name create; the memory stays the caller's", () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    const mem = FenceArray.alloc(arena, 1);
    const bad: [string, unknown][] = [['null options', null], ['an unknown key', { context: 1, seqno: 1, signalonany: true }], ['a signalOnAny no boolean', { context: 1, seqno: 1, signalOnAny: 1 }]];
    for (const [what, options] of bad) {
      const init = rejects(arena, () => FenceArray.init(mem, [f], options as { context: number; seqno: number }), 'EINVAL');
      expect(init.message, what).toMatch(/^EINVAL: FenceArray\.init\b/);
      const create = rejects(arena, () => FenceArray.create(arena, [f], options as { context: number; seqno: number }), 'EINVAL');
      expect(create.message, what).toMatch(/^EINVAL: FenceArray\.create\b/);
    }
    expect(mem.available).toBe(true);
    mem.free();
    expect(f.refcount).toBe(1);
    f.put();
    expectClean(arena);
    arena.detach();
  });
});

describe('container memory and the elements of an array of fences', () => {
  it('FenceArray.alloc and FenceChain.alloc over blocks an sw_sync point and a fence with callbacks left: arena.check() clean, no fence in the dump', () => {
    const arena = arenaOf();
    for (const alloc of [() => FenceArray.alloc(arena, 1), () => FenceChain.alloc(arena)]) {
      const tl = SwTimeline.create(arena, 'reuse');
      SyncFile.close(arena, tl.createFence(1));
      tl.close();
      const f = fenceOf(arena);
      f.addCallback(() => undefined);
      f.addCallback(() => undefined);
      f.signal();
      f.put();
      const fences = arena.describe().fences.length;
      const mems = [alloc(), alloc()];
      const report = arena.check();
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(arena.describe().fences).toHaveLength(fences);
      // A refused init leaves the memory the caller's, still no fence.
      const two = [fenceOf(arena), fenceOf(arena)];
      if (mems[0].kind === 'array') rejects(arena, () => FenceArray.init(mems[0], two, { context: 1, seqno: 1 }), 'EINVAL');
      for (const m of mems) m.free();
      for (const x of two) x.put();
    }
    expectClean(arena);
    arena.detach();
  });

  it("a getter of the caller's array that releases an element read before it: EBADF, nothing taken over", () => {
    const arena = arenaOf();
    const other = fenceOf(arena);
    const entries: [string, (fences: Fence[]) => unknown][] = [
      ['FenceArray.create', (fences) => FenceArray.create(arena, fences, { context: Fence.contextAlloc(arena), seqno: 1 })],
      ['FenceArray.init', (fences) => {
        const mem = FenceArray.alloc(arena, 2);
        try {
          return FenceArray.init(mem, fences, { context: Fence.contextAlloc(arena), seqno: 1 });
        } finally {
          if (mem.available) mem.free(); // refused: the memory is still the caller's
        }
      }],
      ['mergeFences', (fences) => mergeFences(arena, fences)],
      ['dedupArray', (fences) => dedupArray(fences)],
    ];
    for (const [name, call] of entries) {
      const first = fenceOf(arena);
      const fences = [first] as Fence[];
      Object.defineProperty(fences, 1, { enumerable: true, get: () => (first.put(), other) });
      const e = thrown(() => call(fences));
      expect(e, name).toBeInstanceOf(FenceError);
      expect((e as FenceError).code, name).toBe('EBADF');
      expect(other.refcount, name).toBe(1);
      const report = arena.check();
      expect(report.problems, name).toEqual([]);
    }
    other.put();
    expect(arena.check().leakedBytes).toBe(0);
    arena.detach();
  });

  it('mergeFences and dedupArray read an array by index: its own map runs no code of the caller, a hole is EINVAL', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    const g = fenceOf(arena);
    const withMap = Object.assign([f, g], { map: 5, forEach: 5 });
    const merged = mergeFences(arena, withMap);
    expect(FenceArray.fences(merged)).toHaveLength(2);
    merged.put();
    const holey = [f];
    holey[2] = g;
    expect(rejects(arena, () => mergeFences(arena, holey), 'EINVAL').message).toMatch(/fences\[1\] must be a Fence, got undefined/);
    rejects(arena, () => dedupArray(holey), 'EINVAL');
    const kept = dedupArray(Object.assign([f.get(), g.get()], { map: 5, forEach: 5 }));
    expect(kept).toHaveLength(2);
    for (const k of kept) k.put();
    expect([f.refcount, g.refcount]).toEqual([1, 1]);
    f.put();
    g.put();
    expectClean(arena);
    arena.detach();
  });
});

describe('tokens', () => {
  it('what is no positive safe integer is EINVAL for receive and withdraw; a stale token is EBADF / false, a number that never was one EBADF for both', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    for (const t of [NaN, 1.5, -1, 0, Infinity, -Infinity, 2 ** 53, '5']) {
      const e = rejects(arena, () => Fence.receive(arena, t as number), 'EINVAL');
      expect(e.message).not.toMatch(/32 bits/);
      rejects(arena, () => Fence.withdraw(arena, t as number), 'EINVAL');
    }
    const token = f.share();
    expect(Fence.withdraw(arena, token)).toBe(true);
    rejects(arena, () => Fence.receive(arena, token), 'EBADF');
    expect(Fence.withdraw(arena, token)).toBe(false);
    // However often its record's block is reused by later shares (every 8th reuse wraps to the
    // same 32 bits, which looks like a truncated handle), a stale token stays an answer.
    for (let i = 0; i < 40; i++) {
      const live = f.share();
      expect(Fence.withdraw(arena, token)).toBe(false);
      expect(Fence.withdraw(arena, live)).toBe(true);
    }
    // A number that never was a token (outside the heap, between blocks) is EBADF, as for receive:
    // only a token whose record was freed is an answer (false).
    for (const t of [12345, 2 ** 40 + 8, token + 1]) {
      rejects(arena, () => Fence.receive(arena, t), 'EBADF');
      rejects(arena, () => Fence.withdraw(arena, t), 'EBADF');
    }
    f.put();
    expectClean(arena);
    arena.detach();
  });

  it('a negative int32 whose low bits name a block gets the truncation hint (EINVAL)', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    const token = f.share();
    // What an Int32Array word keeps of a token whose bit 31 is set: its block offset, negative.
    const cut = ((token % 2 ** 28) + 2 ** 31) | 0;
    expect(cut).toBeLessThan(0);
    expect(rejects(arena, () => Fence.receive(arena, cut), 'EINVAL').message).toMatch(/32 bits/);
    expect(Fence.withdraw(arena, token)).toBe(true);
    f.put();
    expectClean(arena);
    arena.detach();
  });
});

describe('driver', () => {
  it('waitBell refuses a seen that is no int32', () => {
    const arena = arenaOf();
    const d = Driver.create(arena);
    for (const seen of [Symbol('s'), 10n, {}, 'x', 1.5, NaN, 2 ** 31, null]) rejects(arena, () => d.waitBell(seen as number, 0), 'EINVAL');
    d.waitBell(d.bell + 1, 0); // a real value: returns (bounded)
    d.destroy();
    expectClean(arena);
    arena.detach();
  });

  it('payload words must be int32, null options are EINVAL; nothing submitted', () => {
    const arena = arenaOf();
    const d = Driver.create(arena);
    for (const payload of [[2 ** 32 + 5], [NaN], [1.9], [Symbol('p')], ['1']])
      rejects(arena, () => d.submit({ payload: payload as number[] }), 'EINVAL');
    rejects(arena, () => d.submit({ durationUs: null as unknown as number }), 'EINVAL');
    rejects(arena, () => Driver.create(arena, { lockMode: null as unknown as 'inline' }), 'EINVAL');
    rejects(arena, () => Driver.create(arena, { ringSize: null as unknown as number }), 'EINVAL');
    expect(d.counters.submitted).toBe(0);
    const op = d.submit({ payload: [-(2 ** 31), 2 ** 31 - 1] });
    expect([op.payload(0), op.payload(1)]).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    expect(d.execute(op)).toBe(1);
    d.destroy();
    expectClean(arena);
    arena.detach();
  });

  it('a payload is read once: a length or element that changes between reads cannot write past the operation or leak it', () => {
    const arena = arenaOf();
    const d = Driver.create(arena);
    // length 1 while checked, 64 when copied: the copy wrote over the next block's header.
    let lengthReads = 0;
    const growing: Record<number, number> = Object.defineProperty({}, 'length', { get: () => (++lengthReads <= 1 ? 1 : 64) });
    for (let k = 0; k < 64; k++) growing[k] = 0x41414141;
    const op = d.submit({ payload: growing as unknown as number[] });
    expect(lengthReads).toBe(1);
    expect(op.payload(0)).toBe(0x41414141);
    expect(d.execute(op)).toBe(1);
    // An element that would throw (the caller's own error) on a second read is read once: the
    // submit goes through with the value checked. One that throws on its first read propagates
    // before anything is allocated.
    const mine = new Error('mine');
    let reads = 0;
    const flaky = Object.defineProperty({ length: 1 }, 0, { get: () => { if (++reads > 1) throw mine; return 7; } });
    const again = d.submit({ payload: flaky as unknown as number[] });
    expect([reads, again.payload(0)]).toEqual([1, 7]);
    expect(d.execute(again)).toBe(1);
    const throwing = Object.defineProperty({ length: 1 }, 0, { get: () => { throw mine; } });
    expect(() => d.submit({ payload: throwing as unknown as number[] })).toThrow(mine);
    for (const payload of [{ length: 1.5, 0: 1, 1: 2 }, { length: -1 }, { length: '1', 0: 1 }, 5, 'ab'])
      rejects(arena, () => d.submit({ payload: payload as unknown as number[] }), 'EINVAL');
    expect(d.counters.submitted).toBe(2);
    d.destroy();
    expectClean(arena);
    arena.detach();
  });

  it('execute of an executed operation is EBADF, of a forged one EINVAL; a cancelled one still reports -ECANCELED', () => {
    const arena = arenaOf();
    const d = Driver.create(arena);
    const op = d.submit();
    expect(d.execute(op)).toBe(1);
    rejects(arena, () => d.execute(op), 'EBADF');
    const forged = Object.create(Object.getPrototypeOf(op));
    rejects(arena, () => d.execute(forged), 'EINVAL');
    rejects(arena, () => d.execute({} as typeof op), 'EINVAL');
    const c = d.submit();
    expect(d.cancel(c.handle)).toBe(true);
    expect(d.execute(c)).toBe(Errno.ECANCELED);
    rejects(arena, () => d.execute(c), 'EBADF');
    expect(d.counters).toMatchObject({ completed: 1, canceled: 1, live: 0 });
    d.destroy();
    expectClean(arena);
    arena.detach();
  });
});

describe('option keys and option values', () => {
  it('defineFenceOps refuses a key no ops table has (a misspelled hook would never run)', () => {
    const base = { getDriverName: () => 'd', getTimelineName: () => 't' };
    const e = (() => {
      try {
        defineFenceOps('input-fence:typo', { ...base, relase() {} } as FenceOpsTable);
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(FenceError);
    expect((e as FenceError).code).toBe('EINVAL');
    expect((e as FenceError).message).toMatch(/relase/);
    expect(defineFenceOps('input-fence:ok', { ...base, release() {} }).name).toBe('input-fence:ok');
  });

  it('Fence.create refuses a seqno64 that is no boolean and an unknown key beside ops/lock/seqno64; createTracked any unknown key', () => {
    const arena = arenaOf();
    const context = Fence.contextAlloc(arena);
    const entries = ledgerSize(arena);
    for (const seqno64 of ['yes', 1, null, {}]) rejects(arena, () => Fence.create(arena, { context, seqno: 1, seqno64: seqno64 as boolean }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context, seqno: 1, seqno64: false, seqNo64: true } as FenceInit), 'EINVAL');
    rejects(arena, () => Fence.createTracked(arena, { context, seqno: 1, seqNo64: true } as FenceInit), 'EINVAL');
    rejects(arena, () => Fence.createTracked(arena, { context, seqno: 1, seqno64: 'yes' as unknown as boolean }), 'EINVAL');
    expect(ledgerSize(arena)).toBe(entries);
    const f = Fence.createTracked(arena, { context, seqno: 2, seqno64: true });
    f.putTracked();
    expectClean(arena);
    arena.detach();
  });
});

/**
 * Messages safe for any value, and the contract for the caller's own code: a revoked Proxy, a
 * Symbol, a BigInt, an object without a prototype or with throwing conversions is refused with a
 * typed FenceError whose message describes it; an exception thrown by the caller's own code (a
 * getter, a Proxy trap) while an entry reads its argument propagates unchanged, with nothing changed.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Driver, FenceError, SpinLock, errnoName } from '../src/index.js';
import { describeValue } from '../src/errors.js';
import { expectClean, rejects } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

/** A Proxy every trap of which throws `err`. */
function throwingProxy(err: Error): object {
  return new Proxy({}, new Proxy({}, { get: () => () => { throw err; } }));
}

const hostile = (): [string, unknown][] => [
  ['revoked proxy', revoked()],
  ['throwing proxy', throwingProxy(new Error('trap'))],
  ['symbol', Symbol('s')],
  ['bare symbol', Symbol()],
  ['bigint', 5n],
  ['null prototype', Object.create(null)],
  ['throwing toString', { toString() { throw new Error('toString'); }, valueOf() { throw new Error('valueOf'); } }],
  ['throwing toPrimitive', { [Symbol.toPrimitive]() { throw new Error('toPrimitive'); } }],
  ['throwing constructor getter', Object.defineProperty({}, 'constructor', { get() { throw new Error('ctor'); } })],
];

describe('describeValue', () => {
  it('describes any value without throwing or running its code', () => {
    for (const [name, v] of hostile()) expect(describeValue(v), name).toMatch(/^(a|an|Symbol|5n)/);
    expect(describeValue(revoked())).toBe('a revoked proxy');
    expect(describeValue(throwingProxy(new Error('trap')))).toBe('an object');
  });
});

describe('hostile values at entries', () => {
  it('alloc answers each with EINVAL naming it, nothing allocated', () => {
    const arena = arenaOf();
    for (const [name, v] of hostile()) expect(rejects(arena, () => arena.alloc(v as number), 'EINVAL').message, name).toContain('alloc');
    expectClean(arena);
    arena.detach();
  });

  it('SpinLock.at with a Symbol offset is EINVAL, not a TypeError from the message', () => {
    const arena = arenaOf();
    const ref = arena.alloc(16);
    expect(rejects(arena, () => SpinLock.at(arena, ref, Symbol() as unknown as number), 'EINVAL').message).toContain('a symbol');
    arena.free(ref);
    expectClean(arena);
    arena.detach();
  });

  it('errnoName answers a non-integer with EINVAL', () => {
    for (const v of [Symbol(), 1.5, '5', 5n, revoked()]) {
      const e = (() => { try { errnoName(v as number); } catch (x) { return x; } })();
      expect(e).toBeInstanceOf(FenceError);
      expect((e as FenceError).code).toBe('EINVAL');
    }
    expect(errnoName(-5)).toBe('EIO');
  });

  it('a revoked Proxy as options is EINVAL', () => {
    const arena = arenaOf();
    expect(rejects(arena, () => Arena.create(revoked()), 'EINVAL').message).toContain('revoked proxy');
    rejects(arena, () => Driver.create(arena, revoked()), 'EINVAL');
    expectClean(arena);
    arena.detach();
  });
});

describe("the caller's own code throwing while an entry reads its argument", () => {
  it('propagates unchanged, nothing changed', () => {
    const arena = arenaOf();
    const mine = new Error('mine');
    const getter = Object.defineProperty({}, 'bytes', { enumerable: true, get() { throw mine; } });
    for (const call of [
      () => Arena.create(throwingProxy(mine)),
      () => Arena.create(getter),
      () => Driver.create(arena, throwingProxy(mine)),
      () => arena.trace.start(throwingProxy(mine)),
    ]) {
      expect(call).toThrow(mine);
      expectClean(arena);
    }
    arena.detach();
  });
});

/**
 * Messages safe for any value, and the contract for the caller's own code: a revoked Proxy, a
 * Symbol, a BigInt, an object without a prototype or with throwing conversions is refused with a
 * typed FenceError whose message describes it; an exception thrown by the caller's own code (a
 * getter, a Proxy trap) while an entry reads its argument propagates unchanged, with nothing changed.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Driver, Fence, FenceError, SpinLock, analyzeHang, assertDump, errnoName, mergeChromeTraces, renderDump, renderTimelinePage, toChromeTrace } from '../src/index.js';
import { describeValue } from '../src/errors.js';
import { expectClean, rejects, thrown } from './support/core.js';

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

/** Asserts `fn` throws EINVAL whose message matches `text`. */
function einval(fn: () => unknown, text: RegExp | string): void {
  const e = thrown(fn);
  expect(e, String(text)).toBeInstanceOf(FenceError);
  expect((e as FenceError).code).toBe('EINVAL');
  expect((e as FenceError).message).toMatch(text);
}

/** An arena with one traced, signaled fence, and its dump as JSON would carry it. */
function traced(): { arena: Arena; dump: Record<string, unknown> } {
  const arena = arenaOf();
  arena.trace.start();
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  f.signal();
  f.put();
  return { arena, dump: JSON.parse(JSON.stringify(arena.describe())) as Record<string, unknown> };
}

describe('trace and dump helpers check the shape of their input', () => {
  it("arena.describe refuses a reason that is no string (the dump's own readers would refuse the dump)", () => {
    const arena = arenaOf();
    for (const [, v] of [...hostile(), ['number', 42] as [string, unknown]]) einval(() => arena.describe(v as string), /describe: reason must be a string/);
    const dump = arena.describe('why');
    assertDump(dump);
    expect(dump.reason).toBe('why');
    expectClean(arena);
    arena.detach();
  });

  it('refuse what is not a dump with EINVAL naming the field', () => {
    const { arena, dump } = traced();
    einval(() => assertDump({}), 'dump: not a fencelab arena dump');
    einval(() => renderDump(5 as never), 'dump must be an object, got 5');
    einval(() => analyzeHang({} as never), 'not a fencelab arena dump');
    einval(() => renderDump({ ...dump, threads: [{}] } as never), 'dump.threads[0] lacks `slot`');
    einval(() => renderDump({ ...dump, fences: [null] } as never), 'dump.fences[0] must be an object, got null');
    einval(() => analyzeHang({ ...dump, locks: 'x' } as never), 'dump.locks must be an array');
    einval(() => renderDump(revoked() as never), 'dump must be an object, got a revoked proxy');
    expect(renderDump(dump as never)).toContain('fencelab arena dump');
    arena.trace.dispose();
    expectClean(arena);
    arena.detach();
  });

  it('a validated dump never crashes the renderers: seeded field mutations give text or EINVAL', () => {
    const { arena, dump } = traced();
    const hostileValues: unknown[] = [null, 5, 'x', Symbol('s'), 5n, [], {}, revoked(), Object.create(null), undefined];
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let round = 0; round < 400; round++) {
      const d = structuredClone(dump);
      // Replace one field at a random depth with a hostile value.
      let at: Record<string, unknown> = d;
      for (let depth = rnd(4); depth >= 0; depth--) {
        const keys = Object.keys(at);
        if (keys.length === 0) break;
        const k = keys[rnd(keys.length)];
        if (depth === 0 || at[k] === null || typeof at[k] !== 'object') {
          at[k] = hostileValues[rnd(hostileValues.length)];
          break;
        }
        at = at[k] as Record<string, unknown>;
      }
      for (const fn of [() => renderDump(d as never), () => analyzeHang(d as never)]) {
        const e = thrown(fn);
        if (e !== undefined) expect((e as FenceError).code, String(e)).toBe('EINVAL');
      }
    }
    arena.trace.dispose();
    expectClean(arena);
    arena.detach();
  });

  it('Chrome trace helpers refuse a wrong shape, placement or option with EINVAL', () => {
    const { arena } = traced();
    const good = arena.trace.export();
    einval(() => mergeChromeTraces([{}] as never), 'parts[0] lacks `traceEvents`');
    einval(() => mergeChromeTraces(5 as never), 'parts must be an array');
    einval(() => toChromeTrace(5 as never), 'snapshot must be an object, got 5');
    einval(() => toChromeTrace({ ...arena.trace.snapshot(), threads: [{}] } as never), 'snapshot.threads[0] lacks `slot`');
    einval(() => renderTimelinePage({} as never), 'trace lacks `traceEvents`');
    einval(() => renderTimelinePage(good, { title: Symbol() } as never), 'options.title must be string, got a symbol');
    einval(() => renderTimelinePage({ ...good, traceEvents: [{ name: 'x', ph: 'i', pid: 1, tid: 1, args: { v: 1n } }] }), 'cannot be written as JSON');
    einval(() => arena.trace.export(Symbol() as never), 'trace.export: options must be an object, got a symbol');
    einval(() => arena.trace.export({ origin: Symbol() as never }), 'origin must be a finite number, got a symbol');
    einval(() => arena.trace.export({ size: 1 } as never), 'unknown option "size" (known: origin, pid, label)');
    expect(mergeChromeTraces([good, good]).traceEvents.length).toBe(2 * good.traceEvents.length);
    arena.trace.dispose();
    expectClean(arena);
    arena.detach();
  });

  it('trace.start({ eventsPerThread: null }) is EINVAL, not the default, and starts nothing', () => {
    const arena = arenaOf();
    rejects(arena, () => arena.trace.start({ eventsPerThread: null as never }), 'EINVAL');
    expect(arena.trace.active).toBe(false);
    expectClean(arena);
    arena.detach();
  });
});

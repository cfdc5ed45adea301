/**
 * The Fence API (docs/kernel-mapping.md) with mainline dma-fence semantics: contexts and ordering, signal
 * and its variants, status and errors, ops (names, enableSignaling, signaled, release, deadline),
 * callbacks, waits (sync, async, any), references, stubs, locking and the 64-byte block.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Arena, Driver, Errno, Fence, FenceError, LOCK_KINDS, SpinLock, defineFenceOps, drainInbox, waitInbox, type FenceCallback, type LockKind,
} from '../src/index.js';
import { TestWorker, expectClean, fixture, rejects } from './support/core.js';

const arenas: Arena[] = [];
function newArena(): Arena {
  const a = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
  arenas.push(a);
  return a;
}
afterEach(() => {
  // Every test puts what it made; the arena must be clean (the stub is permanent, not a leak).
  for (const a of arenas.splice(0)) expectClean(a);
  expect(Fence.pendingAsyncWaits).toBe(0);
});

function fence(arena: Arena, seqno = 1, extra: Partial<Parameters<typeof Fence.create>[1]> = {}): Fence {
  return Fence.create(arena, { context: extra.context ?? Fence.contextAlloc(arena), seqno, ...extra });
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Starts a worker that signals `f` after `delayMs` (it gets a reference of its own). */
function signalLater(arena: Arena, f: Fence, delayMs: number, error?: number): TestWorker {
  return new TestWorker('fence-signaler', { buffer: arena.buffer, handle: f.get().handle, delayMs, error });
}

describe('contexts, seqnos and ordering', () => {
  it('contextAlloc starts at 1 and hands out consecutive ranges', () => {
    const arena = newArena();
    expect(Fence.contextAlloc(arena)).toBe(1);
    expect(Fence.contextAlloc(arena, 3)).toBe(2);
    expect(Fence.contextAlloc(arena)).toBe(5);
    rejects(arena, () => Fence.contextAlloc(arena, 0), 'EINVAL');
    rejects(arena, () => Fence.contextAlloc(arena, -1), 'EINVAL');
    rejects(arena, () => Fence.contextAlloc(arena, 1.5), 'EINVAL');
    expect(Fence.contextAlloc(arena)).toBe(6); // failed calls reserved nothing
  });

  it('create keeps context and seqno; 32-bit seqnos unless seqno64', () => {
    const arena = newArena();
    const ctx = Fence.contextAlloc(arena);
    const f = Fence.create(arena, { context: ctx, seqno: 0xffffffff });
    expect(f.context).toBe(ctx);
    expect(f.seqno).toBe(0xffffffff);
    expect(f.seqno64).toBe(false);
    const big = Fence.create(arena, { context: ctx, seqno: 2 ** 40 + 5, seqno64: true });
    expect(big.seqno).toBe(2 ** 40 + 5);
    expect(big.seqno64).toBe(true);
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: 2 ** 32 }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: -1 }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: 1.5 }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: -1, seqno: 1 }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: 2 ** 31, seqno: 1 }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, null as never), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: 1, ops: { id: 1, name: 'x', table: {} } as never }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: 1, lock: 'lock' as never }), 'EINVAL');
    f.put();
    big.put();
  });

  it('isLater / later: 32-bit wrap-around, 64-bit plain order, other contexts EINVAL', () => {
    const arena = newArena();
    const ctx = Fence.contextAlloc(arena);
    const f1 = fence(arena, 1, { context: ctx });
    const f2 = fence(arena, 2, { context: ctx });
    const fMax = fence(arena, 0xffffffff, { context: ctx });
    const fHalf = fence(arena, 0x80000002, { context: ctx });
    expect(Fence.isLater(f2, f1)).toBe(true);
    expect(Fence.isLater(f1, f2)).toBe(false);
    expect(Fence.isLater(f1, f1)).toBe(false);
    // Wrap-around: 1 comes after 0xffffffff; 0x80000002 is "before" 1 (more than 2^31 ahead).
    expect(Fence.isLater(f1, fMax)).toBe(true);
    expect(Fence.isLater(fMax, f1)).toBe(false);
    expect(Fence.isLater(f1, fHalf)).toBe(true);
    expect(Fence.isLater(fHalf, f1)).toBe(false);
    // 64-bit fences compare plainly.
    const ctx64 = Fence.contextAlloc(arena);
    const g1 = fence(arena, 1, { context: ctx64, seqno64: true });
    const gBig = fence(arena, 2 ** 32 + 1, { context: ctx64, seqno64: true });
    const gMax = fence(arena, 0xffffffff, { context: ctx64, seqno64: true });
    expect(Fence.isLater(gBig, g1)).toBe(true); // same low 32 bits, later by the high ones
    expect(Fence.isLater(g1, gMax)).toBe(false);
    expect(Fence.isLater(gMax, g1)).toBe(true);
    rejects(arena, () => Fence.isLater(f1, g1), 'EINVAL');
    rejects(arena, () => Fence.later(f1, g1), 'EINVAL');
    expect(Fence.later(f1, f2)).toBe(f2);
    expect(Fence.later(f2, f1)).toBe(f2);
    f2.signal();
    expect(Fence.later(f1, f2)).toBeNull(); // the later one is already signaled
    for (const f of [f1, f2, fMax, fHalf, g1, gBig, gMax]) f.put();
  });
});

describe('signaling', () => {
  it('signal / checkAndSignal / signalTimestamp are idempotent; timestamp and status follow', () => {
    const arena = newArena();
    const f = fence(arena);
    expect(f.isSignaled()).toBe(false);
    expect(f.testSignaledFlag()).toBe(false);
    expect(f.status()).toBe(0);
    expect(f.timestamp).toBeUndefined();
    const before = nowNs();
    f.signal();
    const after = nowNs();
    const ts = f.timestamp!;
    expect(typeof ts).toBe('bigint');
    expect(ts >= before && ts <= after).toBe(true);
    expect(f.isSignaled()).toBe(true);
    expect(f.testSignaledFlag()).toBe(true);
    expect(f.status()).toBe(1);
    f.signal();
    expect(f.checkAndSignal()).toBe(true);
    f.signalTimestamp(5n);
    expect(f.timestamp).toBe(ts); // nothing changed
    const g = fence(arena);
    expect(g.checkAndSignal()).toBe(false);
    expect(g.checkAndSignal()).toBe(true);
    const h = fence(arena);
    h.signalTimestamp(123_456_789n);
    expect(h.timestamp).toBe(123_456_789n);
    h.signalTimestamp(1n);
    expect(h.timestamp).toBe(123_456_789n);
    const k = fence(arena);
    rejects(arena, () => k.signalTimestamp(-1n), 'EINVAL');
    rejects(arena, () => k.signalTimestamp(5 as never), 'EINVAL');
    expect(k.isSignaled()).toBe(false);
    for (const x of [f, g, h, k]) x.put();
  });

  it('timestamp uses the same monotonic clock in every thread', async () => {
    const arena = newArena();
    const f = fence(arena);
    const before = nowNs();
    const w = signalLater(arena, f, 0);
    await w.next('signaled');
    await w.exited();
    const after = nowNs();
    expect(f.timestamp! >= before && f.timestamp! <= after).toBe(true);
    f.put();
  });

  it('setError: before signal only, with a negative errno in -4095..-1', () => {
    const arena = newArena();
    const f = fence(arena);
    expect(f.error).toBe(0);
    rejects(arena, () => f.setError(0), 'EINVAL');
    rejects(arena, () => f.setError(5), 'EINVAL');
    rejects(arena, () => f.setError(-4096), 'EINVAL');
    rejects(arena, () => f.setError(-1.5), 'EINVAL');
    rejects(arena, () => f.setError(NaN), 'EINVAL');
    f.setError(-4095);
    f.setError(Errno.EIO); // may change before signal
    expect(f.error).toBe(Errno.EIO);
    expect(f.status()).toBe(0); // still pending: status reports the error only once signaled
    f.signal();
    expect(f.status()).toBe(Errno.EIO);
    expect(f.error).toBe(-5);
    rejects(arena, () => f.setError(Errno.ENOENT), 'EINVAL');
    expect(f.status()).toBe(Errno.EIO);
    f.put();
  });

  it('isSignaled consults ops.signaled and signals when it says so; testSignaledFlag does not', () => {
    const arena = newArena();
    let done = false;
    let polls = 0;
    const ops = defineFenceOps('test:polled', {
      getDriverName: () => 'polled-driver',
      getTimelineName: () => 'polled-timeline',
      signaled: () => {
        polls++;
        return done;
      },
    });
    const f = fence(arena, 1, { ops });
    const ran: number[] = [];
    f.addCallback(() => ran.push(1));
    expect(f.isSignaled()).toBe(false);
    expect(f.status()).toBe(0);
    expect(polls).toBeGreaterThanOrEqual(2);
    done = true;
    expect(f.testSignaledFlag()).toBe(false); // the flag alone: the ops are not asked
    expect(f.isSignaled()).toBe(true);
    expect(f.testSignaledFlag()).toBe(true);
    expect(ran).toEqual([1]); // signaling through isSignaled ran the callbacks
    const n = polls;
    expect(f.isSignaled()).toBe(true);
    expect(polls).toBe(n); // once signaled, the ops are never asked again
    const g = fence(arena, 2, { ops });
    expect(g.status()).toBe(1); // status asks too
    f.put();
    g.put();
  });

  it('enableSignaling calls ops.enableSignaling exactly once; false from it signals', () => {
    const arena = newArena();
    const calls: number[] = [];
    let answer = true;
    const ops = defineFenceOps('test:enable', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      enableSignaling: (f) => {
        f.assertHeld(); // called under the fence lock
        calls.push(f.seqno);
        return answer;
      },
    });
    const f = fence(arena, 1, { ops });
    f.enableSignaling();
    f.enableSignaling();
    expect(f.addCallback(() => {})).not.toBeNull(); // would enable too: already done
    expect(f.wait(0)).toBe(false);
    expect(calls).toEqual([1]);
    expect(f.isSignaled()).toBe(false);
    answer = false;
    const g = fence(arena, 2, { ops });
    g.enableSignaling();
    expect(calls).toEqual([1, 2]);
    expect(g.isSignaled()).toBe(true); // false → signaled at once
    // addCallback enables signaling; when that signals, the callback is refused (kernel -ENOENT)
    // and never runs: the caller does the work itself, as for an already signaled fence.
    const h = fence(arena, 3, { ops });
    const ran: string[] = [];
    expect(h.addCallback(() => ran.push('h'))).toBeNull();
    expect(calls).toEqual([1, 2, 3]);
    expect(ran).toEqual([]);
    expect(h.isSignaled()).toBe(true);
    // A signaled fence never asks.
    const k = fence(arena, 4, { ops });
    k.signal();
    k.enableSignaling();
    expect(calls).toEqual([1, 2, 3]);
    f.signal();
    for (const x of [f, g, h, k]) x.put();
  });
});

describe('ops and names', () => {
  it('default ops, driverName / timelineName, detached after signal; describe()', () => {
    const arena = newArena();
    const ops = defineFenceOps('test:names', {
      getDriverName: () => 'gpu-driver',
      getTimelineName: (f) => `ring-${f.context}`,
    });
    const f = fence(arena, 42, { ops });
    expect(f.ops).toBe(ops);
    expect(f.driverName).toBe('gpu-driver');
    expect(f.timelineName).toBe(`ring-${f.context}`);
    expect(f.describe()).toBe(`${f.context}:42 ring-${f.context} gpu-driver unsignalled`);
    f.signal();
    expect(f.driverName).toBe('detached-driver');
    expect(f.timelineName).toBe('signaled-timeline');
    expect(f.describe()).toBe(`${f.context}:42   signalled`); // names empty once the ops are detached
    const plain = fence(arena, 7);
    expect(plain.driverName).toBe('fencelab');
    expect(plain.timelineName).toBe('unbound');
    f.put();
    plain.put();
  });

  it('defineFenceOps: mandatory names, optional functions, non-empty name → else EINVAL', () => {
    const arena = newArena();
    const d = () => 'd';
    rejects(arena, () => defineFenceOps('test:bad1', { getTimelineName: d } as never), 'EINVAL');
    rejects(arena, () => defineFenceOps('test:bad2', { getDriverName: d } as never), 'EINVAL');
    rejects(arena, () => defineFenceOps('test:bad3', {} as never), 'EINVAL');
    rejects(arena, () => defineFenceOps('test:bad4', null as never), 'EINVAL');
    rejects(arena, () => defineFenceOps('', { getDriverName: d, getTimelineName: d }), 'EINVAL');
    rejects(arena, () => defineFenceOps('test:bad5', { getDriverName: d, getTimelineName: d, release: 5 as never }), 'EINVAL');
    rejects(arena, () => defineFenceOps('test:bad6', { getDriverName: 'd' as never, getTimelineName: d }), 'EINVAL');
    const ok = defineFenceOps('test:good', { getDriverName: d, getTimelineName: d });
    expect(ok.name).toBe('test:good');
    expect(typeof ok.id).toBe('number');
  });

  it('setDeadline passes the hint to ops.setDeadline while unsignaled', () => {
    const arena = newArena();
    const seen: bigint[] = [];
    const ops = defineFenceOps('test:deadline', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      setDeadline: (_f, ns) => seen.push(ns),
    });
    const f = fence(arena, 1, { ops });
    f.setDeadline(1000n);
    f.setDeadline(500n);
    expect(seen).toEqual([1000n, 500n]);
    rejects(arena, () => f.setDeadline(-1n), 'EINVAL');
    rejects(arena, () => f.setDeadline(3 as never), 'EINVAL');
    f.signal();
    f.setDeadline(1n);
    expect(seen).toEqual([1000n, 500n]);
    const plain = fence(arena);
    plain.setDeadline(1n); // no setDeadline op: a no-op
    f.put();
    plain.put();
  });

  it('ops.release runs once, at the last put, with the fence still readable', () => {
    const arena = newArena();
    const released: { seqno: number; signaled: boolean; handle: number }[] = [];
    const ops = defineFenceOps('test:release', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      release: (f) => released.push({ seqno: f.seqno, signaled: f.testSignaledFlag(), handle: f.handle }),
    });
    const f = fence(arena, 9, { ops });
    const handle = f.handle;
    f.get();
    f.signal();
    f.put();
    expect(released).toEqual([]);
    f.put();
    expect(released).toEqual([{ seqno: 9, signaled: true, handle }]);
    rejects(arena, () => Fence.fromHandle(arena, handle), 'EBADF');
  });
});

describe('callbacks', () => {
  it('run exactly once, in order, before signal() returns; null once signaled', () => {
    const arena = newArena();
    const f = fence(arena);
    const ran: string[] = [];
    const seen: Fence[] = [];
    const a = f.addCallback((x) => {
      seen.push(x);
      ran.push('a');
    });
    const b = f.addCallback(() => ran.push('b'));
    const c = f.addCallback(() => ran.push('c'));
    expect(a && b && c).toBeTruthy();
    expect(a!.fence).toBe(f);
    f.signal();
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(seen[0].handle).toBe(f.handle);
    f.signal();
    f.checkAndSignal();
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(f.addCallback(() => ran.push('late'))).toBeNull(); // kernel -ENOENT
    expect(ran).toEqual(['a', 'b', 'c']);
    rejects(arena, () => f.addCallback(5 as never), 'EINVAL');
    f.put();
  });

  it('removeCallback: true only while pending; a removed callback never runs', () => {
    const arena = newArena();
    const f = fence(arena);
    const ran: string[] = [];
    const a = f.addCallback(() => ran.push('a'))!;
    const b = f.addCallback(() => ran.push('b'))!;
    const c = f.addCallback(() => ran.push('c'))!;
    expect(f.removeCallback(b)).toBe(true);
    expect(f.removeCallback(b)).toBe(false);
    f.signal();
    expect(ran).toEqual(['a', 'c']);
    expect(f.removeCallback(a)).toBe(false); // already ran
    expect(f.removeCallback(c)).toBe(false);
    const g = fence(arena);
    rejects(arena, () => g.removeCallback(a), 'EINVAL'); // not g's
    rejects(arena, () => g.removeCallback(null as unknown as FenceCallback), 'EINVAL');
    // Removing the first and the last of a list keeps the list linked.
    const r: string[] = [];
    const x = g.addCallback(() => r.push('x'))!;
    g.addCallback(() => r.push('y'));
    const z = g.addCallback(() => r.push('z'))!;
    expect(g.removeCallback(x)).toBe(true);
    expect(g.removeCallback(z)).toBe(true);
    g.signal();
    expect(r).toEqual(['y']);
    f.put();
    g.put();
  });

  it('a callback of this thread signaled by another thread runs exactly once, from its inbox', async () => {
    const arena = newArena();
    const f = fence(arena);
    const ran: number[] = [];
    f.addCallback((x) => ran.push(x.status()));
    const w = signalLater(arena, f, 0);
    await w.next('signaled');
    await w.exited();
    expect(f.isSignaled()).toBe(true);
    // Functions cannot cross threads: the node waits in our inbox until this thread drains it
    // (explicitly here, or by the runtime's dispatcher when one listens on the doorbell).
    drainInbox(arena);
    for (let i = 0; i < 100 && ran.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 10));
    expect(ran).toEqual([1]);
    expect(drainInbox(arena)).toBe(0);
    expect(ran).toEqual([1]);
    expect(f.refcount).toBe(1); // the delivery's own reference was dropped after it ran
    f.put();
  });

  it('a throwing callback does not stop the others; signal rethrows after all ran', () => {
    const arena = newArena();
    const f = fence(arena);
    const ran: string[] = [];
    f.addCallback(() => ran.push('a'));
    f.addCallback(() => {
      throw new Error('boom');
    });
    f.addCallback(() => ran.push('c'));
    expect(() => f.signal()).toThrow('boom');
    expect(ran).toEqual(['a', 'c']);
    expect(f.isSignaled()).toBe(true);
    f.put();
  });

  it('a callback may signal another fence and put its own references', () => {
    const arena = newArena();
    const f = fence(arena);
    const g = fence(arena);
    const order: string[] = [];
    g.addCallback(() => order.push('g'));
    f.addCallback((x) => {
      order.push('f');
      g.signal();
      expect(x.status()).toBe(1); // the lock is free again inside callbacks
    });
    f.signal();
    expect(order).toEqual(['f', 'g']);
    f.put();
    g.put();
  });
});

describe('references and release', () => {
  it('get / put / refcount; a released fence is gone (EBADF)', () => {
    const arena = newArena();
    const f = fence(arena);
    expect(f.refcount).toBe(1);
    expect(f.get()).toBe(f);
    expect(f.refcount).toBe(2);
    const view = Fence.fromHandle(arena, f.handle); // takes no reference
    expect(view.refcount).toBe(2);
    view.put();
    expect(f.refcount).toBe(1);
    f.put();
    rejects(arena, () => f.put(), 'EBADF');
    rejects(arena, () => f.get(), 'EBADF');
    rejects(arena, () => f.signal(), 'EBADF');
    rejects(arena, () => f.refcount, 'EBADF');
    rejects(arena, () => Fence.fromHandle(arena, f.handle), 'EBADF');
    rejects(arena, () => Fence.fromHandle(arena, 0), 'EBADF');
  });

  it('release of an unsignaled fence with pending callbacks signals it with -EDEADLK first', () => {
    const arena = newArena();
    const f = fence(arena);
    const seen: { status: number; error: number }[] = [];
    f.addCallback((x) => seen.push({ status: x.status(), error: x.error }));
    f.put();
    expect(seen).toEqual([{ status: Errno.EDEADLK, error: -35 }]);
    // Without callbacks an unsignaled fence is simply released.
    const g = fence(arena);
    g.put();
    // A fence whose callbacks were all removed is released quietly too.
    const h = fence(arena);
    const cb = h.addCallback(() => seen.push({ status: 99, error: 99 }))!;
    h.removeCallback(cb);
    h.put();
    expect(seen).toHaveLength(1);
  });

  it('the ops see the -EDEADLK signal before release', () => {
    const arena = newArena();
    const events: string[] = [];
    const ops = defineFenceOps('test:deadlk', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      release: (f) => events.push(`release ${f.status()}`),
    });
    const f = fence(arena, 1, { ops });
    f.addCallback((x) => events.push(`callback ${x.error}`));
    f.put();
    expect(events).toEqual([`callback ${Errno.EDEADLK}`, `release ${Errno.EDEADLK}`]);
  });
});

describe('stubs', () => {
  it('Fence.stub: one permanent signaled fence (context 0, seqno 0) per arena', () => {
    const arena = newArena();
    const s1 = Fence.stub(arena);
    const s2 = Fence.stub(arena);
    expect(s1.handle).toBe(s2.handle);
    expect(s1.context).toBe(0);
    expect(s1.seqno).toBe(0);
    expect(s1.isSignaled()).toBe(true);
    expect(s1.status()).toBe(1);
    expect(s1.timestamp).toBeTypeOf('bigint');
    expect(s1.addCallback(() => {})).toBeNull();
    s1.put();
    s2.put();
    const s3 = Fence.stub(arena); // still there after its references were put
    expect(s3.handle).toBe(s1.handle);
    s3.put();
    expect(Fence.contextAlloc(arena)).toBe(1); // the stub does not take a context
  });

  it('Fence.privateStub: a new signaled fence on its own context, optionally timestamped', () => {
    const arena = newArena();
    const p = Fence.privateStub(arena);
    const q = Fence.privateStub(arena, 77n);
    expect(p.isSignaled()).toBe(true);
    expect(p.context).toBeGreaterThanOrEqual(1);
    expect(q.context).not.toBe(p.context);
    expect(q.timestamp).toBe(77n);
    expect(p.handle).not.toBe(q.handle);
    expect(p.refcount).toBe(1);
    rejects(arena, () => Fence.privateStub(arena, -1n), 'EINVAL');
    rejects(arena, () => Fence.privateStub(arena, 3 as never), 'EINVAL');
    p.put();
    q.put(); // private stubs are freed like any fence
  });
});

describe('locking', () => {
  it('inline lock by default; a borrowed lock when given; withLock holds it around fn', () => {
    const arena = newArena();
    const f = fence(arena);
    expect(f.usesInlineLock).toBe(true);
    const lender = SpinLock.create(arena);
    const g = fence(arena, 1, { lock: lender });
    expect(g.usesInlineLock).toBe(false);
    const op = arena.alloc(32);
    const h = fence(arena, 1, { lock: op }); // a raw block lends its word 0
    expect(h.usesInlineLock).toBe(false);
    const k = fence(arena, 1, { lock: lender.ref });
    expect(k.withLock(() => lender.owner)).toBe(arena.slot); // k's lock IS lender's word
    expect(lender.owner).toBe(-1);

    expect(f.withLock(() => 5)).toBe(5);
    f.withLock(() => f.assertHeld());
    rejects(arena, () => f.assertHeld(), 'EPERM');
    rejects(arena, () => f.withLock(() => f.withLock(() => 0)), 'EDEADLK');
    expect(() =>
      f.withLock(() => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(f.withLock(() => 1)).toBe(1); // released after the throw
    rejects(arena, () => f.withLock(() => f.signal()), 'EDEADLK'); // signal takes the lock itself
    expect(f.isSignaled()).toBe(false);
    expect(f.withLock(() => f.signalLocked())).toBe(false);
    expect(f.isSignaled()).toBe(true);
    // Borrowed: the lender's lock held elsewhere blocks the fence.
    lender.lock();
    rejects(arena, () => g.withLock(() => 0), 'EDEADLK'); // we hold g's lock through the lender
    lender.unlock();
    rejects(arena, () => Fence.create(arena, { context: 1, seqno: 1, lock: 0 }), 'EBADF');
    // A lock of another algorithm than the arena's cannot be lent: both would write the one word.
    const ticket = SpinLock.create(arena, 'ticket');
    rejects(arena, () => Fence.create(arena, { context: 1, seqno: 1, lock: ticket }), 'EINVAL');
    rejects(arena, () => Fence.create(arena, { context: 1, seqno: 1, lock: ticket.ref }), 'EINVAL');
    ticket.free();
    rejects(arena, () => Fence.create(arena, { context: 1, seqno: 1, lock: SpinLock.at(arena, op, 0, 'tas') }), 'EINVAL');
    const stale = arena.alloc(8);
    arena.free(stale);
    rejects(arena, () => Fence.create(arena, { context: 1, seqno: 1, lock: stale }), 'EBADF');
    for (const x of [f, g, h, k]) x.put();
    lender.free();
    arena.free(op);
  });

  it('the fence block is at most 64 bytes including its header', () => {
    const arena = newArena();
    const before = arena.stats().used;
    const f = fence(arena);
    const g = fence(arena, 1, { seqno64: true });
    const used = arena.stats().used - before;
    expect(used / 2).toBeLessThanOrEqual(64);
    const leak = arena.check().leaks.find((l) => l.ref === f.handle)!;
    expect(leak.bytes).toBeLessThanOrEqual(64);
    f.put();
    g.put();
  });
});

describe.each(LOCK_KINDS.map((k) => [k]))('fence lock() / unlock() in a %s arena', (kind: LockKind) => {
  it('takes and drops the inline lock; every refusal leaves the lock as it was', async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, lockKind: kind });
    arenas.push(arena);
    const f = fence(arena);
    const held = (x: Fence) => {
      try {
        x.assertHeld();
        return true;
      } catch {
        return false;
      }
    };
    expect(f.lock()).toBe(true);
    expect(held(f)).toBe(true);
    rejects(arena, () => f.lock(), 'EDEADLK');
    rejects(arena, () => f.lock(50), 'EDEADLK');
    f.unlock();
    expect(held(f)).toBe(false);
    rejects(arena, () => f.unlock(), 'EPERM');
    // A bad timeout is refused even though the lock is free.
    for (const t of [-1, NaN, '5' as never]) rejects(arena, () => f.lock(t), 'EINVAL');
    expect(held(f)).toBe(false);
    expect(f.lock(0)).toBe(true);
    f.unlock();

    // Enabling signaling (or a wait) under the fence's own lock: EDEADLK, as ever, without the lock taken.
    const e = fence(arena);
    e.lock();
    rejects(arena, () => e.enableSignaling(), 'EDEADLK');
    rejects(arena, () => e.wait(10), 'EDEADLK');
    e.unlock();
    e.put();

    // Held by another thread: no fast path may take it or drop it.
    const holder = new TestWorker('lock-holder', { buffer: arena.buffer });
    try {
      await holder.next('ready');
      await holder.ask({ type: 'lockFence', handle: f.handle }, 'locked');
      expect(f.lock(0)).toBe(false);
      expect(f.lock(5)).toBe(false);
      // Enabling signaling takes no lock (a plain fence has no op to call): it does not wait for the holder.
      f.enableSignaling();
      expect(f.wait(5)).toBe(false);
      const word = Atomics.load(arena.i32, f.lockWordIndex);
      rejects(arena, () => f.unlock(), 'EPERM');
      expect(Atomics.load(arena.i32, f.lockWordIndex)).toBe(word);
      await holder.ask({ type: 'unlock' }, 'unlocked');
      expect(f.lock()).toBe(true);
      f.unlock();
      await holder.ask({ type: 'exit' }, 'bye');
      await holder.exited();
    } finally {
      await holder.worker.terminate();
    }

    // A stale view: the fence released and its block handed to a new fence (LIFO reuse).
    f.put();
    const g = fence(arena);
    expect(g.fw).toBe(f.fw);
    rejects(arena, () => f.lock(), 'EBADF');
    expect(g.lock()).toBe(true);
    rejects(arena, () => f.unlock(), 'EBADF'); // must not drop g's lock through the old view
    expect(held(g)).toBe(true);
    g.unlock();
    g.put();
  });
});

describe('waiting', () => {
  it('wait(ms): timeout on a pending fence, true once signaled (by another thread)', async () => {
    const arena = newArena();
    const f = fence(arena);
    expect(f.wait(0)).toBe(false);
    expect(f.wait(15)).toBe(false);
    rejects(arena, () => f.wait(-1), 'EINVAL');
    rejects(arena, () => f.wait(NaN), 'EINVAL');
    const w = signalLater(arena, f, 30);
    expect(f.wait(60_000)).toBe(true); // blocks the main thread; the worker signals
    expect(f.isSignaled()).toBe(true);
    await w.next('signaled');
    await w.exited();
    expect(f.wait(0)).toBe(true);
    expect(f.refcount).toBe(1); // the worker put its reference
    f.put();
  });

  it('waitAsync(ms): resolves false on timeout, true on a signal; the event loop keeps running', async () => {
    const arena = newArena();
    const f = fence(arena);
    expect(await f.waitAsync(10)).toBe(false);
    await expect(f.waitAsync(-1)).rejects.toBeInstanceOf(FenceError);
    expect(arena.check().ok).toBe(true);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const p = f.waitAsync(60_000);
    expect(Fence.pendingAsyncWaits).toBe(1);
    setTimeout(() => f.signal(), 30);
    expect(await p).toBe(true);
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(Fence.pendingAsyncWaits).toBe(0);
    // Signaled by another thread.
    const g = fence(arena);
    const w = signalLater(arena, g, 20);
    expect(await g.waitAsync(60_000)).toBe(true);
    await w.exited();
    expect(await g.waitAsync(0)).toBe(true);
    f.put();
    g.put();
  });

  it('a pending waitAsync keeps the process alive until it settles', () => {
    const index = fileURLToPath(new URL('../dist/src/index.js', import.meta.url));
    const script = `
      import { Arena, Fence } from ${JSON.stringify(index)};
      import { Worker } from 'node:worker_threads';
      const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
      const a = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
      const b = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 2 });
      b.waitAsync(20000).then((r) => console.log('signal-wait', r, b.status()));
      a.waitAsync(150).then((r) => {
        console.log('timeout-wait', r);
        // Started once the timeout was seen, so the lines come in this order by construction. The
        // signaler is unref'd: only the pending wait of b can keep this process running.
        const w = new Worker(new URL(${JSON.stringify(fixture('fence-signaler').href)}),
          { workerData: { buffer: arena.buffer, handle: b.get().handle, delayMs: 200 } });
        w.unref();
      });
    `;
    const dir = mkdtempSync(join(tmpdir(), 'fencelab-keepalive-'));
    const file = join(dir, 'keepalive.mjs');
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['timeout-wait false', 'signal-wait true 1']);
    expect(r.status).toBe(0);
  });

  it('waitAny / waitAnyAsync: index of a signaled fence, -1 on timeout', async () => {
    const arena = newArena();
    const fs = [fence(arena, 1), fence(arena, 2), fence(arena, 3)];
    expect(Fence.waitAny(fs, 0)).toBe(-1);
    expect(Fence.waitAny(fs, 10)).toBe(-1);
    expect(await Fence.waitAnyAsync(fs, 10)).toBe(-1);
    rejects(arena, () => Fence.waitAny([], 10), 'EINVAL');
    rejects(arena, () => Fence.waitAny([fs[0], {} as Fence], 10), 'EINVAL');
    rejects(arena, () => Fence.waitAny(fs, -5), 'EINVAL');
    const other = newArena();
    const foreign = fence(other);
    rejects(arena, () => Fence.waitAny([fs[0], foreign], 10), 'EINVAL');
    foreign.put();
    // Signaled from another thread while we sleep.
    const w = signalLater(arena, fs[1], 30);
    expect(Fence.waitAny(fs, 60_000)).toBe(1);
    await w.exited();
    expect(Fence.waitAny(fs, 0)).toBe(1); // already signaled: immediate
    // Async, signaled later on this thread.
    const rest = [fs[0], fs[2]];
    setTimeout(() => fs[2].signal(), 20);
    expect(await Fence.waitAnyAsync(rest, 60_000)).toBe(1);
    expect(await Fence.waitAnyAsync(rest, 0)).toBe(1);
    fs[0].signal();
    for (const f of fs) f.put();
  });

  it("waitAny / waitAnyAsync wait on the fences passed, whatever the caller does to its array meanwhile", async () => {
    // The wait and its clean-up read a copy: a caller that cleared its array while the async wait
    // was pending stranded it (never settled after both signaled; with a timeout, a TypeError and
    // two wake nodes left on the fences), and one that replaced an element got EINVAL.
    const arena = newArena();
    const [a, b, c] = [fence(arena, 1), fence(arena, 2), fence(arena, 3)];
    const cleared = [a, b];
    const pending = Fence.waitAnyAsync(cleared, 60_000);
    cleared.length = 0;
    setTimeout(() => b.signal(), 10);
    expect(await pending).toBe(1);
    const replaced = [a, c];
    const timedOut = Fence.waitAnyAsync(replaced, 20);
    replaced[0] = b;
    replaced.shift();
    expect(await timedOut).toBe(-1);
    // An element read once: a getter that changes its answer cannot swap in a non-fence.
    let reads = 0;
    const list = [a];
    Object.defineProperty(list, 1, { enumerable: true, get: () => (++reads === 1 ? c : 42) });
    expect(Fence.waitAny(list, 1)).toBe(-1);
    expect(reads).toBe(1);
    a.signal();
    c.signal();
    for (const f of [a, b, c]) f.put();
    expectClean(arena);
  });

  it('wait of a fence signaled with an error returns true; status tells the error', async () => {
    const arena = newArena();
    const f = fence(arena);
    const w = signalLater(arena, f, 10, Errno.ECANCELED);
    expect(await f.waitAsync(60_000)).toBe(true);
    await w.exited();
    expect(f.status()).toBe(Errno.ECANCELED);
    f.put();
  });

  it('every timeout argument is checked alike: EINVAL naming it, for any value', async () => {
    const arena = newArena();
    const f = fence(arena);
    const lock = SpinLock.create(arena, 'futex');
    const d = Driver.create(arena);
    const bad: unknown[] = [-1, NaN, '5', Symbol('t'), Object.create(null), { toString: () => { throw new Error('no'); } }];
    for (const t of bad) {
      const ms = t as number;
      expect(rejects(arena, () => f.wait(ms), 'EINVAL').message).toContain('wait timeoutMs must be a number');
      expect(rejects(arena, () => Fence.waitAny([f], ms), 'EINVAL').message).toContain('waitAny timeoutMs');
      expect(rejects(arena, () => f.lock(ms), 'EINVAL').message).toContain('lock timeoutMs');
      expect(rejects(arena, () => lock.lock(ms), 'EINVAL').message).toContain('lock timeoutMs');
      expect(rejects(arena, () => waitInbox(arena, ms), 'EINVAL').message).toContain('waitInbox timeoutMs');
      expect(rejects(arena, () => d.waitBell(d.bell, ms), 'EINVAL').message).toContain('waitBell timeoutMs');
      await expect(f.waitAsync(ms)).rejects.toMatchObject({ code: 'EINVAL' });
    }
    expect(rejects(arena, () => f.wait(Symbol('late') as never), 'EINVAL').message).toContain('got Symbol(late)');
    d.destroy();
    lock.free();
    f.put();
  });
});

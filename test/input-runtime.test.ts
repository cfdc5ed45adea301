/**
 * Bad input to the runtime's free functions (dispatcher, inbox, ledger, parked references, the
 * fence pool and graphs): each is refused with a typed FenceError naming the argument, before
 * anything changes — no dispatcher started, no reference or callback taken, nothing leaked.
 */
import { describe, expect, it } from 'vitest';
import {
  Arena, Errno, Fence, FenceError, createFencePool, dispatcherOf, drain, drainInbox, dropParkedRef, importFd, ledgerCompact, ledgerSize,
  lockOrderCount, lockOrderReports, parkRef, putTracked, runGraph, runWithFence, signalError, startDispatcher, stopDispatcher,
  taskResult, trackRef, waitInbox, watchPool, fenceTask, defineFenceOps, type FencePool, type FenceTaskMessage, type GraphNode,
} from '../src/index.js';
import { expectClean, fixture, rejects, throwsCode } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });
const fenceOf = (arena: Arena) => Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
/** A fence whose last reference was put. */
function released(arena: Arena): Fence {
  const f = fenceOf(arena);
  f.put();
  return f;
}
const poolOf = (arena: Arena) => createFencePool(arena, { filename: fixture('piscina-task').href, maxThreads: 1, minThreads: 0 });
// Values cast through unknown: the point is what a caller without types passes.
const bad = <T>(v: unknown) => v as T;

describe('startDispatcher', () => {
  it('refuses a non-arena and bad options (EINVAL) before starting anything', () => {
    const arena = arenaOf();
    rejects(arena, () => startDispatcher(bad({})), 'EINVAL');
    const e = rejects(arena, () => startDispatcher(arena, bad({ onerror: () => {} })), 'EINVAL');
    expect(e.message).toContain('onError');
    rejects(arena, () => startDispatcher(arena, bad({ onError: 5 })), 'EINVAL');
    rejects(arena, () => startDispatcher(arena, bad('x')), 'EINVAL');
    expect(dispatcherOf(arena)).toBeUndefined();
    expectClean(arena);
    arena.detach();
  });
});

describe('arena arguments of the runtime functions', () => {
  it('each refuses a value that is not an Arena with EINVAL naming the function', () => {
    const arena = arenaOf();
    const cells = new Float64Array(1);
    const calls: [string, () => unknown][] = [
      ['drain', () => drain(bad({}))],
      ['drainInbox', () => drainInbox(bad({}))],
      ['waitInbox', () => waitInbox(bad({}), 0)],
      ['stopDispatcher', () => stopDispatcher(bad(5))],
      ['dispatcherOf', () => dispatcherOf(bad(5))],
      ['importFd', () => importFd(bad({}), 1)],
      ['ledgerSize', () => ledgerSize(bad({}))],
      ['ledgerCompact', () => ledgerCompact(bad({}))],
      ['lockOrderCount', () => lockOrderCount(bad(null))],
      ['lockOrderReports', () => lockOrderReports(bad(5))],
      ['dropParkedRef', () => dropParkedRef(bad(null), cells, 0)],
      ['watchPool', () => watchPool(bad(Symbol('a')), bad({ threads: [], on: () => {} }))],
      ['createFencePool', () => createFencePool(bad(null), { filename: fixture('piscina-task').href })],
    ];
    for (const [name, call] of calls) expect(rejects(arena, call, 'EINVAL').message, name).toContain(name);
    rejects(arena, () => watchPool(arena, bad({})), 'EINVAL');
    expect(ledgerSize(arena)).toBe(0);
    expectClean(arena);
    arena.detach();
  });
});

describe('importFd of an fd that is not open', () => {
  it('is EBADF and leaves no ledger behind: the bytes in use are as before', () => {
    const arena = arenaOf();
    const used = arena.stats().used;
    for (const fd of [12345, -1, 2 ** 40, bad<number>('x'), bad<number>(null)]) rejects(arena, () => importFd(arena, fd), 'EBADF');
    expect(arena.stats().used).toBe(used);
    // Nor does it free an empty ledger the thread had before (the bytes in use stay as they were).
    const f = fenceOf(arena);
    trackRef(f);
    putTracked(f);
    const withLedger = arena.stats().used;
    expect(withLedger).toBeGreaterThan(used);
    rejects(arena, () => importFd(arena, 12345), 'EBADF');
    expect(arena.stats().used).toBe(withLedger);
    expect(ledgerCompact(arena)).toBe(0);
    expectClean(arena);
    arena.detach();
  });
});

describe('fence arguments of the runtime functions', () => {
  it('EINVAL for a value that is not a Fence, EBADF for a released fence; nothing changes', () => {
    const arena = arenaOf();
    const cells = new Float64Array(1);
    const calls: [string, (f: Fence) => unknown][] = [
      ['trackRef', (f) => trackRef(f)],
      ['putTracked', (f) => putTracked(f)],
      ['parkRef', (f) => parkRef(f, cells, 0)],
      ['signalError', (f) => signalError(f, -5)],
      ['taskResult', (f) => taskResult(f)],
    ];
    for (const [name, call] of calls) {
      for (const v of [null, 5, {}, Symbol('f')]) expect(rejects(arena, () => call(bad(v)), 'EINVAL').message, name).toContain(name);
      rejects(arena, () => call(released(arena)), 'EBADF');
    }
    expect([cells[0], ledgerSize(arena)]).toEqual([0, 0]);
    expectClean(arena);
    arena.detach();
  });

  it('a fenceTask handler rejects a message that is not a fence pool\'s with EINVAL', async () => {
    const handler = fenceTask(() => 1);
    for (const msg of [null, 5, {}]) {
      const e = await handler(bad<FenceTaskMessage>(msg)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(FenceError);
      expect((e as FenceError).code).toBe('EINVAL');
    }
  });
});

describe('signalError', () => {
  it('checks the errno even on a signaled fence, and signals nothing on a refusal', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    for (const errno of [bad<number>('junk'), 0, 1, -4096, -1.5, NaN]) rejects(arena, () => signalError(f, errno), 'EINVAL');
    expect(f.isSignaled()).toBe(false);
    f.signal();
    rejects(arena, () => signalError(f, bad('junk')), 'EINVAL');
    expect(signalError(f, Errno.EIO)).toBe(false);
    expect(f.status()).toBe(1);
    f.put();
    expectClean(arena);
    arena.detach();
  });
});

describe('trackRef', () => {
  it('refuses to record more references than the fence has (EINVAL), recording nothing', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    trackRef(f);
    expect(ledgerSize(arena)).toBe(1);
    rejects(arena, () => trackRef(f), 'EINVAL');
    expect([f.refcount, ledgerSize(arena)]).toEqual([1, 1]);
    trackRef(f.get()); // a second reference may be recorded
    expect([f.refcount, ledgerSize(arena)]).toEqual([2, 2]);
    rejects(arena, () => trackRef(f), 'EINVAL');
    putTracked(f);
    putTracked(f);
    expect(ledgerSize(arena)).toBe(0);
    expectClean(arena);
    arena.detach();
  });
});

describe('runWithFence and runGraph options', () => {
  it('refuses bad options, unknown keys and bad arguments before submitting anything', async () => {
    const arena = arenaOf();
    const pool = poolOf(arena);
    const dep = fenceOf(arena);
    try {
      const cases: unknown[] = ['deps', 5, null, { done: 5 }, { dep: [dep] }, { deps: dep }, { deps: [null] }, { name: 5 }, { signal: {} }, { inputNames: [1] }];
      for (const opts of cases) rejects(arena, () => runWithFence(pool, arena, 1, bad(opts)), 'EINVAL');
      expect(rejects(arena, () => runWithFence(pool, arena, 1, bad({ dep: [dep] })), 'EINVAL').message).toContain('deps');
      rejects(arena, () => runWithFence(pool, bad(null), 1), 'EINVAL');
      rejects(arena, () => runWithFence(bad(null), arena, 1), 'EINVAL');
      rejects(arena, () => runGraph(pool, arena, { a: {} }, bad(null)), 'EINVAL');
      rejects(arena, () => runGraph(pool, arena, { a: {} }, bad({ signl: 1 })), 'EINVAL');
      rejects(arena, () => runGraph(pool, arena, { a: {}, b: bad<GraphNode>({ dep: ['a'] }) }), 'EINVAL');
      rejects(arena, () => runGraph(bad(5), arena, {}), 'EINVAL');
      rejects(arena, () => runGraph(pool, bad({}), { a: {} }), 'EINVAL');
      // Object.keys of a revoked Proxy is the engine's TypeError: refused before it.
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      expect(rejects(arena, () => runGraph(pool, arena, bad<Record<string, GraphNode>>(proxy)), 'EINVAL').message).toMatch(/runGraph needs an object of stages, got a revoked proxy/);
      expect(dep.refcount).toBe(1);
      expect(pool.stats().queued).toBe(0);
      const e = await pool.destroy(bad(Symbol('x'))).catch((x: unknown) => x);
      expect((e as FenceError).code).toBe('EINVAL');
      expect(pool.isDestroyed).toBe(false);
    } finally {
      await pool.destroy();
    }
    dep.put();
    expectClean(arena);
    arena.detach();
  });

  it('a released dependency is EBADF with nothing allocated and nothing taken on the other deps', async () => {
    const arena = arenaOf();
    const pool = poolOf(arena);
    const ok = fenceOf(arena);
    try {
      rejects(arena, () => runWithFence(pool, arena, 1, { deps: [released(arena)] }), 'EBADF');
      rejects(arena, () => runWithFence(pool, arena, 1, { deps: [ok, released(arena)] }), 'EBADF');
      expect(ok.refcount).toBe(1);
    } finally {
      await pool.destroy();
    }
    ok.signal(); // a callback left on it would run here
    ok.put();
    expectClean(arena);
    arena.detach();
  });
});

describe('runWithFence with a dependency it cannot arm', () => {
  it('EDEADLK for one whose lock the caller holds, the ops\' own error for one that refuses: nothing submitted, nothing taken', async () => {
    const arena = arenaOf();
    const pool = poolOf(arena);
    const ok = fenceOf(arena);
    const held = fenceOf(arena);
    const ops = defineFenceOps('test:refuses-enable', {
      getDriverName: () => 'test',
      getTimelineName: () => 'refuses',
      enableSignaling: () => {
        throw new Error('enable refused');
      },
    });
    const refusing = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, ops });
    try {
      // Both came back as a job that had "failed" with -ENOMEM, as if submitted.
      held.lock();
      try {
        throwsCode(() => runWithFence(pool, arena, 1, { deps: [ok, held] }), 'EDEADLK');
      } finally {
        held.unlock();
      }
      // Armed on `ok` first: the job is undone, its callback there removed, its references put.
      expect(() => runWithFence(pool, arena, 1, { deps: [ok, refusing] })).toThrow('enable refused');
      for (const f of [ok, held, refusing]) expect(f.refcount).toBe(1);
      expect(pool.stats().queued).toBe(0);
      // Signaled, a dependency is counted without its lock: a callback run under it (signalError's)
      // submits its dependent, which inherits the error.
      const failed = fenceOf(arena);
      let dependent: Fence | null = null;
      failed.addCallback(() => (dependent = runWithFence(pool, arena, 1, { deps: [failed] })));
      signalError(failed, Errno.EIO);
      failed.put();
      expect(dependent).not.toBeNull();
      const d = dependent! as Fence;
      expect(await d.waitAsync(10_000)).toBe(true);
      expect(d.status()).toBe(Errno.EIO);
      d.put();
    } finally {
      await pool.destroy();
    }
    for (const f of [ok, held, refusing]) {
      f.signal(); // a callback left on it would run here
      f.put();
    }
    expectClean(arena);
    arena.detach();
  });
});

describe('createFencePool options', () => {
  it('refuses bad types, ranges and unknown keys with EINVAL; piscina\'s own refusals come back as EINVAL with the cause', () => {
    const arena = arenaOf();
    const filename = fixture('piscina-task').href;
    const cases: unknown[] = [
      { maxThreads: '1' }, { maxThreads: 1, minThreads: 5 }, { maxThreads: NaN }, { maxThreads: Infinity }, { maxThreads: 1.5 },
      { maxThreds: 1 }, { concurrentTasksPerWorker: 0 }, { idleTimeout: -1 }, { lingerUs: 'x' }, { name: 5 },
    ];
    for (const c of cases) rejects(arena, () => createFencePool(arena, bad({ filename, ...(c as object) })), 'EINVAL');
    rejects(arena, () => createFencePool(arena, bad(undefined)), 'EINVAL');
    const e = rejects(arena, () => createFencePool(arena, { filename, maxThreads: 1, minThreads: 1, workerData: Symbol('w') }), 'EINVAL');
    expect((e as Error & { cause?: unknown }).cause).toBeDefined();
    expectClean(arena);
    arena.detach();
  });
});

describe('taskResult of a task that failed with a library error', () => {
  it('throws a FenceError with the library error\'s code', async () => {
    const arena = arenaOf();
    const pool: FencePool = poolOf(arena);
    try {
      const f = runWithFence(pool, arena, 1, { name: 'nonexistentExport' });
      expect(await f.waitAsync(60_000)).toBe(true);
      expect(f.status()).toBe(Errno.EIO);
      let caught: unknown;
      try {
        taskResult(f);
      } catch (x) {
        caught = x;
      }
      expect(caught).toBeInstanceOf(FenceError);
      expect((caught as FenceError).code).toBe('EINVAL');
      expect((caught as FenceError).message).toMatch(/^EINVAL: the pool module has no fenceTask export/);
      f.put();
      // A dependency failed with an errno that has no name here: the dependent's error keeps it
      // (it was EIO, errno -5: what a task that threw reports).
      const dep = fenceOf(arena);
      signalError(dep, -32);
      const g = runWithFence(pool, arena, 1, { deps: [dep] });
      dep.put();
      expect(await g.waitAsync(10_000)).toBe(true);
      expect(g.status()).toBe(-32);
      const e = throwsCode(() => taskResult(g), 'E32');
      expect(e.errno).toBe(-32);
      g.put();
    } finally {
      await pool.destroy();
    }
    expectClean(arena);
    arena.detach();
  });
});

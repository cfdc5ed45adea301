/**
 * Runtime: the per-thread dispatcher (liveness rules, drain for blocking threads), Arena.watch,
 * the reference ledger and the piscina glue — all with real workers and bounded waits.
 */
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Arena, Errno, Fence, SpinLock, createFencePool, dispatcherOf, ledgerSize, pendingCallbacks, putTracked, runWithFence,
  setAutoDispatch, startDispatcher, stopDispatcher, trackRef, waitInbox, watchPool, type FencePool,
} from '../src/index.js';
import { expectClean, fixture, rejects, TestWorker, until } from './support/core.js';

const workers: TestWorker[] = [];
function spawn(name: string, data: unknown): TestWorker {
  const w = new TestWorker(name, data);
  workers.push(w);
  return w;
}
afterEach(async () => {
  setAutoDispatch(true);
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

describe('dispatcher liveness', () => {
  it('an idle dispatcher does not keep a worker alive', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const w = spawn('runtime-exit', { buffer: arena.buffer, mode: 'idle' });
    arena.watch(w.worker);
    await w.next('ready');
    expect(await w.exited()).toBe(0);
    expectClean(arena);
  });

  it('a worker with a pending callback stays alive until it runs, exactly once, in that worker', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const tally = new SharedArrayBuffer(8);
    const t = new Int32Array(tally);
    f.get();
    const w = spawn('runtime-exit', { buffer: arena.buffer, mode: 'pending', handle: f.handle, tally });
    arena.watch(w.worker);
    const ready = await w.next('ready');
    expect(ready.added).toBe(true);
    // Well past the time an unheld worker takes to exit (~10 ms): it must still be there.
    await new Promise((r) => setTimeout(r, 150));
    expect(w.exitCode).toBeUndefined();
    f.signal();
    await w.next('ran');
    expect(await w.exited()).toBe(0);
    expect(t[0]).toBe(1);
    expect(t[1]).toBe(ready.threadId);
    f.put();
    expectClean(arena);
  });

  it('starts by itself on the first callback and holds/release the keep-alive with the pending count', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    stopDispatcher(arena);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    let ran = 0;
    expect(pendingCallbacks()).toBe(0);
    const cb = f.addCallback(() => ran++);
    expect(cb).not.toBeNull();
    expect(pendingCallbacks()).toBe(1);
    expect(Fence.pendingAsyncWaits).toBe(1); // the runtime's hold
    expect(dispatcherOf(arena)).toBeDefined();
    f.get();
    const s = spawn('fence-signaler', { buffer: arena.buffer, handle: f.handle, delayMs: 0 });
    await s.next('signaled');
    expect(await until(() => ran === 1)).toBe(true);
    expect(pendingCallbacks()).toBe(0);
    expect(Fence.pendingAsyncWaits).toBe(0);
    expect(dispatcherOf(arena)!.ran).toBe(1);
    f.put();
    stopDispatcher(arena);
    expectClean(arena);
  });

  it('a blocking thread drains its inbox with waitInbox (no dispatcher)', async () => {
    setAutoDispatch(false);
    const arena = Arena.create({ bytes: 1 << 20 });
    stopDispatcher(arena);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    let ranIn = -1;
    f.addCallback(() => {
      ranIn = 1;
    });
    expect(dispatcherOf(arena)).toBeUndefined();
    f.get();
    const s = spawn('fence-signaler', { buffer: arena.buffer, handle: f.handle, delayMs: 20 });
    // Blocks this thread; the worker signals meanwhile and the callback lands in our inbox.
    expect(waitInbox(arena, 60_000)).toBe(1);
    expect(ranIn).toBe(1);
    expect(waitInbox(arena, 0)).toBe(0);
    await s.next('signaled');
    f.put();
    expectClean(arena);
  });

  it('startDispatcher is idempotent and rejects a detached arena', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = startDispatcher(arena);
    expect(startDispatcher(arena)).toBe(d);
    expect(stopDispatcher(arena)).toBe(true);
    expect(stopDispatcher(arena)).toBe(false);
    rejects(arena, () => waitInbox(arena, -1), 'EINVAL');
  });
});

describe('Arena.watch', () => {
  it('reaps a terminated worker: its lock is released and marked owner-died', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const lock = SpinLock.create(arena);
    const w = spawn('callback-probe', { buffer: arena.buffer });
    arena.watch(w.worker);
    const { slot } = await w.next('ready');
    await w.ask({ type: 'lock', ref: lock.ref }, 'locked');
    expect(lock.owner).toBe(slot);
    expect(lock.tryLock()).toBe(false);
    const exited = new Promise((r) => w.worker.once('exit', r));
    await w.worker.terminate();
    await exited;
    expect(lock.lock(2000)).toBe(true);
    expect(lock.ownerDied).toBe(true);
    lock.unlock();
    lock.free();
    expect(arena.slotsOfThread(-1)).toEqual([]);
    expectClean(arena);
  });

  it('rejects what is not a live worker', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    rejects(arena, () => arena.watch({} as Worker), 'EINVAL');
  });
});

describe('ledger', () => {
  it('tracks references; the reaper puts those of a dead worker', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const ctx = Fence.contextAlloc(arena);
    const fences = Array.from({ length: 40 }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
    const w = spawn('callback-probe', { buffer: arena.buffer });
    arena.watch(w.worker);
    await w.next('ready');
    for (const f of fences) f.get();
    await w.ask({ type: 'hold', handles: fences.map((f) => f.handle) }, 'held');
    for (const f of fences) expect(f.refcount).toBe(2);
    const exited = new Promise((r) => w.worker.once('exit', r));
    await w.worker.terminate();
    await exited;
    for (const f of fences) expect(f.refcount).toBe(1);
    for (const f of fences) f.put();
    expectClean(arena);
  });

  it('putTracked of an untracked fence is EINVAL and puts nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    trackRef(f.get());
    expect(ledgerSize(arena)).toBe(1);
    putTracked(f);
    expect(ledgerSize(arena)).toBe(0);
    expect(() => putTracked(f)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(f.refcount).toBe(1);
    f.put();
    expectClean(arena);
  });
});

describe('piscina glue', () => {
  // Tasks no longer wait for their dependencies inside a worker (that held the worker and
  // deadlocked chains longer than the pool): the pool's scheduler starts a task once its
  // dependencies have signaled. Payloads travel through the arena, so the tally (a
  // SharedArrayBuffer) is the pool's workerData instead of part of each payload. The meaning of the
  // test is unchanged: the out-fence comes back at once, b runs after a, an error propagates.
  it('returns the out-fence at once; dependencies run in order; errors propagate', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tally = new SharedArrayBuffer(64);
    const t = new Int32Array(tally);
    const pool = createFencePool(arena, { filename: fixture('piscina-task').href, maxThreads: 2, minThreads: 2, workerData: { tally } });
    try {
      const a = runWithFence(pool, arena, { spinUs: 20_000, index: 1 });
      expect(a.isSignaled()).toBe(false); // returned before the task ran
      const b = runWithFence(pool, arena, { index: 2 }, { deps: [a] });
      const bad = runWithFence(pool, arena, { fail: true });
      const c = runWithFence(pool, arena, { index: 3 }, { deps: [bad] });
      expect(await b.waitAsync(60_000)).toBe(true);
      expect(a.isSignaled()).toBe(true);
      expect(a.status()).toBe(1);
      expect(b.status()).toBe(1);
      expect(t[1]).toBeLessThan(t[2]); // b ran after a
      expect(await c.waitAsync(60_000)).toBe(true);
      expect(bad.status()).toBe(Errno.EIO);
      expect(c.status()).toBe(Errno.EIO); // propagated, c's function never ran
      expect(t[3]).toBe(0);
      // The worker puts the scheduler's reference just after signaling: only the caller's is left then.
      await until(() => a.refcount === 1 && b.refcount === 1 && bad.refcount === 1 && c.refcount === 1);
      for (const f of [a, b, bad, c]) {
        expect(f.refcount).toBe(1);
        f.put();
      }
    } finally {
      await pool.destroy();
    }
    expectClean(arena);
  });

  it('refuses a pool in atomics sync mode', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    rejects(arena, () => createFencePool(arena, { filename: fixture('piscina-task').href, atomics: 'sync' as 'async' }), 'EINVAL');
    const pool = new Piscina({ filename: fixture('piscina-task').href, atomics: 'sync', maxThreads: 1, minThreads: 0 });
    try {
      rejects(arena, () => runWithFence(pool as unknown as FencePool, arena, {}), 'EINVAL');
    } finally {
      await pool.destroy();
    }
  });

  it('watchPool reaps the workers of a plain piscina pool', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const pool = new Piscina({ filename: fixture('piscina-task').href, atomics: 'async', maxThreads: 1, minThreads: 1 });
    watchPool(arena, pool);
    let tids: number[] = [];
    try {
      // A message naming no scheduler: the wrapper attaches the arena in the worker (a thread slot),
      // then refuses it (EBADF).
      await expect(pool.run({ buffer: arena.buffer, sched: 1, filename: '', lingerUs: 0 })).rejects.toThrow('EBADF');
      tids = pool.threads.map((w) => w.threadId);
      expect(tids.some((t) => arena.slotsOfThread(t).length === 1)).toBe(true);
    } finally {
      await pool.destroy();
    }
    expect(await until(() => tids.every((t) => arena.slotsOfThread(t).length === 0))).toBe(true);
    expectClean(arena);
  });
});

/**
 * Fence array (kernel dma-fence-array.c): signals when all children have (or any), first child
 * error propagates (pending until the array signals), references are taken over, nested containers
 * are refused, the array's inline lock nests over a child's, callbacks run in the thread that
 * signals a child (real workers). Every test ends with a clean arena.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceArray, FenceChain, SpinLock, defineFenceOps } from '../src/index.js';
import { deferredCount } from '../src/containers/common.js';
import { expectClean, rejects, TestWorker } from './support/core.js';

const mockOps = defineFenceOps('test:array-mock', {
  getDriverName: () => 'mock',
  getTimelineName: () => 'mock',
});

function mockFences(arena: Arena, n: number): Fence[] {
  const out: Fence[] = [];
  for (let i = 0; i < n; i++) out.push(Fence.create(arena, { ops: mockOps, context: Fence.contextAlloc(arena), seqno: 1 }));
  return out;
}

/** An array over `fences` keeping the caller's references (the array gets new ones). */
function arrayOf(arena: Arena, fences: Fence[], signalOnAny = false): Fence {
  return FenceArray.create(arena, fences.map((f) => f.get()), { context: Fence.contextAlloc(arena), seqno: 1, signalOnAny });
}

function putAll(fs: Fence[]): void {
  for (const f of fs) f.put();
}

describe('FenceArray', () => {
  it('signals when every child has, with callbacks armed on the children', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 3);
    const array = arrayOf(arena, fs);
    expect(FenceArray.isArray(array)).toBe(true);
    expect(FenceArray.fences(array).map((f) => f.handle)).toEqual(fs.map((f) => f.handle));
    expect(array.driverName).toBe('dma_fence_array');
    expect(array.timelineName).toBe('unbound');
    let ran = 0;
    expect(array.addCallback(() => ran++)).not.toBeNull(); // enables signaling: arms the children
    fs[2].signal();
    fs[0].signal();
    expect(array.testSignaledFlag()).toBe(false);
    expect(array.status()).toBe(0);
    fs[1].signal();
    expect(array.testSignaledFlag()).toBe(true);
    expect(ran).toBe(1);
    expect(array.status()).toBe(1);
    putAll(fs);
    array.put();
    expectClean(arena);
  });

  it('without enabled signaling, isSignaled asks the children', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 2);
    const array = arrayOf(arena, fs);
    fs[0].signal();
    expect(array.isSignaled()).toBe(false);
    fs[1].signal();
    expect(array.isSignaled()).toBe(true);
    expect(array.testSignaledFlag()).toBe(true);
    putAll(fs);
    array.put();
    expectClean(arena);
  });

  it('enabling after some children signaled counts them at once; all signaled → signals on enable', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 3);
    const array = arrayOf(arena, fs);
    fs[0].signal();
    fs[1].signal();
    array.enableSignaling();
    expect(array.testSignaledFlag()).toBe(false);
    fs[2].signal();
    expect(array.testSignaledFlag()).toBe(true);
    const fs2 = mockFences(arena, 2);
    for (const f of fs2) f.signal();
    const done = arrayOf(arena, fs2);
    done.enableSignaling();
    expect(done.testSignaledFlag()).toBe(true);
    putAll([...fs, ...fs2, array, done]);
    expectClean(arena);
  });

  it('error propagation: the first child error, pending until the array signals', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 3);
    const array = arrayOf(arena, fs);
    array.enableSignaling();
    fs[1].setError(Errno.EIO);
    fs[1].signal();
    expect(array.status()).toBe(0); // pending: the error shows only once the array signals
    fs[2].setError(Errno.ECANCELED);
    fs[2].signal();
    expect(array.status()).toBe(0);
    fs[0].signal();
    expect(array.status()).toBe(Errno.EIO);
    expect(array.error).toBe(Errno.EIO);
    putAll([...fs, array]);
    expectClean(arena);
  });

  it('error propagation through the polled path and through children already signaled at enable', () => {
    const arena = Arena.create();
    const a = mockFences(arena, 2);
    a[0].setError(Errno.ENOENT);
    a[0].signal();
    a[1].signal();
    const polled = arrayOf(arena, a);
    expect(polled.isSignaled()).toBe(true);
    expect(polled.status()).toBe(Errno.ENOENT);
    const b = mockFences(arena, 2);
    b[1].setError(Errno.EIO);
    b[1].signal();
    const enabled = arrayOf(arena, b);
    enabled.enableSignaling();
    b[0].signal();
    expect(enabled.status()).toBe(Errno.EIO);
    putAll([...a, ...b, polled, enabled]);
    expectClean(arena);
  });

  it('signalOnAny: the first child to signal signals the array', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 3);
    const array = arrayOf(arena, fs, true);
    expect(array.isSignaled()).toBe(false);
    array.enableSignaling();
    fs[1].signal();
    expect(array.testSignaledFlag()).toBe(true);
    // The other callbacks still hold array references until their children signal.
    expect(array.refcount).toBe(3);
    fs[0].signal();
    fs[2].signal();
    expect(array.refcount).toBe(1);
    putAll([...fs, array]);
    expectClean(arena);
  });

  it('takes over the references: putting the array releases the children', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 2);
    const views = fs.map((f) => f.get());
    const array = FenceArray.create(arena, fs, { context: Fence.contextAlloc(arena), seqno: 7 });
    expect(array.seqno).toBe(7);
    expect(views[0].refcount).toBe(2);
    views[0].put();
    views[1].put();
    expect(FenceArray.fences(array)[0].refcount).toBe(1); // only the array's now
    array.put();
    expectClean(arena);
  });

  it('refuses nested containers, empty lists and bad options without taking references', () => {
    const arena = Arena.create();
    const [f, g] = mockFences(arena, 2);
    const inner = arrayOf(arena, [f]);
    const chain = FenceChain.create(arena, null, g.get(), 1);
    const opts = { context: Fence.contextAlloc(arena), seqno: 1 };
    rejects(arena, () => FenceArray.create(arena, [f, inner], opts), 'EINVAL');
    rejects(arena, () => FenceArray.create(arena, [chain], opts), 'EINVAL');
    rejects(arena, () => FenceArray.create(arena, [], opts), 'EINVAL');
    rejects(arena, () => FenceArray.create(arena, [f], { context: -1, seqno: 1 }), 'EINVAL');
    rejects(arena, () => FenceArray.create(arena, [f], { context: 1, seqno: 1.5 }), 'EINVAL');
    rejects(arena, () => FenceArray.create(arena, [f, 'x' as unknown as Fence], opts), 'EINVAL');
    rejects(arena, () => FenceArray.fences(f), 'EINVAL');
    const dead = mockFences(arena, 1)[0];
    dead.put();
    rejects(arena, () => FenceArray.create(arena, [f, dead], opts), 'EBADF');
    expect(f.refcount).toBe(2); // the test's and `inner`'s
    putAll([inner, chain, f, g]);
    expectClean(arena);
  });

  it("has its own inline lock: taking a child's lock inside it is no self-deadlock", () => {
    const arena = Arena.create();
    const lock = SpinLock.create(arena);
    const child = Fence.create(arena, { ops: mockOps, context: 3, seqno: 1, lock });
    const array = arrayOf(arena, [child]);
    expect(array.usesInlineLock).toBe(true);
    expect(array.withLock(() => child.withLock(() => 42))).toBe(42);
    putAll([child, array]);
    lock.free();
    expectClean(arena);
  });

  it('a child signaled under its lock signals the array at once (lock order child → array)', () => {
    const arena = Arena.create();
    const lock = SpinLock.create(arena);
    const a = Fence.create(arena, { ops: mockOps, context: 3, seqno: 1, lock });
    const b = Fence.create(arena, { ops: mockOps, context: 3, seqno: 2, lock });
    const array = arrayOf(arena, [a, b]);
    array.enableSignaling();
    lock.lock();
    a.signalLocked();
    b.signalLocked();
    expect(array.testSignaledFlag()).toBe(true);
    lock.unlock();
    expect(deferredCount()).toBe(0);
    putAll([a, b, array]);
    lock.free();
    expectClean(arena);
  });

  it("a child signaled while this thread holds the array's lock: the array signals once it is dropped", async () => {
    const arena = Arena.create();
    const [f] = mockFences(arena, 1);
    const array = arrayOf(arena, [f]);
    array.enableSignaling();
    array.withLock(() => f.signal());
    expect(array.testSignaledFlag()).toBe(false);
    expect(deferredCount()).toBe(1);
    await Promise.resolve();
    expect(array.testSignaledFlag()).toBe(true);
    putAll([f, array]);
    expectClean(arena);
  });

  it('children signaled by workers: the array callback runs in the signaling thread', async () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 4);
    const array = arrayOf(arena, fs);
    const waiting = array.waitAsync(60_000); // arms the children here
    fs[0].setError(Errno.ECANCELED);
    const workers = fs.map(
      (f, i) => new TestWorker('fence-signaler', { buffer: arena.buffer, handle: f.get().handle, delayMs: 5 + 10 * i }),
    );
    for (const w of workers) await w.next('signaled', 60_000);
    for (const w of workers) expect(await w.exited()).toBe(0);
    // The last worker signaled the array itself; this thread only observes it.
    expect(array.testSignaledFlag()).toBe(true);
    expect(await waiting).toBe(true);
    expect(array.status()).toBe(Errno.ECANCELED);
    putAll([...fs, array]);
    expectClean(arena);
  });

  it('releasing an armed array whose children never signal keeps it alive until they do', () => {
    const arena = Arena.create();
    const fs = mockFences(arena, 2);
    const array = arrayOf(arena, fs);
    expect(array.wait(1)).toBe(false); // arms, times out
    const [child] = FenceArray.fences(array);
    array.put(); // the armed callbacks still hold the array
    expect(child.refcount).toBe(2);
    fs[0].signal();
    fs[1].signal(); // the last callback signals the array and drops the last reference
    expect(child.refcount).toBe(1);
    putAll(fs);
    expectClean(arena);
  });
});

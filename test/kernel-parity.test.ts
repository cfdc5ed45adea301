/**
 * Kernel parity, function by function: each test names the kernel function whose behaviour it
 * mirrors (dma-fence.c, dma-fence-array.c, dma-fence-chain.c, dma-fence-unwrap.c, sync_file.c,
 * sw_sync.c) and checks fencelab does the same, or the documented difference (docs/kernel-mapping.md).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  Arena, Errno, Fence, FenceArray, FenceChain, FenceError, FenceSlot, SwTimeline, SyncFile, dedupArray, defineFenceOps, drainInbox, isContainer, matchContext,
} from '../src/index.js';
import { fenceTryGet } from '../src/fence/core.js';
import { FLAG_ENABLE_SIGNAL, F_REFCOUNT } from '../src/fence/layout.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

const arenas: Arena[] = [];
function newArena(bytes = 1 << 20): Arena {
  const a = Arena.create({ bytes, maxThreads: 4, maxFds: 16 });
  arenas.push(a);
  return a;
}
afterEach(() => {
  for (const a of arenas.splice(0)) expectClean(a);
  expect(Fence.pendingAsyncWaits).toBe(0);
});

function fence(arena: Arena, seqno = 1, context = Fence.contextAlloc(arena)): Fence {
  return Fence.create(arena, { context, seqno });
}

describe('references: get-unless-zero and FenceSlot (kernel dma_fence_get_rcu, dma_fence_get_rcu_safe)', () => {
  it('dma_fence_get_rcu: a get never raises a count of 0 (the last put wins, the release path is undisturbed)', () => {
    const arena = newArena();
    const f = fence(arena);
    const i32 = arena.i32;
    expect(fenceTryGet(i32, f.fw)).toBe(true);
    expect(f.refcount).toBe(2);
    f.put();
    // Model the moment after the last put's decrement: the count is 0 and stays 0 under a get.
    const saved = Atomics.exchange(i32, f.fw + F_REFCOUNT, 0);
    expect(saved).toBe(1);
    expect(fenceTryGet(i32, f.fw)).toBe(false);
    expect(Atomics.load(i32, f.fw + F_REFCOUNT)).toBe(0);
    Atomics.store(i32, f.fw + F_REFCOUNT, 1);
    f.put();
    rejects(arena, () => f.get(), 'EBADF');
  });

  it('dma_fence_get_rcu_safe: slot.set takes its own reference and puts the old fence; get hands out a new one', () => {
    const arena = newArena();
    const slot = FenceSlot.create(arena);
    expect(slot.get()).toBeNull();
    const ctx = Fence.contextAlloc(arena);
    const a = fence(arena, 1, ctx);
    slot.set(a);
    expect(a.refcount).toBe(2); // ours and the slot's
    const got = slot.get()!;
    expect(got.handle).toBe(a.handle);
    expect(a.refcount).toBe(3);
    got.put();
    const b = fence(arena, 2, ctx);
    slot.set(b);
    expect(a.refcount).toBe(1); // the slot put its reference on a
    a.put();
    b.put(); // the slot still holds b
    const same = FenceSlot.fromHandle(arena, slot.handle);
    const g = same.get()!;
    expect(g.seqno).toBe(2);
    g.put();
    slot.set(null);
    expect(slot.get()).toBeNull();
    const c = fence(arena, 3, ctx);
    slot.set(c);
    c.put();
    // The slot holds the only reference of the last fence: destroy puts it, and frees the slot.
    slot.destroy();
    rejects(arena, () => same.get(), 'EBADF');
    rejects(arena, () => FenceSlot.fromHandle(arena, slot.handle), 'EBADF');
  });

  it('FenceSlot refuses what is not a live fence of its arena', () => {
    const arena = newArena();
    const other = newArena();
    const slot = FenceSlot.create(arena);
    rejects(arena, () => slot.set({} as Fence), 'EINVAL');
    const f = fence(other);
    rejects(arena, () => slot.set(f), 'EINVAL');
    f.put();
    const g = fence(arena);
    g.put();
    rejects(arena, () => slot.set(g), 'EBADF');
    const h = fence(arena);
    rejects(arena, () => FenceSlot.fromHandle(arena, h.handle), 'EINVAL');
    h.put();
    slot.destroy();
  });

  it('dma_fence_get_rcu_safe: a reader in another thread never gets a released fence while the main thread keeps replacing it', async () => {
    const arena = newArena(4 << 20);
    const slot = FenceSlot.create(arena);
    const ctx = Fence.contextAlloc(arena);
    const first = fence(arena, 1, ctx);
    slot.set(first);
    first.put(); // the slot holds the only reference
    const tally = new Int32Array(new SharedArrayBuffer(12));
    const w = new TestWorker('slot-reader', { buffer: arena.buffer, slot: slot.handle, rounds: 20_000, tally: tally.buffer });
    // Replace until the reader is done: every set puts the previous fence, often its last reference.
    let seqno = 2;
    while (Atomics.load(tally, 0) < 2 && w.exitCode === undefined && w.error === undefined) {
      const f = fence(arena, seqno++, ctx);
      slot.set(f);
      f.put();
      if (seqno % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    const done = await w.next('done');
    expect(done.bad).toBe(0);
    expect(await w.exited()).toBe(0);
    slot.destroy();
  });

  it('a handle cut to 32 bits (Int32Array) is refused with a message that says so and names FenceSlot', () => {
    const arena = newArena();
    // Reuse one 64-byte block until its generation no longer fits 32-bit handles.
    let f = fence(arena);
    while (f.handle <= 0x7fffffff) {
      f.put();
      f = fence(arena);
    }
    const cut = new Int32Array([f.handle])[0];
    expect(cut).not.toBe(f.handle);
    const e1 = rejects(arena, () => Fence.fromHandle(arena, cut), 'EBADF');
    expect(e1.message).toMatch(/truncated to 32 bits.*FenceSlot/);
    const cutU = new Uint32Array([f.handle])[0];
    if (cutU !== f.handle) {
      const e2 = rejects(arena, () => Fence.fromHandle(arena, cutU), 'EBADF');
      expect(e2.message).toMatch(/truncated to 32 bits/);
    }
    // A plain stale handle is not called truncated.
    const old = f.handle;
    f.put();
    const e3 = rejects(arena, () => Fence.fromHandle(arena, old), 'EBADF');
    expect(e3.message).not.toMatch(/truncated/);
    expect(e3).toBeInstanceOf(FenceError);
  });
});

describe('deadlines end to end (kernel dma_fence_set_deadline)', () => {
  function deadlineOps(name: string, seen: bigint[]) {
    return defineFenceOps(name, {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      setDeadline: (_f, ns) => void seen.push(ns),
    });
  }

  it('dma_fence_array_set_deadline: an array forwards the deadline to every child', () => {
    const arena = newArena();
    const seen: bigint[] = [];
    const ops = deadlineOps('test:parity-deadline-array', seen);
    const ctx = Fence.contextAlloc(arena, 2);
    const a = Fence.create(arena, { ops, context: ctx, seqno: 1 });
    const b = Fence.create(arena, { ops, context: ctx + 1, seqno: 1 });
    const arr = FenceArray.create(arena, [a.get(), b.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    arr.setDeadline(1234n);
    expect(seen).toEqual([1234n, 1234n]);
    a.signal();
    arr.setDeadline(99n); // a signaled child is not asked (its ops are detached)
    expect(seen).toEqual([1234n, 1234n, 99n]);
    b.signal();
    for (const x of [arr, a, b]) x.put();
  });

  it('dma_fence_chain_set_deadline: a chain forwards the deadline to the fence of every link', () => {
    const arena = newArena();
    const seen: bigint[] = [];
    const ops = deadlineOps('test:parity-deadline-chain', seen);
    const ctx = Fence.contextAlloc(arena);
    const f1 = Fence.create(arena, { ops, context: ctx, seqno: 1 });
    const f2 = Fence.create(arena, { ops, context: ctx, seqno: 2 });
    const l1 = FenceChain.create(arena, null, f1.get(), 1);
    const l2 = FenceChain.create(arena, l1, f2.get(), 2); // takes over our l1 reference
    l2.setDeadline(5n);
    expect(seen).toEqual([5n, 5n]);
    f2.signal();
    f1.signal();
    for (const x of [l2, f1, f2]) x.put();
  });

  it('SW_SYNC_IOC_GET_DEADLINE: a point records the earliest deadline; -ENOENT when none was set; through a merged file every point is told', () => {
    const arena = newArena();
    const tl = SwTimeline.create(arena, 'deadlines');
    const fd = tl.createFence(1);
    rejects(arena, () => tl.getDeadline(fd), 'ENOENT');
    SyncFile.setDeadline(arena, fd, 500n); // SYNC_IOC_SET_DEADLINE
    expect(tl.getDeadline(fd)).toBe(500n);
    const f = SyncFile.getFence(arena, fd)!;
    f.setDeadline(800n); // later: the earlier one stays
    expect(tl.getDeadline(fd)).toBe(500n);
    f.setDeadline(200n);
    expect(tl.getDeadline(fd)).toBe(200n);
    // Through a merged sync file (an array over the points): every point is told.
    const tl2 = SwTimeline.create(arena, 'other'); // merge keeps one point per context
    const fd2 = tl2.createFence(2);
    const merged = SyncFile.merge(arena, fd, fd2);
    SyncFile.setDeadline(arena, merged, 100n);
    expect(tl.getDeadline(fd)).toBe(100n);
    expect(tl2.getDeadline(fd2)).toBe(100n);
    rejects(arena, () => tl.getDeadline(fd2), 'EINVAL'); // a point of another timeline
    // Not a point of this timeline → EINVAL; bad deadline → EINVAL.
    const plain = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const pfd = SyncFile.create(arena, plain);
    rejects(arena, () => tl.getDeadline(pfd), 'EINVAL');
    rejects(arena, () => SyncFile.setDeadline(arena, pfd, -1n), 'EINVAL');
    tl.inc(2);
    tl2.inc(2);
    for (const x of [fd, fd2, merged, pfd]) SyncFile.close(arena, x);
    f.put();
    plain.put();
    tl.close();
    tl2.close();
  });
});

describe('small kernel helpers', () => {
  it('dma_fence_is_container and dma_fence_match_context', () => {
    const arena = newArena();
    const ctx = Fence.contextAlloc(arena);
    const a = fence(arena, 1, ctx);
    const b = fence(arena, 2, ctx);
    const c = fence(arena, 1);
    expect(isContainer(a)).toBe(false);
    expect(matchContext(a, ctx)).toBe(true);
    expect(matchContext(a, ctx + 1)).toBe(false);
    const same = FenceArray.create(arena, [a.get(), b.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    const mixed = FenceArray.create(arena, [a.get(), c.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    const link = FenceChain.create(arena, null, a.get(), 1);
    expect(isContainer(same)).toBe(true);
    expect(isContainer(link)).toBe(true);
    expect(matchContext(same, ctx)).toBe(true); // every child is on ctx, whatever the array's own context
    expect(matchContext(same, same.context)).toBe(false);
    expect(matchContext(mixed, ctx)).toBe(false);
    rejects(arena, () => isContainer({} as Fence), 'EINVAL');
    rejects(arena, () => matchContext(a, -1), 'EINVAL');
    for (const x of [a, b, c]) x.signal();
    for (const x of [same, mixed, link, a, b, c]) x.put();
  });

  it('dma_fence_dedup_array: sorted by context, the latest of each kept, the others put', () => {
    const arena = newArena();
    const c1 = Fence.contextAlloc(arena);
    const c2 = Fence.contextAlloc(arena);
    const a1 = fence(arena, 1, c2);
    const a5 = fence(arena, 5, c2);
    const b3 = fence(arena, 3, c1);
    const b2 = fence(arena, 2, c1);
    const keep = [a5, b3].map((f) => f.get());
    const out = dedupArray([a1, a5, b3, b2, b3.get()]); // b3 twice: two references, one kept
    expect(out.map((f) => [f.context, f.seqno])).toEqual([[c1, 3], [c2, 5]]);
    expect(() => a1.refcount).toThrow(FenceError); // its only reference was put
    expect(() => b2.refcount).toThrow(FenceError);
    expect(b3.refcount).toBe(2); // ours (keep) and the one dedup kept
    expect(dedupArray([])).toEqual([]);
    rejects(arena, () => dedupArray([{} as Fence]), 'EINVAL');
    for (const f of [...out, ...keep]) f.put();
  });
});

describe('allocation apart from initialisation (kernel dma_fence_array_alloc/init, dma_fence_chain_alloc/init)', () => {
  it('dma_fence_array_alloc + dma_fence_array_init: init allocates nothing, so it works with the arena full', () => {
    const arena = newArena(64 << 10);
    const ctx = Fence.contextAlloc(arena);
    const a = fence(arena, 1, ctx);
    const b = fence(arena, 1);
    const arrMem = FenceArray.alloc(arena, 2);
    const linkMem = FenceChain.alloc(arena);
    // Fill the arena: from here on every allocation fails with ENOMEM.
    const fill: number[] = [];
    for (;;) {
      try {
        fill.push(arena.alloc(16));
      } catch (e) {
        expect((e as FenceError).code).toBe('ENOMEM');
        break;
      }
    }
    rejects(arena, () => Fence.create(arena, { context: ctx, seqno: 2 }), 'ENOMEM');
    rejects(arena, () => FenceArray.init(arrMem, [a], { context: Fence.contextAlloc(arena), seqno: 1 }), 'EINVAL'); // count 2
    rejects(arena, () => FenceChain.init(arrMem, null, a, 1), 'EINVAL'); // memory of an array
    const arr = FenceArray.init(arrMem, [a.get(), b.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    expect(arrMem.available).toBe(false);
    rejects(arena, () => FenceArray.init(arrMem, [a.get(), b.get()], { context: 1, seqno: 1 }), 'EBADF');
    a.put(); // the two gets of the refused init above
    b.put();
    const link = FenceChain.init(linkMem, null, arr.get(), 7);
    expect(FenceChain.isChain(link)).toBe(true);
    expect(link.seqno).toBe(7);
    a.signal();
    b.signal();
    expect(link.wait(0)).toBe(true);
    for (const r of fill) arena.free(r);
    for (const x of [link, arr, a, b]) x.put();
    // Unused memory is freed, once.
    const spare = FenceChain.alloc(arena);
    spare.free();
    rejects(arena, () => spare.free(), 'EBADF');
  });
});

describe('callbacks when signaling is refused (kernel dma_fence_add_callback)', () => {
  it('dma_fence_add_callback: ops.enableSignaling returning false → -ENOENT (null), the callback is never called', () => {
    const arena = newArena();
    const ops = defineFenceOps('test:parity-refuse', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      enableSignaling: () => false,
    });
    const f = Fence.create(arena, { ops, context: Fence.contextAlloc(arena), seqno: 1 });
    const ran: string[] = [];
    expect(f.addCallback(() => ran.push('refused'))).toBeNull();
    expect(f.isSignaled()).toBe(true); // the refusal signaled it
    expect(ran).toEqual([]);
    drainInbox(arena);
    expect(ran).toEqual([]);
    f.put();
  });

  it('dma_fence_add_callback on an array whose children have all signaled: null, never called', () => {
    const arena = newArena();
    const a = fence(arena);
    const b = fence(arena);
    a.signal();
    b.signal();
    const arr = FenceArray.create(arena, [a.get(), b.get()], { context: Fence.contextAlloc(arena), seqno: 1 });
    let ran = 0;
    expect(arr.addCallback(() => ran++)).toBeNull();
    expect(ran).toBe(0);
    expect(arr.testSignaledFlag()).toBe(true);
    for (const x of [arr, a, b]) x.put();
  });
});

describe('ops run in a thread that has them, or are refused (kernel: the core always calls its ops)', () => {
  async function run(define: boolean) {
    const arena = newArena();
    const calls: string[] = [];
    const ops = defineFenceOps('test:parity-ops', {
      getDriverName: () => 'parity',
      getTimelineName: () => 'main',
      enableSignaling: () => {
        calls.push('enable');
        return true;
      },
      release: () => void calls.push('release'),
    });
    const f = Fence.create(arena, { ops, context: Fence.contextAlloc(arena), seqno: 1 });
    const tally = new Int32Array(new SharedArrayBuffer(8));
    const w = new TestWorker('ops-user', { buffer: arena.buffer, handle: f.get().handle, define, tally: tally.buffer });
    const done = await w.next('done');
    expect(await w.exited()).toBe(0);
    return { arena, f, calls, tally, done };
  }

  it('a worker that registered the ops: enableSignaling and release run there (dma_fence_enable_sw_signaling, dma_fence_release)', async () => {
    const { f, calls, tally, done } = await run(true);
    expect(done).toMatchObject({ enable: 'ok', put: 'ok' });
    expect(Atomics.load(tally, 0)).toBe(1); // enableSignaling ran in the worker
    expect(f.refcount).toBe(1);
    f.signal();
    f.put(); // the last reference: release runs here, in a thread that has the ops
    expect(calls).toEqual(['release']);
    expect(Atomics.load(tally, 1)).toBe(0);
  });

  it('a worker without the ops is refused with EINVAL naming the fix, and nothing is skipped', async () => {
    const { f, calls, tally, done } = await run(false);
    expect(done).toMatchObject({ enable: 'EINVAL', put: 'EINVAL' });
    expect(Atomics.load(tally, 0)).toBe(0);
    expect(f.refcount).toBe(2); // the refused put left the worker's reference: we put it for it
    expect(f.flags & FLAG_ENABLE_SIGNAL).toBe(0); // ENABLE_SIGNAL not set: enabling can still happen here
    f.enableSignaling();
    expect(calls).toEqual(['enable']);
    f.put();
    f.signal();
    f.put();
    expect(calls).toEqual(['enable', 'release']);
  });
});

describe('locked variants (kernel dma_fence_get_status_locked, dma_fence_is_signaled_locked)', () => {
  it('statusLocked / isSignaledLocked work under withLock, where status() and isSignaled()-that-signals would deadlock', () => {
    const arena = newArena();
    let done = false;
    const ops = defineFenceOps('test:parity-polled', {
      getDriverName: () => 'd',
      getTimelineName: () => 't',
      signaled: () => done,
    });
    const f = Fence.create(arena, { ops, context: Fence.contextAlloc(arena), seqno: 1 });
    f.withLock(() => {
      rejects(arena, () => f.status(), 'EDEADLK');
      expect(f.statusLocked()).toBe(0);
      expect(f.isSignaledLocked()).toBe(false);
      done = true;
      expect(f.isSignaledLocked()).toBe(true); // polled and signaled under the lock (signalLocked)
      expect(f.testSignaledFlag()).toBe(true);
      expect(f.statusLocked()).toBe(1);
    });
    rejects(arena, () => f.statusLocked(), 'EPERM'); // not held
    rejects(arena, () => f.isSignaledLocked(), 'EPERM');
    const g = fence(arena);
    g.setError(Errno.EIO);
    g.withLock(() => {
      g.signalLocked();
      expect(g.statusLocked()).toBe(Errno.EIO);
    });
    f.put();
    g.put();
  });
});

describe('ordering and user flag bits (kernel dma_fence_is_later_or_same, DMA_FENCE_FLAG_USER_BITS)', () => {
  it('dma_fence_is_later_or_same: a fence is later-or-same than itself and than earlier ones, with wrap-around', () => {
    const arena = newArena();
    const ctx = Fence.contextAlloc(arena);
    const a = fence(arena, 0xffffffff, ctx);
    const b = fence(arena, 1, ctx); // after the wrap
    const same = fence(arena, 1, ctx);
    expect(Fence.isLaterOrSame(b, a)).toBe(true);
    expect(Fence.isLaterOrSame(a, b)).toBe(false);
    expect(Fence.isLaterOrSame(b, same)).toBe(true);
    expect(Fence.isLaterOrSame(a, a)).toBe(true);
    const other = fence(arena, 1);
    rejects(arena, () => Fence.isLaterOrSame(a, other), 'EINVAL');
    for (const x of [a, b, same, other]) x.put();
  });

  it('DMA_FENCE_FLAG_USER_BITS: a documented range of bits the driver sets and tests; the core never touches them', () => {
    const arena = newArena();
    const f = fence(arena);
    expect(Fence.USER_FLAG_COUNT).toBeGreaterThanOrEqual(8);
    for (let bit = 0; bit < Fence.USER_FLAG_COUNT; bit++) expect(f.testUserFlag(bit)).toBe(false);
    expect(f.setUserFlag(3)).toBe(false); // was clear (kernel test_and_set_bit)
    expect(f.setUserFlag(3)).toBe(true);
    expect(f.testUserFlag(3)).toBe(true);
    expect(f.testUserFlag(2)).toBe(false);
    f.signal(); // signaling keeps them
    expect(f.testUserFlag(3)).toBe(true);
    expect(f.clearUserFlag(3)).toBe(true);
    expect(f.testUserFlag(3)).toBe(false);
    expect(f.status()).toBe(1);
    rejects(arena, () => f.setUserFlag(Fence.USER_FLAG_COUNT), 'EINVAL');
    rejects(arena, () => f.testUserFlag(-1), 'EINVAL');
    f.put();
  });
});

describe('describe() in the kernel shape (kernel dma_fence_describe)', () => {
  it("dma_fence_describe: '<context>:<seqno> <timeline> <driver> [un]signalled', names empty once the ops are detached", () => {
    const arena = newArena();
    const ops = defineFenceOps('test:parity-describe', {
      getDriverName: () => 'gpu',
      getTimelineName: () => 'ring0',
    });
    const ctx = Fence.contextAlloc(arena);
    const f = Fence.create(arena, { ops, context: ctx, seqno: 42 });
    expect(f.describe()).toBe(`${ctx}:42 ring0 gpu unsignalled`);
    f.signal();
    expect(f.describe()).toBe(`${ctx}:42   signalled`);
    f.put();
  });
});

describe('cancelable async waits (AbortSignal)', () => {
  it('waitAsync(ms, { signal }): abort rejects with the reason, drops the keep-alive, leaves no wake-up armed', async () => {
    const arena = newArena();
    const f = fence(arena);
    const ac = new AbortController();
    const p = f.waitAsync(Infinity, { signal: ac.signal });
    expect(Fence.pendingAsyncWaits).toBe(1);
    ac.abort();
    const err = await p.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe('AbortError');
    expect(Fence.pendingAsyncWaits).toBe(0);
    // A custom reason is what the promise rejects with; an already aborted signal rejects at once.
    const ac2 = new AbortController();
    const reason = new Error('stop');
    const p2 = f.waitAsync(Infinity, { signal: ac2.signal });
    ac2.abort(reason);
    await expect(p2).rejects.toBe(reason);
    await expect(f.waitAsync(10, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    // Not aborted: the wait ends as usual, and the listener is gone (the signal holds nothing).
    const ac3 = new AbortController();
    const p3 = f.waitAsync(Infinity, { signal: ac3.signal });
    f.signal();
    expect(await p3).toBe(true);
    ac3.abort();
    expect(Fence.pendingAsyncWaits).toBe(0);
    await expect(f.waitAsync(1, { signal: 5 as never })).rejects.toMatchObject({ code: 'EINVAL' });
    f.put();
  });

  it('Fence.waitAnyAsync(fences, ms, { signal }): abort rejects, and the wake nodes are removed from every fence', async () => {
    const arena = newArena();
    const a = fence(arena);
    const b = fence(arena);
    const ac = new AbortController();
    const p = Fence.waitAnyAsync([a, b], Infinity, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(Fence.pendingAsyncWaits).toBe(0);
    // The callback nodes of the wait are gone: only the fences themselves are live.
    expect(arena.stats().live.callback ?? 0).toBe(0);
    a.signal();
    b.signal();
    a.put();
    b.put();
  });

  it('SyncFile.waitAsync(arena, fd, ms, { signal }) aborts the same way', async () => {
    const arena = newArena();
    const f = fence(arena);
    const fd = SyncFile.create(arena, f);
    const ac = new AbortController();
    const p = SyncFile.waitAsync(arena, fd, Infinity, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(Fence.pendingAsyncWaits).toBe(0);
    SyncFile.close(arena, fd);
    f.signal();
    f.put();
  });
});

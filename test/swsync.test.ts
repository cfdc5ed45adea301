/**
 * sw_sync SwTimeline (kernel drivers/dma-buf/sw_sync.c): points, in-order signaling, reuse of an
 * identical point, 32-bit wrap-around, close → -ENOENT, sharing by handle, bad input.
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Errno, Fence, SwTimeline, SyncFile } from '../src/index.js';
import { TestWorker, expectClean, rejects, until } from './support/core.js';
import { SW_CAP, T_SW_DEPTH, T_SW_MORE, TL_FILE_REFS } from '../src/sync/layout.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';

function arenaFor(): Arena {
  return Arena.create({ bytes: 2 << 20, maxThreads: 4, maxFds: 256 });
}

/** The fence behind `fd` (a new reference). */
function fenceOf(arena: Arena, fd: number): Fence {
  return SyncFile.getFence(arena, fd)!;
}

describe('SwTimeline basics', () => {
  it('creates a timeline on its own context with a name and counter 0', () => {
    const arena = arenaFor();
    const a = SwTimeline.create(arena, 'tl-a');
    const b = SwTimeline.create(arena);
    expect(a.value).toBe(0);
    expect(a.name).toBe('tl-a');
    expect(b.name).toMatch(/^thread-\d+$/);
    expect(b.context).toBe(a.context + 1);
    expect(arena.stats().live.timeline).toBe(2);
    a.close();
    b.close();
    expectClean(arena);
  });

  it('createFence gives an fd of an sw_sync point on the timeline context', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena, 'points');
    const fd = tl.createFence(3);
    const f = fenceOf(arena, fd);
    expect(f.context).toBe(tl.context);
    expect(f.seqno).toBe(3);
    expect(f.driverName).toBe('sw_sync');
    expect(f.timelineName).toBe('points');
    // The point borrows the timeline's lock, as the kernel's sync_pt does.
    expect(f.usesInlineLock).toBe(false);
    expect(f.refcount).toBe(2); // the fd's and ours
    expect(SyncFile.info(arena, fd)).toMatchObject({
      name: `sw_sync-points${tl.context}-3`,
      status: 0,
      fences: [{ driverName: 'sw_sync', timelineName: 'points', status: 0, timestamp: undefined }],
    });
    expect(tl.pending).toBe(1);
    f.put();
    SyncFile.close(arena, fd);
    // The last reference releases the point: it leaves the list.
    expect(tl.pending).toBe(0);
    tl.close();
    expectClean(arena);
  });

  it('inc signals every point it reaches, in seqno order, and no other', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const values = [5, 1, 3, 2, 8];
    const fds = values.map((v) => tl.createFence(v));
    const fences = fds.map((fd) => fenceOf(arena, fd));
    const order: number[] = [];
    for (const f of fences) expect(f.addCallback((x) => order.push(x.seqno))).not.toBeNull();
    tl.inc(2);
    expect(tl.value).toBe(2);
    expect(order).toEqual([1, 2]);
    expect(fences.map((f) => f.testSignaledFlag())).toEqual([false, true, false, true, false]);
    tl.inc(3);
    expect(order).toEqual([1, 2, 3, 5]);
    tl.inc(0);
    expect(order).toEqual([1, 2, 3, 5]);
    tl.inc(100);
    expect(order).toEqual([1, 2, 3, 5, 8]);
    expect(tl.value).toBe(105);
    for (const f of fences) {
      expect(f.status()).toBe(1);
      expect(typeof f.timestamp).toBe('bigint');
    }
    // Signal order shows in the timestamps as well.
    const ts = [1, 2, 3, 5, 8].map((v) => fences[values.indexOf(v)].timestamp!);
    for (let i = 1; i < ts.length; i++) expect(ts[i] >= ts[i - 1]).toBe(true);
    fences.forEach((f) => f.put());
    fds.forEach((fd) => SyncFile.close(arena, fd));
    tl.close();
    expectClean(arena);
  });

  it('reuses an identical unsignaled point, and not a signaled one', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd1 = tl.createFence(7);
    const fd2 = tl.createFence(7, 'second');
    expect(fd2).not.toBe(fd1);
    const f1 = fenceOf(arena, fd1);
    const f2 = fenceOf(arena, fd2);
    expect(f2.handle).toBe(f1.handle);
    expect(f1.refcount).toBe(4); // two fds, two views
    expect(tl.pending).toBe(1);
    expect(SyncFile.info(arena, fd2).name).toBe('second');
    tl.inc(7);
    expect(f1.isSignaled()).toBe(true);
    // The counter already reached 7: the new point is a new fence, signaled at once.
    const fd3 = tl.createFence(7);
    const f3 = fenceOf(arena, fd3);
    expect(f3.handle).not.toBe(f1.handle);
    expect(f3.status()).toBe(1);
    expect(SyncFile.wait(arena, fd3, 0)).toBe(true);
    expect(tl.pending).toBe(0);
    [f1, f2, f3].forEach((f) => f.put());
    [fd1, fd2, fd3].forEach((fd) => SyncFile.close(arena, fd));
    tl.close();
    expectClean(arena);
  });

  it('orders points with 32-bit wrap-around, and splits huge increments like the kernel', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    tl.inc(0xfffffff0); // > 2^31-1: two steps
    expect(tl.value).toBe(0xfffffff0);
    const late = tl.createFence(0xfffffff5);
    const wrapped = tl.createFence(3); // after the wrap: later than 0xfffffff5
    const past = tl.createFence(0xffffff00); // already reached
    expect(SyncFile.wait(arena, past, 0)).toBe(true);
    expect(SyncFile.wait(arena, late, 0)).toBe(false);
    tl.inc(0x10); // value wraps to 0
    expect(tl.value).toBe(0);
    expect(SyncFile.wait(arena, late, 0)).toBe(true);
    expect(SyncFile.wait(arena, wrapped, 0)).toBe(false);
    tl.inc(3);
    expect(SyncFile.wait(arena, wrapped, 0)).toBe(true);
    [late, wrapped, past].forEach((fd) => SyncFile.close(arena, fd));
    tl.close();
    expectClean(arena);
  });

  it('a point of value 0 on a fresh timeline is signaled at creation', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(0);
    expect(SyncFile.info(arena, fd).status).toBe(1);
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });
});

describe('SwTimeline close', () => {
  it('signals every waiting point with -ENOENT; the timeline lives until its last point goes', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena, 'closing');
    const done = tl.createFence(1);
    const a = tl.createFence(5);
    const b = tl.createFence(9);
    tl.inc(1);
    const fb = fenceOf(arena, b);
    const ran: number[] = [];
    fb.addCallback((f) => ran.push(f.status()));
    tl.close();
    expect(ran).toEqual([Errno.ENOENT]);
    expect(SyncFile.info(arena, a)).toMatchObject({ status: Errno.ENOENT, fences: [{ status: Errno.ENOENT, driverName: 'detached-driver', timelineName: 'signaled-timeline' }] });
    expect(SyncFile.info(arena, done).status).toBe(1);
    expect(SyncFile.wait(arena, b, 0)).toBe(true); // poll: errors count as ready
    // Points keep the timeline block (their borrowed lock) alive.
    expect(arena.stats().live.timeline).toBe(1);
    fb.put();
    [done, a, b].forEach((fd) => SyncFile.close(arena, fd));
    expectClean(arena);
  });

  it('using a closed timeline throws: createFence, inc, value, get, a second close', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const keep = tl.createFence(4); // keeps the block alive: the closed flag is what rejects
    tl.close();
    for (const use of [() => tl.createFence(1), () => tl.inc(1), () => tl.value, () => tl.get(), () => tl.close()])
      rejects(arena, use, 'EBADF');
    const again = SwTimeline.fromHandle(arena, tl.handle);
    rejects(arena, () => again.createFence(1), 'EBADF');
    SyncFile.close(arena, keep);
    // Now the block is freed: the handle is stale.
    rejects(arena, () => SwTimeline.fromHandle(arena, tl.handle), 'EBADF');
    rejects(arena, () => tl.createFence(1), 'EBADF');
    expectClean(arena);
  });

  it('shared views: get() adds an open reference; the last close signals the rest', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(2);
    const other = tl.get();
    expect(other).not.toBe(tl);
    expect(other.handle).toBe(tl.handle);
    tl.close();
    rejects(arena, () => tl.inc(1), 'EBADF'); // this view is closed…
    other.inc(1); // …the timeline is not
    expect(other.value).toBe(1);
    expect(other.pending).toBe(1);
    expect(SyncFile.wait(arena, fd, 0)).toBe(false);
    other.close();
    expect(SyncFile.info(arena, fd).status).toBe(Errno.ENOENT);
    SyncFile.close(arena, fd);
    expectClean(arena);
  });

  it('share/receive: one receive per token, a receiver closes its own; bad tokens and foreign closes are refused', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(1);
    const token = tl.share();
    expect(Number.isSafeInteger(token)).toBe(true);
    const got = SwTimeline.receive(arena, token);
    expect(got.handle).toBe(tl.handle);
    rejects(arena, () => SwTimeline.receive(arena, token), 'EBADF'); // received: stale
    for (const bad of ['x', null, undefined, {}]) rejects(arena, () => SwTimeline.receive(arena, bad as never), 'EINVAL');
    for (const notToken of [0, -1, 1.5, NaN]) rejects(arena, () => SwTimeline.receive(arena, notToken), 'EINVAL'); // no positive safe integer
    rejects(arena, () => SwTimeline.receive(arena, 2 ** 40), 'EBADF'); // names no share
    rejects(arena, () => SwTimeline.receive(null as never, token), 'EINVAL');
    rejects(arena, () => SwTimeline.receive(arena, tl.handle), 'EINVAL'); // a timeline, no token
    // Fence and timeline tokens are not interchangeable.
    const f = fenceOf(arena, fd);
    const ft = f.share();
    rejects(arena, () => SwTimeline.receive(arena, ft), 'EINVAL');
    const tt = tl.share();
    rejects(arena, () => Fence.receive(arena, tt), 'EINVAL');
    rejects(arena, () => Fence.withdraw(arena, tt), 'EINVAL');
    SwTimeline.receive(arena, tt).close();
    Fence.receive(arena, ft).putTracked();
    f.put();
    got.close();
    tl.close();
    rejects(arena, () => tl.share(), 'EBADF'); // this view is closed
    rejects(arena, () => SwTimeline.fromHandle(arena, tl.handle).share(), 'EBADF'); // the timeline is
    SyncFile.close(arena, fd);
    expectClean(arena);
  });

  it('withdraw() takes back an unreceived share as the sender\'s own reference; received or foreign tokens are refused', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(1);
    const tw = arena.resolve(tl.handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
    const token = tl.share();
    expect(arena.i32[tw + TL_FILE_REFS]).toBe(2);
    const back = tl.withdraw(token);
    expect(back.handle).toBe(tl.handle);
    expect(arena.i32[tw + TL_FILE_REFS]).toBe(2); // the same reference, ours again
    rejects(arena, () => SwTimeline.receive(arena, token), 'EBADF'); // withdrawn: stale
    rejects(arena, () => tl.withdraw(token), 'EBADF');
    const got = SwTimeline.receive(arena, tl.share());
    const received = tl.share();
    SwTimeline.receive(arena, received).close();
    rejects(arena, () => tl.withdraw(received), 'EBADF'); // received already: nothing changes
    const other = SwTimeline.create(arena);
    const foreign = other.share();
    rejects(arena, () => tl.withdraw(foreign), 'EINVAL'); // another timeline's share
    other.withdraw(foreign).close();
    other.close();
    const f = fenceOf(arena, fd);
    const ft = f.share();
    rejects(arena, () => tl.withdraw(ft), 'EINVAL'); // a fence's token
    expect(Fence.withdraw(arena, ft)).toBe(true);
    f.put();
    expect(arena.i32[tw + TL_FILE_REFS]).toBe(3); // tl, back, got
    back.close();
    got.close();
    expect(SyncFile.wait(arena, fd, 0)).toBe(false);
    tl.close(); // the last
    expect(SyncFile.info(arena, fd).status).toBe(Errno.ENOENT);
    SyncFile.close(arena, fd);
    expectClean(arena);
  });

  it('close() with no reference on a closed timeline only closes the view; a second close of it is EBADF', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(3); // keeps the block alive once closed
    const extra = tl.get();
    extra.close();
    tl.close();
    // The timeline is closed but live (its point): a view from its handle holds no reference.
    const view = SwTimeline.fromHandle(arena, tl.handle);
    view.close(); // harmless: nothing to close, nobody's reference dropped
    expect(arena.check().problems).toEqual([]);
    expect(arena.stats().live.timeline).toBe(1);
    rejects(arena, () => view.close(), 'EBADF'); // this view is closed
    rejects(arena, () => view.inc(1), 'EBADF');
    SyncFile.close(arena, fd);
    rejects(arena, () => SwTimeline.fromHandle(arena, tl.handle), 'EBADF'); // freed with its point
    expectClean(arena);
  });

  it('close() of a fromHandle view in a thread holding a reference is that holder\'s close', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(5);
    const f = fenceOf(arena, fd);
    const seen: number[] = [];
    f.addCallback((g) => seen.push(g.status()));
    SyncFile.close(arena, fd);
    // This thread holds the creator's reference: any of its views closes it (the last: closes the
    // timeline and, its point gone, frees it). A thread holding none: the worker tests below.
    const view = SwTimeline.fromHandle(arena, tl.handle);
    view.close();
    expect(seen).toEqual([Errno.ENOENT]);
    rejects(arena, () => tl.inc(1), 'EBADF'); // the holder's close was the last
    f.put();
    expectClean(arena);
  });

  it('an unsignaled point whose fds are all closed is released and leaves the list', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fds = [10, 20, 30].map((v) => tl.createFence(v));
    expect(tl.pending).toBe(3);
    SyncFile.close(arena, fds[1]);
    expect(tl.pending).toBe(2);
    expect(arena.stats().live.fence).toBe(2);
    tl.inc(30);
    expect(tl.pending).toBe(0);
    SyncFile.close(arena, fds[0]);
    SyncFile.close(arena, fds[2]);
    tl.close();
    expectClean(arena);
  });
});

describe('SwTimeline nested incs', () => {
  it('incs nested from callbacks past the slot\'s records are recorded in blocks, freed on the way out', () => {
    const arena = arenaFor();
    const LEVELS = 7;
    const tls = Array.from({ length: LEVELS }, (_, k) => SwTimeline.create(arena, `nest-${k}`));
    const fds = tls.map((tl) => tl.createFence(1));
    const fences = fds.map((fd) => fenceOf(arena, fd));
    const sb = arena.slotBase;
    let deepest = 0;
    let blocks = 0;
    fences.forEach((f, k) =>
      f.addCallback(() => {
        const d = arena.i32[sb + T_SW_DEPTH];
        if (d > deepest) {
          deepest = d;
          blocks = arena.stats().live.internal ?? 0;
        }
        if (k + 1 < LEVELS) tls[k + 1].inc(1);
        if (d > SW_CAP) expect(arena.i32[sb + T_SW_MORE]).not.toBe(0); // a record block stacked
      }),
    );
    const before = arena.stats().live.internal ?? 0;
    tls[0].inc(1);
    expect(deepest).toBeGreaterThan(SW_CAP);
    expect(blocks - before).toBe(deepest - SW_CAP); // one block per record past the slot's
    expect(arena.i32[sb + T_SW_DEPTH]).toBe(0);
    expect(arena.i32[sb + T_SW_MORE]).toBe(0);
    expect(arena.stats().live.internal ?? 0).toBe(before);
    for (const f of fences) {
      expect(f.status()).toBe(1);
      f.put();
    }
    for (const fd of fds) SyncFile.close(arena, fd);
    for (const tl of tls) tl.close();
    expectClean(arena);
  });
});

describe('SwTimeline bad input', () => {
  it('rejects bad values, increments, names and handles with a code, changing nothing', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(1);
    for (const v of [-1, 2 ** 32, 1.5, NaN, Infinity, '3' as unknown as number, undefined as unknown as number])
      rejects(arena, () => tl.createFence(v), 'EINVAL');
    for (const n of [-1, 2 ** 32, 0.5, NaN, '1' as unknown as number]) rejects(arena, () => tl.inc(n), 'EINVAL');
    rejects(arena, () => tl.createFence(2, 42 as unknown as string), 'EINVAL');
    rejects(arena, () => SwTimeline.create(arena, {} as unknown as string), 'EINVAL');
    expect(tl.value).toBe(0);
    expect(tl.pending).toBe(1);
    expect(SyncFile.openCount(arena)).toBe(1);
    for (const h of [0, -1, 1.5, 12345, 2 ** 40]) rejects(arena, () => SwTimeline.fromHandle(arena, h), 'EBADF');
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    rejects(arena, () => SwTimeline.fromHandle(arena, f.handle), 'EINVAL');
    f.put();
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });

  it('a full fd table → EMFILE from createFence, and the new point is released again', () => {
    const arena = Arena.create({ bytes: 2 << 20, maxThreads: 2, maxFds: 1 });
    const tl = SwTimeline.create(arena);
    const fd = tl.createFence(1);
    rejects(arena, () => tl.createFence(2), 'EMFILE');
    rejects(arena, () => tl.createFence(1), 'EMFILE'); // the reused point keeps only the first fd's reference
    expect(tl.pending).toBe(1);
    const f = fenceOf(arena, fd);
    expect(f.refcount).toBe(2); // the fd's and ours: the failed creates left nothing behind
    f.put();
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });

  it('cuts long names to 31 UTF-8 bytes on a character boundary', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena, 'é'.repeat(20)); // 40 bytes
    expect(tl.name).toBe('é'.repeat(15)); // 30 bytes: a 2-byte character does not fit in the 31st
    const fd = tl.createFence(1, 'x'.repeat(40));
    expect(SyncFile.info(arena, fd).name).toBe('x'.repeat(31));
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });
});

describe('SwTimeline under the sanitizer', () => {
  it('points borrowing the timeline lock never touch freed memory', () => {
    const arena = Arena.create({ bytes: 2 << 20, maxThreads: 2, maxFds: 64, sanitize: true });
    for (let round = 0; round < 20; round++) {
      const tl = SwTimeline.create(arena, `round-${round}`);
      const fds = [1, 2, 3].map((v) => tl.createFence(v));
      const f = fenceOf(arena, fds[2]);
      tl.inc(1);
      tl.close();
      SyncFile.close(arena, fds[0]);
      SyncFile.close(arena, fds[1]);
      // The timeline is alive through the last point: status takes its (borrowed) lock.
      expect(f.status()).toBe(Errno.ENOENT);
      SyncFile.close(arena, fds[2]);
      f.put();
    }
    expect(arena.uafCount).toBe(0);
    expectClean(arena);
  });
});

describe('SwTimeline across workers', () => {
  /** Starts the swsync-view-user fixture on `arena`, watched (its death is reaped). */
  async function viewUser(arena: Arena): Promise<TestWorker> {
    const w = new TestWorker('swsync-view-user', { buffer: arena.buffer });
    arena.watch(w.worker);
    await w.next('ready');
    return w;
  }

  for (const end of ['closes', 'dies'] as const) {
    it(`a worker creates, main closes a fromHandle view: points -ENOENT, every view throws, the block is freed once the worker ${end}`, async () => {
      const arena = arenaFor();
      const w = await viewUser(arena);
      try {
        const { handle } = await w.ask({ type: 'create' }, 'create');
        const view = SwTimeline.fromHandle(arena, handle as number);
        const fd = view.createFence(2);
        const f = fenceOf(arena, fd);
        const seen: number[] = [];
        f.addCallback((g) => seen.push(g.status()));
        view.close(); // main holds no reference: the timeline closes, the worker's stays
        expect(seen).toEqual([Errno.ENOENT]);
        expect(SyncFile.info(arena, fd).status).toBe(Errno.ENOENT);
        rejects(arena, () => view.close(), 'EBADF');
        const other = SwTimeline.fromHandle(arena, handle as number); // still allocated: the worker's reference
        for (const use of [() => other.inc(1), () => other.createFence(9), () => other.value, () => other.get(), () => other.share()])
          rejects(arena, use, 'EBADF');
        other.close(); // closed already: only this view
        expect((await w.ask({ type: 'inc' }, 'inc')).code).toBe('EBADF');
        SyncFile.close(arena, fd);
        f.put();
        expect(arena.stats().live.timeline).toBe(1); // the worker's reference keeps it
        if (end === 'closes') expect((await w.ask({ type: 'close' }, 'close')).code).toBe('');
        else await w.worker.terminate();
        if (end === 'dies') await w.exited();
        expect(await until(() => (arena.stats().live.timeline ?? 0) === 0, 10_000)).toBe(true);
        rejects(arena, () => SwTimeline.fromHandle(arena, handle as number), 'EBADF');
      } finally {
        await w.worker.terminate();
      }
      expectClean(arena);
    });
  }

  it('withdraw(): another thread\'s share is EPERM; a share the sender withdrew is its reference, dropped at its death', async () => {
    const arena = arenaFor();
    const w = await viewUser(arena);
    try {
      const { handle } = await w.ask({ type: 'create' }, 'create');
      const { token } = await w.ask({ type: 'share' }, 'share');
      rejects(arena, () => SwTimeline.fromHandle(arena, handle as number).withdraw(token as number), 'EPERM');
      expect((await w.ask({ type: 'withdraw', token }, 'withdraw')).code).toBe('');
      rejects(arena, () => SwTimeline.receive(arena, token as number), 'EBADF');
      const tw = arena.resolve(handle as number, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
      expect(arena.i32[tw + TL_FILE_REFS]).toBe(2); // both the worker's
      await w.worker.terminate();
      await w.exited();
      expect(await until(() => (arena.stats().live.timeline ?? 0) === 0, 10_000)).toBe(true); // both dropped by its reaper
    } finally {
      await w.worker.terminate();
    }
    expectClean(arena);
  });

  it('main creates, a worker closes a fromHandle view: the timeline closes, main\'s close then frees it', async () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena, 'main-made');
    const fd = tl.createFence(1);
    const w = await viewUser(arena);
    try {
      await w.ask({ type: 'view', handle: tl.handle }, 'view');
      expect((await w.ask({ type: 'close' }, 'close')).code).toBe('');
      expect((await w.ask({ type: 'close' }, 'close')).code).toBe('EBADF'); // its view is closed
      expect(SyncFile.info(arena, fd).status).toBe(Errno.ENOENT);
      rejects(arena, () => tl.inc(1), 'EBADF');
      SyncFile.close(arena, fd);
      expect(arena.stats().live.timeline).toBe(1); // main's reference keeps it
      tl.close(); // main's, the last: frees
      expect(arena.stats().live.timeline ?? 0).toBe(0);
    } finally {
      await w.worker.terminate();
    }
    expectClean(arena);
  });

  it('a worker killed while holding the timeline lock: the lock is recovered, its fds closed', async () => {
    const arena = Arena.create({ bytes: 2 << 20, maxThreads: 4, maxFds: 64 });
    const tl = SwTimeline.create(arena, 'shared');
    const fd = tl.createFence(1);
    const f = fenceOf(arena, fd);
    f.get(); // the worker's reference (it dies holding it; we put it for it below)
    const w = new TestWorker('sync-fd-user', { buffer: arena.buffer, mode: 'hold', fence: f.handle });
    arena.watch(w.worker);
    let held = 0;
    try {
      held = (await w.next('locked')).fd as number;
      expect(f.lock(20)).toBe(false); // the point's lock is the timeline's: taken by the worker
      // (info would block here: a fence's status is read under its lock, as in the kernel.)
      expect(SyncFile.openCount(arena)).toBe(2);
    } finally {
      await w.worker.terminate();
    }
    await w.exited();
    f.put();
    rejects(arena, () => SyncFile.getFence(arena, held), 'EBADF');
    // The reaper released the lock (owner died): inc goes through and signals the point.
    tl.inc(1);
    expect(f.status()).toBe(1);
    expect(f.refcount).toBe(2);
    f.put();
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });
});

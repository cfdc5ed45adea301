/**
 * Ports of the kernel's tools/testing/selftests/sync (sync_alloc.c, sync_fence.c, sync_merge.c,
 * sync_wait.c, sync_stress_parallelism.c, sync_stress_consumer.c, sync_stress_merge.c) onto
 * SwTimeline and SyncFile. The helpers mirror the selftests' sync.c: `syncWait(fd, 0)` polls,
 * `countWithStatus` reads SYNC_IOC_FILE_INFO. Threaded tests run in real workers; every wait is
 * bounded and every test ends with a clean arena.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { Arena, SpinLock, SwTimeline, SyncFile } from '../src/index.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

const ACTIVE = 0;
const SIGNALED = 1;

function arenaFor(maxFds = 256, bytes = 4 << 20): Arena {
  return Arena.create({ bytes, maxThreads: 16, maxFds });
}

/** sync.c sync_fence_count_with_status. */
function countWithStatus(arena: Arena, fd: number, status: number): number {
  return SyncFile.info(arena, fd).fences.filter((f) => f.status === status).length;
}

/** sync.c sync_fence_size. */
function fenceSize(arena: Arena, fd: number): number {
  return SyncFile.info(arena, fd).fences.length;
}

describe('sync_alloc', () => {
  it('test_alloc_timeline', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    expect(tl.value).toBe(0);
    tl.close();
    expectClean(arena);
  });

  it('test_alloc_fence', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fence = tl.createFence(1, 'allocFence');
    expect(SyncFile.info(arena, fence).fences.length).toBe(1);
    SyncFile.close(arena, fence);
    tl.close();
    expectClean(arena);
  });

  it('test_alloc_fence_negative', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    // The kernel creates a fence on fd -1 and expects an error: our timeline handle -1 is rejected.
    rejects(arena, () => SwTimeline.fromHandle(arena, -1).createFence(1, 'fence'), 'EBADF');
    // And closing the "fence" it never got fails too.
    rejects(arena, () => SyncFile.close(arena, -1), 'EBADF');
    tl.close();
    expectClean(arena);
  });
});

describe('sync_fence', () => {
  it('test_fence_one_timeline_wait', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fence = tl.createFence(5, 'allocFence');
    expect(SyncFile.wait(arena, fence, 0)).toBe(false);
    tl.inc(1); // 0 → 1
    expect(SyncFile.wait(arena, fence, 0)).toBe(false);
    tl.inc(4); // signal
    expect(SyncFile.wait(arena, fence, 0)).toBe(true);
    tl.inc(10); // further: still signaled
    expect(SyncFile.wait(arena, fence, 0)).toBe(true);
    SyncFile.close(arena, fence);
    tl.close();
    expectClean(arena);
  });

  it('test_fence_one_timeline_merge', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const a = tl.createFence(1, 'allocFence');
    const b = tl.createFence(2, 'allocFence');
    const c = tl.createFence(3, 'allocFence');
    const d1 = SyncFile.merge(arena, b, a, 'mergeFence');
    const d = SyncFile.merge(arena, c, d1, 'mergeFence');
    for (const fd of [a, b, c, d]) expect(countWithStatus(arena, fd, ACTIVE)).toBe(1);
    tl.inc(1);
    expect(countWithStatus(arena, a, SIGNALED)).toBe(1);
    expect(countWithStatus(arena, d, ACTIVE)).toBe(1);
    tl.inc(1);
    expect(countWithStatus(arena, b, SIGNALED)).toBe(1);
    expect(countWithStatus(arena, d, ACTIVE)).toBe(1);
    tl.inc(1);
    expect(countWithStatus(arena, c, SIGNALED)).toBe(1);
    expect(countWithStatus(arena, d, ACTIVE)).toBe(0);
    expect(countWithStatus(arena, d, SIGNALED)).toBe(1);
    for (const fd of [d, d1, c, b, a]) SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
  });
});

describe('sync_merge', () => {
  it('test_fence_merge_same_fence', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const fence = tl.createFence(5, 'allocFence');
    const merged = SyncFile.merge(arena, fence, fence, 'mergeFence');
    expect(countWithStatus(arena, merged, SIGNALED)).toBe(0);
    expect(fenceSize(arena, merged)).toBe(1);
    tl.inc(5);
    expect(countWithStatus(arena, merged, SIGNALED)).toBe(1);
    SyncFile.close(arena, merged);
    SyncFile.close(arena, fence);
    tl.close();
    expectClean(arena);
  });
});

describe('sync_wait', () => {
  it('test_fence_multi_timeline_wait', () => {
    const arena = arenaFor();
    const [ta, tb, tc] = ['A', 'B', 'C'].map((n) => SwTimeline.create(arena, n));
    const fa = ta.createFence(5, 'fenceA');
    const fb = tb.createFence(5, 'fenceB');
    const fc = tc.createFence(5, 'fenceC');
    const m1 = SyncFile.merge(arena, fb, fa, 'mergeFence');
    const merged = SyncFile.merge(arena, fc, m1, 'mergeFence');
    expect(countWithStatus(arena, merged, ACTIVE)).toBe(3);
    expect(SyncFile.wait(arena, merged, 0)).toBe(false);
    const counts = () => [countWithStatus(arena, merged, ACTIVE), countWithStatus(arena, merged, SIGNALED)];
    ta.inc(5);
    expect(counts()).toEqual([2, 1]);
    tb.inc(5);
    expect(counts()).toEqual([1, 2]);
    tc.inc(5);
    expect(counts()).toEqual([0, 3]);
    expect(SyncFile.wait(arena, merged, 100)).toBe(true);
    for (const fd of [merged, m1, fc, fb, fa]) SyncFile.close(arena, fd);
    for (const t of [tc, tb, ta]) t.close();
    expectClean(arena);
  });
});

describe('sync_stress_parallelism', () => {
  it('test_stress_two_threads_shared_timeline: 2 workers × 65,536 hand-overs', async () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena);
    const iterations = 1 << 16;
    const counter = new SharedArrayBuffer(4);
    const workers = [0, 1].map((id) => {
      // An open reference for each worker, shared: it receives it and closes it.
      return new TestWorker('sync-shared-timeline', { buffer: arena.buffer, timeline: tl.share(), id, iterations, counter, timeoutMs: 60_000 });
    });
    try {
      await Promise.all(workers.map((w) => w.next('done', 50_000)));
      await Promise.all(workers.map((w) => w.exited()));
    } finally {
      await Promise.all(workers.map((w) => w.worker.terminate()));
    }
    expect(new Int32Array(counter)[0]).toBe(iterations * 2);
    expect(tl.value).toBe(iterations * 2);
    expect(tl.pending).toBe(0);
    expect(SyncFile.openCount(arena)).toBe(0);
    tl.close();
    expectClean(arena);
  });
});

describe('sync_stress_consumer', () => {
  it('test_consumer_stress_multi_producer_single_consumer: 5 producers × 1 consumer × 4,096', async () => {
    const arena = arenaFor(1024);
    const iterations = 1 << 12;
    const n = 5;
    const consumer = SwTimeline.create(arena, 'consumer');
    const producers = Array.from({ length: n }, (_, i) => SwTimeline.create(arena, `producer${i}`));
    const lock = SpinLock.create(arena);
    const counter = new SharedArrayBuffer(8);
    const common = {
      buffer: arena.buffer, lock: lock.ref, iterations, counter, timeoutMs: 60_000,
    };
    // Each worker receives an open reference on every timeline (shared for it) and closes them.
    const spawn = (role: 'producer' | 'consumer', id: number) =>
      new TestWorker('sync-mpsc', { ...common, consumer: consumer.share(), producers: producers.map((p) => p.share()), role, id });
    const workers = [...Array.from({ length: n }, (_, id) => spawn('producer', id)), spawn('consumer', 0)];
    try {
      await Promise.all(workers.map((w) => w.next('done', 55_000)));
      await Promise.all(workers.map((w) => w.exited()));
    } finally {
      await Promise.all(workers.map((w) => w.worker.terminate()));
    }
    expect(new Int32Array(counter)[0]).toBe(n * iterations);
    expect(consumer.value).toBe(iterations);
    for (const p of producers) expect(p.value).toBe(iterations);
    expect(SyncFile.openCount(arena)).toBe(0);
    consumer.close();
    producers.forEach((p) => p.close());
    lock.free();
    expectClean(arena);
  });
});

describe('sync_stress_merge', () => {
  it('test_merge_stress_random_merge: 32 timelines, 32,768 merges', () => {
    const arena = arenaFor(256, 8 << 20);
    const rand = seedrandom('sync_stress_merge');
    const timelineCount = 32;
    const mergeCount = 1024 * 32;
    const timelines = Array.from({ length: timelineCount }, () => SwTimeline.create(arena));
    let fence = timelines[0].createFence(0, 'fence');
    const fenceMap = new Array<number>(timelineCount).fill(-1);
    fenceMap[0] = 0;
    for (let i = 0; i < mergeCount; i++) {
      const t = Math.floor(rand() * timelineCount);
      const syncPoint = Math.floor(rand() * 0x80000000); // rand(): 0..RAND_MAX
      if (fenceMap[t] < syncPoint) fenceMap[t] = syncPoint;
      const tmp = timelines[t].createFence(syncPoint, 'fence');
      const merged = SyncFile.merge(arena, tmp, fence, 'merge');
      SyncFile.close(arena, tmp);
      SyncFile.close(arena, fence);
      fence = merged;
    }
    const size = fenceMap.filter((v) => v !== -1).length;
    expect(fenceSize(arena, fence)).toBe(size);
    for (let i = 0; i < timelineCount; i++) {
      if (fenceMap[i] === -1) continue;
      expect(SyncFile.wait(arena, fence, 0)).toBe(false);
      timelines[i].inc(fenceMap[i]);
    }
    expect(SyncFile.wait(arena, fence, 0)).toBe(true);
    SyncFile.close(arena, fence);
    expect(SyncFile.openCount(arena)).toBe(0);
    for (const t of timelines) {
      expect(t.pending).toBe(0);
      t.close();
    }
    expectClean(arena);
  });
});

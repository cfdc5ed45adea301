/**
 * sync_file (kernel drivers/dma-buf/sync_file.c): the fd table in the arena — create/getFence/close
 * references, info, wait, merge, EBADF for closed/forged/stale fds with nothing touched, EMFILE,
 * fds used from other workers, and the fds of a dead worker closed by the reaper.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceError, SwTimeline, SyncFile, defineFenceOps } from '../src/index.js';
import { TestWorker, expectClean, rejects, type Msg } from './support/core.js';

const ops = defineFenceOps('syncfile-test', {
  getDriverName: () => 'gpu',
  getTimelineName: () => 'ring0',
});

function arenaFor(maxFds = 64): Arena {
  return Arena.create({ bytes: 2 << 20, maxThreads: 8, maxFds });
}

function newFence(arena: Arena, seqno = 1): Fence {
  return Fence.create(arena, { ops, context: Fence.contextAlloc(arena), seqno });
}

/** Every way an fd can be wrong without being a closed or stale one. */
const FORGED = [0, -1, 1, 7, 1.5, NaN, Infinity, 2 ** 53, 2 ** 20 - 1, 2 ** 50, '5' as unknown as number, null as unknown as number];

describe('SyncFile create / getFence / close', () => {
  it('an fd holds its own reference; getFence hands out new ones; close drops the fd’s', () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const fd = SyncFile.create(arena, f);
    expect(Number.isSafeInteger(fd)).toBe(true);
    expect(fd).toBeGreaterThanOrEqual(2 ** 20);
    expect(f.refcount).toBe(2);
    const g = SyncFile.getFence(arena, fd)!;
    expect(g.handle).toBe(f.handle);
    expect(f.refcount).toBe(3);
    g.put();
    expect(SyncFile.openCount(arena)).toBe(1);
    SyncFile.close(arena, fd);
    expect(f.refcount).toBe(1);
    expect(SyncFile.openCount(arena)).toBe(0);
    f.put();
    expectClean(arena);
  });

  it('the fd keeps the fence alive after the creator puts its reference', () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const handle = f.handle;
    const fd = SyncFile.create(arena, f);
    f.put();
    const g = SyncFile.getFence(arena, fd)!;
    expect(g.handle).toBe(handle);
    g.signal();
    g.put();
    expect(SyncFile.wait(arena, fd, 0)).toBe(true);
    SyncFile.close(arena, fd);
    expectClean(arena);
  });

  it('distinct fds for one fence, each closable once', () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const fds = Array.from({ length: 10 }, () => SyncFile.create(arena, f));
    expect(new Set(fds).size).toBe(10);
    expect(f.refcount).toBe(11);
    for (const fd of fds) SyncFile.close(arena, fd);
    expect(f.refcount).toBe(1);
    f.put();
    expectClean(arena);
  });

  it('closed, forged and stale fds → EBADF, and nothing else is touched', () => {
    const arena = arenaFor(2);
    const f = newFence(arena);
    const fd = SyncFile.create(arena, f);
    SyncFile.close(arena, fd);
    const calls = (bad: number) => [
      () => SyncFile.getFence(arena, bad),
      () => SyncFile.close(arena, bad),
      () => SyncFile.info(arena, bad),
      () => SyncFile.wait(arena, bad, 0),
      () => SyncFile.merge(arena, bad, bad),
    ];
    for (const use of calls(fd)) rejects(arena, use, 'EBADF');
    for (const bad of FORGED) for (const use of calls(bad)) rejects(arena, use, 'EBADF');
    // Stale: the table has 2 entries, so new fds soon reuse fd's entry with a new generation.
    const live = [SyncFile.create(arena, f), SyncFile.create(arena, f)];
    const reused = live.find((x) => x % 2 ** 20 === fd % 2 ** 20)!;
    expect(reused).toBeDefined();
    expect(reused).not.toBe(fd);
    const before = f.refcount;
    for (const use of calls(fd)) rejects(arena, use, 'EBADF');
    // A forged fd with a generation nobody was handed out yet.
    for (const use of calls(reused + 2 ** 20)) rejects(arena, use, 'EBADF');
    expect(f.refcount).toBe(before);
    expect(SyncFile.openCount(arena)).toBe(2);
    const g = SyncFile.getFence(arena, reused)!;
    expect(g.handle).toBe(f.handle);
    g.put();
    live.forEach((x) => SyncFile.close(arena, x));
    f.put();
    expectClean(arena);
  });

  it('a full table → EMFILE, nothing changes; a closed entry is usable again', () => {
    const arena = arenaFor(3);
    const f = newFence(arena);
    const fds = [0, 1, 2].map((i) => SyncFile.create(arena, f, `n${i}`));
    rejects(arena, () => SyncFile.create(arena, f, 'one too many'), 'EMFILE');
    expect(f.refcount).toBe(4);
    expect(arena.stats().live.sync_file).toBe(3); // name blocks: the failed one was freed
    SyncFile.close(arena, fds[1]);
    const again = SyncFile.create(arena, f);
    expect(SyncFile.openCount(arena)).toBe(3);
    [fds[0], fds[2], again].forEach((x) => SyncFile.close(arena, x));
    f.put();
    expectClean(arena);
  });

  it('create rejects what is not a live fence of this arena, and bad names', () => {
    const arena = arenaFor();
    const other = arenaFor();
    const f = newFence(arena);
    const g = newFence(other);
    rejects(arena, () => SyncFile.create(arena, {} as unknown as Fence), 'EINVAL');
    rejects(arena, () => SyncFile.create(arena, f.handle as unknown as Fence), 'EINVAL');
    rejects(arena, () => SyncFile.create(arena, g), 'EINVAL');
    rejects(arena, () => SyncFile.create(arena, f, 12 as unknown as string), 'EINVAL');
    const dead = newFence(arena);
    dead.put();
    rejects(arena, () => SyncFile.create(arena, dead), 'EBADF');
    expect(SyncFile.openCount(arena)).toBe(0);
    expect(f.refcount).toBe(1);
    f.put();
    g.put();
    expectClean(arena);
    expectClean(other);
  });
});

describe('SyncFile.info', () => {
  it('default name driver-timeline<ctx>-<seqno>, status and timestamps', () => {
    const arena = arenaFor();
    const f = newFence(arena, 42);
    const fd = SyncFile.create(arena, f);
    expect(SyncFile.info(arena, fd)).toEqual({
      name: `gpu-ring0${f.context}-42`,
      status: 0,
      fences: [{ driverName: 'gpu', timelineName: 'ring0', status: 0, timestamp: undefined }],
    });
    f.signalTimestamp(123456789n);
    expect(SyncFile.info(arena, fd)).toEqual({
      // Signaled: the ops are detached, and the default name follows (kernel behaviour).
      name: `detached-driver-signaled-timeline${f.context}-42`,
      status: 1,
      fences: [{ driverName: 'detached-driver', timelineName: 'signaled-timeline', status: 1, timestamp: 123456789n }],
    });
    SyncFile.close(arena, fd);
    f.put();
    expectClean(arena);
  });

  it('a user name replaces the default; errors show as negative status', () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const fd = SyncFile.create(arena, f, 'my-frame');
    f.setError(Errno.EIO);
    f.signal();
    const info = SyncFile.info(arena, fd);
    expect(info.name).toBe('my-frame');
    expect(info.status).toBe(Errno.EIO);
    expect(info.fences[0].status).toBe(Errno.EIO);
    expect(typeof info.fences[0].timestamp).toBe('bigint');
    // poll semantics: a fence signaled with an error is ready.
    expect(SyncFile.wait(arena, fd, 0)).toBe(true);
    SyncFile.close(arena, fd);
    f.put();
    expectClean(arena);
  });
});

describe('SyncFile.wait', () => {
  it('times out while unsignaled, returns true once signaled; bad timeouts → EINVAL', async () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const fd = SyncFile.create(arena, f);
    expect(SyncFile.wait(arena, fd, 0)).toBe(false);
    expect(SyncFile.wait(arena, fd, 5)).toBe(false);
    expect(await SyncFile.waitAsync(arena, fd, 5)).toBe(false);
    for (const t of [-1, NaN, 'x' as unknown as number]) rejects(arena, () => SyncFile.wait(arena, fd, t), 'EINVAL');
    expect(f.refcount).toBe(2);
    setTimeout(() => f.signal(), 10);
    expect(await SyncFile.waitAsync(arena, fd, 5_000)).toBe(true);
    expect(SyncFile.wait(arena, fd, 0)).toBe(true);
    expect(f.refcount).toBe(2);
    SyncFile.close(arena, fd);
    f.put();
    expectClean(arena);
  });
});

describe('SyncFile.merge', () => {
  it('bad flags or name → EINVAL, fd2 not an open sync file → ENOENT, bad fd1 → EBADF; nothing changes', () => {
    const arena = arenaFor(4);
    const f = newFence(arena);
    const fd = SyncFile.create(arena, f);
    const closed = SyncFile.create(arena, f);
    SyncFile.close(arena, closed);
    for (const flags of [1, -1, 0.5, 'x' as unknown as number]) rejects(arena, () => SyncFile.merge(arena, fd, fd, 'm', flags), 'EINVAL');
    rejects(arena, () => SyncFile.merge(arena, fd, fd, 5 as unknown as string), 'EINVAL');
    for (const bad of [closed, ...FORGED]) rejects(arena, () => SyncFile.merge(arena, fd, bad, 'm'), 'ENOENT');
    rejects(arena, () => SyncFile.merge(arena, closed, fd, 'm'), 'EBADF');
    // The kernel checks flags before fd2.
    rejects(arena, () => SyncFile.merge(arena, fd, closed, 'm', 1), 'EINVAL');
    expect(f.refcount).toBe(2);
    expect(SyncFile.openCount(arena)).toBe(1);
    SyncFile.close(arena, fd);
    f.put();
    expectClean(arena);
  });

  it('merges fences of two timelines; info lists both; ready when both signaled', () => {
    const arena = arenaFor();
    const a = SwTimeline.create(arena, 'A');
    const b = SwTimeline.create(arena, 'B');
    const fa = a.createFence(2);
    const fb = b.createFence(3);
    const m = SyncFile.merge(arena, fa, fb, 'both');
    const info = SyncFile.info(arena, m);
    expect(info.name).toBe('both');
    expect(info.status).toBe(0);
    expect(info.fences.map((x) => x.timelineName).sort()).toEqual(['A', 'B']);
    a.inc(2);
    expect(SyncFile.wait(arena, m, 0)).toBe(false);
    expect(SyncFile.info(arena, m).fences.map((x) => x.status).sort()).toEqual([0, 1]);
    b.inc(3);
    expect(SyncFile.wait(arena, m, 0)).toBe(true);
    expect(SyncFile.info(arena, m).status).toBe(1);
    [fa, fb, m].forEach((fd) => SyncFile.close(arena, fd));
    a.close();
    b.close();
    expectClean(arena);
  });

  it('keeps the later point of one context, and an error decides the status', () => {
    const arena = arenaFor();
    const tl = SwTimeline.create(arena, 'T');
    const f1 = tl.createFence(1);
    const f5 = tl.createFence(5);
    const m = SyncFile.merge(arena, f1, f5);
    const info = SyncFile.info(arena, m);
    expect(info.fences.length).toBe(1);
    const g = SyncFile.getFence(arena, m)!;
    const inner = SyncFile.getFence(arena, f5)!;
    expect(info.fences[0].timelineName).toBe('T');
    tl.close(); // -ENOENT on both points
    expect(SyncFile.info(arena, m).status).toBe(Errno.ENOENT);
    expect(SyncFile.wait(arena, m, 0)).toBe(true);
    g.put();
    inner.put();
    [f1, f5, m].forEach((fd) => SyncFile.close(arena, fd));
    expectClean(arena);
  });
});

/**
 * Runs `meanwhile`, then collects each worker's 'done' reply and waits for it to exit; the workers
 * are terminated whatever happens, so a failed test leaves none running. Returns the replies.
 */
async function joinFdUsers(workers: TestWorker[], timeoutMs: number, meanwhile?: () => Promise<void>): Promise<Msg[]> {
  try {
    await meanwhile?.();
    const results = await Promise.all(workers.map((w) => w.next('done', timeoutMs)));
    await Promise.all(workers.map((w) => w.exited()));
    return results;
  } finally {
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}

/** Every fd is closed and only the creator's reference on `f` is left; puts it and checks the arena. */
function expectOnlyCreatorsRef(arena: Arena, f: Fence): void {
  expect(f.refcount).toBe(1);
  expect(SyncFile.openCount(arena)).toBe(0);
  f.put();
  expectClean(arena);
}

describe('SyncFile across workers', () => {
  it('fds are plain integers any worker can use; close racing lookups is exact', async () => {
    const arena = arenaFor(256);
    const f = newFence(arena);
    const fds = Array.from({ length: 64 }, () => SyncFile.create(arena, f));
    const rounds = 200;
    const workers = [0, 1].map(() => new TestWorker('sync-fd-user', { buffer: arena.buffer, mode: 'lookup', fds, rounds }));
    const results = await joinFdUsers(workers, 60_000, async () => {
      // Close the fds while the workers look them up.
      await new Promise((r) => setTimeout(r, 5));
      for (const fd of fds) SyncFile.close(arena, fd);
    });
    for (const r of results) {
      expect((r.ok as number) + (r.badf as number)).toBe(rounds * fds.length);
      expect(r.infos as number).toBeLessThanOrEqual(r.ok as number + (r.badf as number));
    }
    // Every reference a lookup took was put: only the creator's is left.
    expectOnlyCreatorsRef(arena, f);
  });

  it('workers creating and closing fds at once never get the same fd', async () => {
    const arena = arenaFor(16);
    const f = newFence(arena);
    const rounds = 2000;
    const workers = [0, 1, 2].map(() => {
      f.get(); // a reference for each receiver of the handle
      return new TestWorker('sync-fd-user', { buffer: arena.buffer, mode: 'churn', fence: f.handle, rounds });
    });
    const results = await joinFdUsers(workers, 60_000);
    for (const r of results) expect(r.created).toBe(rounds * 2);
    expectOnlyCreatorsRef(arena, f);
  });

  it('the fds of a dead worker are closed when its slot is reaped', async () => {
    const arena = arenaFor();
    const f = newFence(arena);
    const mine = SyncFile.create(arena, f);
    f.get();
    const w = new TestWorker('sync-fd-user', { buffer: arena.buffer, mode: 'own', fence: f.handle, count: 3 });
    arena.watch(w.worker);
    let owned: number[] = [];
    try {
      owned = (await w.next('fds')).fds as number[];
      expect(owned.length).toBe(3);
      // Usable from here while the owner lives.
      expect(SyncFile.info(arena, owned[2]).name).toBe('owned-2');
      expect(f.refcount).toBe(5);
    } finally {
      await w.worker.terminate();
    }
    await w.exited();
    for (const fd of owned) rejects(arena, () => SyncFile.getFence(arena, fd), 'EBADF');
    expect(SyncFile.openCount(arena)).toBe(1); // ours survives
    expect(f.refcount).toBe(2);
    SyncFile.close(arena, mine);
    f.put();
    expectClean(arena);
  });
});

describe('SyncFile errors are FenceErrors', () => {
  it('carry the kernel errno', () => {
    const arena = arenaFor();
    try {
      SyncFile.close(arena, 3);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FenceError);
      expect((e as FenceError).errno).toBe(Errno.EBADF);
    }
    expectClean(arena);
  });
});

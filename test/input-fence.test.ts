/**
 * Input checks of the fence, container, sync-file and driver entries: each bad argument is a
 * FenceError with the exact code, thrown before anything changes (arena.check() clean, nothing leaked).
 */
import { describe, expect, it } from 'vitest';
import { Arena, Driver, Errno, Fence, FenceArray, FenceChain, FenceSlot, SpinLock, SwTimeline, SyncFile, isContainer, mergeFences } from '../src/index.js';
import { expectClean, rejects } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });
const fenceOf = (arena: Arena) => Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });

describe('times stored in 64-bit words', () => {
  const bad: unknown[] = [-1n, -5n, 2n ** 63n, 2n ** 64n, 2n ** 64n + 5n, 1.5, NaN, '12345', {}, Symbol('t'), 5];

  it('signalTimestamp, signalLocked and setDeadline refuse what is no bigint in 0..2^63-1, unsignaled after', () => {
    const arena = arenaOf();
    const f = fenceOf(arena);
    for (const ts of bad) {
      rejects(arena, () => f.signalTimestamp(ts as bigint), 'EINVAL');
      rejects(arena, () => f.setDeadline(ts as bigint), 'EINVAL');
      f.lock();
      try {
        rejects(arena, () => f.signalLocked(ts as bigint), 'EINVAL');
      } finally {
        f.unlock();
      }
      rejects(arena, () => Fence.privateStub(arena, ts as bigint), 'EINVAL');
    }
    expect(f.isSignaled()).toBe(false);
    f.signalTimestamp(2n ** 63n - 1n);
    expect(f.timestamp).toBe(2n ** 63n - 1n);
    f.put();
    expectClean(arena);
    arena.detach();
  });

  it('SyncFile.setDeadline refuses an out-of-range deadline and records none', () => {
    const arena = arenaOf();
    const tl = SwTimeline.create(arena, 't');
    const fd = tl.createFence(3);
    for (const ns of [2n ** 64n + 9n, 2n ** 63n, -1n]) rejects(arena, () => SyncFile.setDeadline(arena, fd, ns), 'EINVAL');
    SyncFile.setDeadline(arena, fd, 9n);
    expect(tl.getDeadline(fd)).toBe(9n);
    SyncFile.close(arena, fd);
    tl.close();
    expectClean(arena);
    arena.detach();
  });
});

/**
 * Bad input to the Arena's entries and its SpinLock views: a detached view, a detach from inside a
 * callback, a freed SpinLock, adopt's and create's options. Each is refused with a typed FenceError
 * before anything changes: the arena stays consistent and nothing leaks.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceError, SpinLock, SwTimeline, SyncFile, defineFenceOps, drainInbox } from '../src/index.js';
import { expectClean, rejects, TestWorker, throwsCode, until } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });

describe('a detached Arena view', () => {
  it('refuses its own methods and every entry given it with EBADF, and changes nothing', () => {
    const a = arenaOf();
    const buf = a.buffer;
    const ctx = Fence.contextAlloc(a);
    a.detach();
    expect(a.isDetached).toBe(true);
    expect(a instanceof Arena).toBe(false);
    throwsCode(() => a.alloc(16), 'EBADF');
    throwsCode(() => a.alloc(100_000), 'EBADF');
    throwsCode(() => a.free(1), 'EBADF');
    throwsCode(() => a.adopt(1), 'EBADF');
    throwsCode(() => a.check(), 'EBADF');
    throwsCode(() => a.stats(), 'EBADF');
    throwsCode(() => a.describe(), 'EBADF');
    throwsCode(() => a.trace, 'EBADF');
    throwsCode(() => a.lockKind, 'EBADF');
    throwsCode(() => Fence.create(a, { context: ctx, seqno: 1 }), 'EBADF');
    throwsCode(() => Fence.contextAlloc(a), 'EBADF');
    throwsCode(() => SpinLock.create(a), 'EBADF');
    a.detach(); // still a no-op
    const b = Arena.attach(buf);
    expectClean(b);
    expect(b.stats().allocs).toBe(0);
    b.detach();
  });

  for (const options of [{}, { sanitize: true as const }, { lockKind: 'ticket' as const }]) {
    it(`refuses the Fence, SpinLock, timeline and sync-file views made on it before (${JSON.stringify(options)}): the thread's slot is gone`, () => {
      const a = Arena.create({ bytes: 1 << 20, maxFds: 64, ...options });
      const buf = a.buffer;
      const f = Fence.create(a, { context: Fence.contextAlloc(a), seqno: 1 });
      const lock = SpinLock.create(a);
      const tl = SwTimeline.create(a, 'before');
      const fd = SyncFile.create(a, f);
      const handle = f.handle;
      const ref = lock.ref;
      a.detach();
      for (const [what, fn] of [
        ['lock', () => f.lock()], ['unlock', () => f.unlock()], ['signal', () => f.signal()], ['status', () => f.status()],
        ['get', () => f.get()], ['put', () => f.put()], ['addCallback', () => f.addCallback(() => undefined)], ['wait', () => f.wait(0)],
        ['withLock', () => f.withLock(() => 1)], ['setError', () => f.setError(-5)], ['share', () => f.share()],
        ['SpinLock.lock', () => lock.lock()], ['SpinLock.tryLock', () => lock.tryLock()], ['SpinLock.unlock', () => lock.unlock()],
        ['SpinLock.withLock', () => lock.withLock(() => 1)], ['SpinLock.free', () => lock.free()],
        ['timeline.inc', () => tl.inc(1)], ['SyncFile.info', () => SyncFile.info(a, fd)], ['SyncFile.close', () => SyncFile.close(a, fd)],
      ] as [string, () => unknown][]) {
        expect(throwsCode(fn, 'EBADF').message, what).toMatch(/detached/);
      }
      // Nothing was written: the fence and the lock are as the detach left them.
      const b = Arena.attach(buf);
      const g = Fence.fromHandle(b, handle);
      expect(g.status()).toBe(0);
      expect(g.refcount).toBe(1);
      const again = SpinLock.fromRef(b, ref);
      expect(again.owner).toBe(-1);
      again.free();
      g.put();
      expectClean(b);
      b.detach();
    });
  }

  it('a value that is not an Arena is still EINVAL', () => {
    throwsCode(() => Fence.contextAlloc({} as Arena), 'EINVAL');
    throwsCode(() => SpinLock.create(null as unknown as Arena), 'EINVAL');
  });
});

describe('arena.detach() from inside a callback', () => {
  it('is refused with EBUSY in a callback run by the signal, and the thread detaches afterwards', () => {
    const a = arenaOf();
    const f = Fence.create(a, { context: Fence.contextAlloc(a), seqno: 1 });
    let code = '';
    f.addCallback(() => {
      try {
        a.detach();
      } catch (e) {
        code = (e as FenceError).code;
      }
    });
    f.signal();
    expect(code).toBe('EBUSY');
    expect(a.isDetached).toBe(false);
    f.put();
    expectClean(a);
    a.detach();
  });

  it('is refused with EBUSY in ops.release', () => {
    const a = arenaOf();
    let code = '';
    const ops = defineFenceOps('input-arena:release', {
      getDriverName: () => 'input-arena',
      getTimelineName: () => 'release',
      release: () => {
        try {
          a.detach();
        } catch (e) {
          code = (e as FenceError).code;
        }
      },
    });
    const f = Fence.create(a, { context: Fence.contextAlloc(a), seqno: 1, ops });
    f.signal();
    f.put();
    expect(code).toBe('EBUSY');
    expect(a.isDetached).toBe(false);
    expectClean(a);
    a.detach();
  });

  it('is refused with EBUSY in a callback delivered through the inbox', async () => {
    const a = arenaOf();
    const f = Fence.create(a, { context: Fence.contextAlloc(a), seqno: 1 });
    let code = '';
    f.addCallback(() => {
      try {
        a.detach();
      } catch (e) {
        code = (e as FenceError).code;
      }
    });
    const w = new TestWorker('fence-signaler', { buffer: a.buffer, handle: f.get().handle, delayMs: 0 });
    await w.next('signaled');
    await w.exited();
    // This thread's dispatcher (or the explicit drain) runs it from the inbox.
    drainInbox(a);
    expect(await until(() => code !== '', 10_000)).toBe(true);
    expect(code).toBe('EBUSY');
    expect(a.isDetached).toBe(false);
    f.put();
    expectClean(a);
    a.detach();
  });
});

describe('a freed SpinLock view', () => {
  it('refuses lock, tryLock, withLock, unlock and free with EBADF, also once the block is reused', () => {
    const a = arenaOf();
    const s = SpinLock.create(a);
    s.free();
    rejects(a, () => s.lock(10), 'EBADF');
    rejects(a, () => s.lock(), 'EBADF');
    rejects(a, () => s.tryLock(), 'EBADF');
    rejects(a, () => s.withLock(() => 1), 'EBADF');
    rejects(a, () => s.unlock(), 'EBADF');
    rejects(a, () => s.free(), 'EBADF');
    // The block comes back to the next allocation of its size: another owner's memory now.
    const ref = a.alloc(8);
    rejects(a, () => s.lock(10), 'EBADF');
    rejects(a, () => s.tryLock(), 'EBADF');
    rejects(a, () => s.unlock(), 'EBADF');
    const reused = SpinLock.at(a, ref, 0);
    expect(reused.owner).toBe(-1); // nothing was written into the raw block
    a.free(ref);
    expectClean(a);
    a.detach();
  });

  it('a SpinLock.at view of a freed raw block is refused the same way', () => {
    const a = arenaOf();
    const ref = a.alloc(16);
    const s = SpinLock.at(a, ref, 4);
    a.free(ref);
    rejects(a, () => s.lock(10), 'EBADF');
    rejects(a, () => s.tryLock(), 'EBADF');
    expectClean(a);
    a.detach();
  });

  it('a live lock still locks and unlocks', () => {
    const a = arenaOf();
    const s = SpinLock.create(a);
    expect(s.lock(10)).toBe(true);
    s.unlock();
    expect(s.tryLock()).toBe(true);
    s.unlock();
    expect(s.withLock(() => 7)).toBe(7);
    s.free();
    expectClean(a);
    a.detach();
  });
});

describe('arena.adopt options', () => {
  it('an unknown key, a non-boolean keep, an array or null are EINVAL naming the known key, and the block keeps its owner', () => {
    const a = arenaOf();
    const ref = a.alloc(16);
    const err = rejects(a, () => a.adopt(ref, { kep: true } as { keep?: boolean }), 'EINVAL');
    expect(err.message).toContain('keep');
    rejects(a, () => a.adopt(ref, { keep: 'yes' } as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, { keep: null } as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, [] as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, null as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, 1 as unknown as { keep?: boolean }), 'EINVAL');
    a.adopt(ref, { keep: false });
    a.adopt(ref, {});
    a.adopt(ref);
    a.free(ref);
    expectClean(a);
    a.detach();
  });
});

describe('Arena.create options given as null', () => {
  it('each is EINVAL naming the option (undefined still means the default)', () => {
    for (const key of ['bytes', 'maxThreads', 'maxFds', 'lockKind', 'sanitize']) {
      const err = throwsCode(() => Arena.create({ bytes: 1 << 20, [key]: null } as never), 'EINVAL');
      expect(err.message).toContain(key);
    }
    const a = Arena.create({ bytes: 1 << 20, maxThreads: undefined, maxFds: undefined, lockKind: undefined, sanitize: undefined });
    expect(a.maxThreads).toBe(64);
    a.detach();
  });
});

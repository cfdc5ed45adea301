/**
 * Driver (the exporter side, src/driver/driver.ts): operations in the arena with their own lock, submit → out-fence → export →
 * execute → signal → free; CANCEL / DELETE through the direct ioctl and the command ring, exactly
 * once; borrowed vs inline out-fence locks (the borrowed-lock use-after-free, caught by the sanitizer).
 * The multi-worker races are in threads-stress.test.ts and recovery.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Driver, DriverCmd, Errno, Fence, SyncFile, UseAfterFreeError } from '../src/index.js';
import { FINISH_CAP } from '../src/driver/layout.js';
import { expectClean, rejects } from './support/core.js';

describe('Driver', () => {
  it('submit → export → execute: the out-fence signals OK, the operation is freed', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const op = d.submit({ durationUs: 50, payload: [7, 8] });
    expect(op.state).toBe('submitted');
    expect(op.payload(0)).toBe(7);
    expect(op.fence.usesInlineLock).toBe(true);
    expect(op.fence.context).toBe(d.context);
    expect(arena.stats().live.operation).toBe(1);
    const fd = op.exportFd();
    const h = op.exportHandle();
    expect(d.execute(op)).toBe(1);
    expect(op.live).toBe(false);
    const f = SyncFile.getFence(arena, fd)!;
    expect(f.status()).toBe(1);
    expect(f.driverName).toBe('detached-driver');
    f.put();
    SyncFile.close(arena, fd);
    expect(arena.stats().live.operation ?? 0).toBe(0);
    const c = d.counters;
    expect(c).toMatchObject({ submitted: 1, completed: 1, canceled: 0, deleted: 0, freed: 1, live: 0 });
    // The exported handle carries its own reference: the fence outlives the operation.
    expect(arena.resolve(h, BlockType.FENCE, 'fence')).toBeGreaterThan(0);
    Fence.fromHandle(arena, h).put();
    d.destroy();
    expectClean(arena);
  });

  it('CANCEL before execute ends it with -ECANCELED exactly once; execute then reports it', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const op = d.submit();
    const f = op.fence.get();
    expect(d.cancel(op.handle)).toBe(true);
    expect(d.cancel(op.handle)).toBe(false);
    expect(d.delete(op.handle)).toBe(false);
    expect(f.status()).toBe(Errno.ECANCELED);
    expect(d.execute(op)).toBe(Errno.ECANCELED);
    expect(d.counters).toMatchObject({ submitted: 1, completed: 0, canceled: 1, deleted: 0, missed: 2, freed: 1, live: 0 });
    f.put();
    d.destroy();
    expectClean(arena);
  });

  it('DELETE through the ring reaches a running operation; CANCEL does not', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena, { ringSize: 4 });
    const a = d.submit({ durationUs: 2000 });
    const b = d.submit({ durationUs: 2000 });
    const fa = a.fence.get();
    const fb = b.fence.get();
    // Commands wait in the ring; execute consumes them once its operation runs. CANCEL only ends
    // operations that have not started, so it misses a; DELETE ends b mid-execution.
    expect(d.ioctl(DriverCmd.CANCEL, a.handle)).toBe(true);
    expect(d.execute(a)).toBe(1);
    expect(fa.status()).toBe(1);
    expect(d.ioctl(DriverCmd.DELETE, b.handle)).toBe(true);
    expect(d.execute(b)).toBe(Errno.ECANCELED);
    expect(fb.status()).toBe(Errno.ECANCELED);
    expect(d.counters).toMatchObject({ completed: 1, canceled: 0, deleted: 1, missed: 1, freed: 2, live: 0 });
    fa.put();
    fb.put();
    d.destroy();
    expectClean(arena);
  });

  it('the ring refuses when full and bad commands are errors that change nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena, { ringSize: 2 });
    const op = d.submit();
    expect(d.ioctl(DriverCmd.DELETE, op.handle)).toBe(true);
    expect(d.ioctl(DriverCmd.DELETE, op.handle)).toBe(true);
    expect(d.ioctl(DriverCmd.DELETE, op.handle)).toBe(false);
    expect(d.processCommands()).toBe(2);
    expect(d.counters).toMatchObject({ deleted: 1, missed: 1, live: 0 });
    rejects(arena, () => d.command(99 as never, op.handle), 'EINVAL');
    rejects(arena, () => d.cancel(-1), 'EBADF');
    rejects(arena, () => d.submit({ durationUs: -1 }), 'EINVAL');
    rejects(arena, () => d.submit({ payload: new Array(99).fill(0) }), 'EINVAL');
    rejects(arena, () => Driver.create(arena, { ringSize: 3 }), 'EINVAL');
    rejects(arena, () => Driver.create(arena, { lockMode: 'x' as never }), 'EINVAL');
    rejects(arena, () => Driver.fromHandle(arena, op.handle), 'EBADF');
    d.destroy();
    expectClean(arena);
  });

  it('destroy refuses while operations live', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const op = d.submit();
    rejects(arena, () => d.destroy(), 'EBUSY');
    expect(d.execute(op)).toBe(1);
    d.destroy();
    expectClean(arena);
  });

  it('borrowed mode: the out-fence locks the operation\'s word, and the sanitizer catches the use after free', () => {
    const arena = Arena.create({ bytes: 1 << 20, sanitize: true });
    const d = Driver.create(arena, { lockMode: 'borrowed' });
    const op = d.submit();
    const f = op.fence.get();
    expect(f.usesInlineLock).toBe(false);
    expect(f.withLock(() => f.testSignaledFlag())).toBe(false);
    expect(d.execute(op)).toBe(1);
    // The operation (and the lock the fence borrowed) is gone: locking the fence is a use after free.
    expect(() => f.lock()).toThrow(UseAfterFreeError);
    expect(() => f.status()).toThrow(UseAfterFreeError);
    f.put();
    d.destroy();
    expectClean(arena);
  });

  it('an operation on a reused block starts clean: free lock word, zeroed payload, state submitted', () => {
    for (const sanitize of [false, true]) {
      const arena = Arena.create({ bytes: 1 << 20, sanitize });
      const d = Driver.create(arena, { lockMode: 'borrowed' });
      const a = d.submit({ payload: [1, 2, 3, 4, 5, 6, 7, 8] });
      expect(d.execute(a)).toBe(1);
      const b = d.submit(); // LIFO: a's block
      expect(b.ow).toBe(a.ow);
      expect(b.state).toBe('submitted');
      for (let i = 0; i < 8; i++) expect(b.payload(i)).toBe(0);
      expect(b.fence.lock(1000)).toBe(true); // the borrowed word is free (bounded: a dirty word fails, not hangs)
      b.fence.unlock();
      expect(d.counters).toMatchObject({ submitted: 2, completed: 1, freed: 1, live: 1 });
      expect(d.execute(b)).toBe(1);
      d.destroy();
      expectClean(arena);
    }
  });

  it('ends nested in callbacks up to FINISH_CAP deep; one deeper is EDEADLK and changes nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const ops = Array.from({ length: FINISH_CAP + 2 }, () => d.submit());
    const seen: [number, boolean | string][] = [];
    // Each end's out-fence callback (this thread's: it runs inside that end) cancels the next.
    ops.forEach((o, i) => {
      if (i + 1 < ops.length)
        o.fence.addCallback(() => {
          try {
            seen.push([i + 1, d.cancel(ops[i + 1].handle)]);
          } catch (e) {
            seen.push([i + 1, (e as { code: string }).code]);
          }
        });
    });
    expect(d.execute(ops[0])).toBe(1);
    // Innermost first: the end FINISH_CAP deep is refused before it claims anything.
    expect(seen).toEqual([[FINISH_CAP, 'EDEADLK'], ...Array.from({ length: FINISH_CAP - 1 }, (_, k) => [FINISH_CAP - 1 - k, true])]);
    expect(ops[FINISH_CAP].state).toBe('submitted');
    expect(arena.check().problems).toEqual([]);
    // Outside the nesting it ends as usual (and its callback ends the last one).
    expect(d.cancel(ops[FINISH_CAP].handle)).toBe(true);
    expect(d.counters).toMatchObject({ submitted: FINISH_CAP + 2, completed: 1, canceled: FINISH_CAP + 1, live: 0 });
    d.destroy();
    expectClean(arena);
  });
});

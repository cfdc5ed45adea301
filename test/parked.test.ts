/**
 * Parked references (src/runtime/parked.ts): a reference owned by a Float64Array word instead of
 * a thread. The word holds the handle exactly while the reference exists; a thread's death does
 * not drop it (the word's owner does); the holder of the fence's lock may drop one that is not the
 * last, and the last is refused with EDEADLK, nothing changed (it used to free the fence under the
 * lock: the lock's count stayed held and the unlock met a released fence).
 */
import { describe, expect, it } from 'vitest';
import { heldLockCount } from '../src/locks/lockword.js';
import { Arena, Fence, dropParkedRef, parkRef } from '../src/index.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

const cellsOf = (n: number) => new Float64Array(new SharedArrayBuffer(8 * n));
const fenceIn = (arena: Arena) => Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });

describe('parked references', () => {
  it('park takes a reference and writes the handle; drop puts it and clears the word; the last releases', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = fenceIn(arena);
    const cells = cellsOf(2);
    parkRef(f, cells, 1);
    expect([cells[0], cells[1], f.refcount]).toEqual([0, f.handle, 2]);
    f.signal();
    f.put();
    expect(dropParkedRef(arena, cells, 1)).toBe(true);
    expect(cells[1]).toBe(0);
    expect(dropParkedRef(arena, cells, 1)).toBe(false); // nothing parked
    expectClean(arena);
  });

  it('bad cells and double parks are EINVAL, a released fence EBADF; nothing changes', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = fenceIn(arena);
    const cells = cellsOf(1);
    rejects(arena, () => parkRef(f, new Int32Array(2) as unknown as Float64Array, 0), 'EINVAL');
    rejects(arena, () => parkRef(f, cells, 1), 'EINVAL');
    rejects(arena, () => dropParkedRef(arena, cells, -1), 'EINVAL');
    parkRef(f, cells, 0);
    rejects(arena, () => parkRef(f, cells, 0), 'EINVAL');
    expect(f.refcount).toBe(2);
    dropParkedRef(arena, cells, 0);
    f.signal();
    f.put();
    rejects(arena, () => parkRef(f, cells, 0), 'EBADF');
    expect(cells[0]).toBe(0);
    expectClean(arena);
  });

  it('under the fence lock: a reference that is not the last is dropped, the last refused with EDEADLK', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = fenceIn(arena);
    let ran = 0;
    f.addCallback(() => ran++);
    const cells = cellsOf(2);
    parkRef(f, cells, 0);
    parkRef(f, cells, 1);
    f.put(); // the two parked references are all that is left
    const g = Fence.fromHandle(arena, cells[0]);
    g.lock();
    expect(dropParkedRef(arena, cells, 0)).toBe(true);
    expect([cells[0], g.refcount]).toEqual([0, 1]);
    const handle = cells[1];
    rejects(arena, () => dropParkedRef(arena, cells, 1), 'EDEADLK');
    expect([cells[1], g.refcount, ran]).toEqual([handle, 1, 0]);
    g.unlock();
    expect(heldLockCount(arena)).toBe(0);
    expect(dropParkedRef(arena, cells, 1)).toBe(true); // released: signaled -EDEADLK, its callback ran once
    expect(ran).toBe(1);
    expectClean(arena);
  });

  it('belongs to the word: a terminated parker\'s reaper leaves it, its owner drops it', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const cells = cellsOf(1);
    const w = new TestWorker('park-and-wait', { buffer: arena.buffer, cells });
    arena.watch(w.worker);
    await w.next('parked');
    await w.worker.terminate();
    await w.exited();
    const f = Fence.fromHandle(arena, cells[0]);
    expect([f.refcount, f.isSignaled()]).toEqual([1, true]);
    expect(dropParkedRef(arena, cells, 0)).toBe(true);
    expectClean(arena);
  });
});

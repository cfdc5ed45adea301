/**
 * The borrowed-lock scenario of the kernel RFC "dma-fence: in-place lock": an operation struct owns
 * a lock, its out-fence borrows it, the operation is freed after signal, a new operation reuses the
 * memory (LIFO), and the old fence's lock is taken again.
 *  - sanitize → UseAfterFreeError at that moment;
 *  - no sanitizer → the real damage: the fence's lock word now belongs to the new operation
 *    (false contention, a false deadlock, or two holders of "one" lock);
 *  - inline lock → the same sequence is clean.
 * Same-thread and two-worker versions (main thread = exporter, worker = importer).
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Fence, SpinLock, UseAfterFreeError } from '../src/index.js';
import { TestWorker, expectClean, rejects, type Msg } from './support/core.js';

const OFFSET = 2 ** 28;
const OP_BYTES = 48; // an operation: lock word at 0, payload after it

type Mode = 'borrowed' | 'inline';

function newArena(sanitize: boolean | 'count' = false): Arena {
  return Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, sanitize });
}

/** The exporter's first half: an operation with its own lock and an out-fence (borrowing it or not). */
function submit(arena: Arena, mode: Mode) {
  const op = arena.alloc(OP_BYTES, BlockType.OPERATION);
  const opLock = SpinLock.at(arena, op, 0);
  const fence = Fence.create(arena, {
    context: Fence.contextAlloc(arena),
    seqno: 1,
    ...(mode === 'borrowed' ? { lock: opLock } : {}),
  });
  expect(fence.usesInlineLock).toBe(mode === 'inline');
  return { op, opLock, fence };
}

/** The exporter's second half: signal, drop its reference, free the operation, start a new one. */
function completeAndReuse(arena: Arena, op: number, fence: Fence) {
  fence.signal();
  fence.put();
  arena.free(op);
  const op2 = arena.alloc(OP_BYTES, BlockType.OPERATION);
  expect(op2 % OFFSET).toBe(op % OFFSET); // LIFO: the new operation sits in the old one's memory
  expect(op2).not.toBe(op);
  return { op2, op2Lock: SpinLock.at(arena, op2, 0) };
}

describe('same thread', () => {
  it('borrowed lock, sanitize: taking the old fence lock → UseAfterFreeError naming the new owner', () => {
    const arena = newArena(true);
    const { op, fence } = submit(arena, 'borrowed');
    const imported = fence.get(); // the importer's reference
    const { op2, op2Lock } = completeAndReuse(arena, op, fence);
    let err: unknown;
    try {
      imported.lock(50);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UseAfterFreeError);
    const report = (err as UseAfterFreeError).report;
    expect(report).toMatchObject({
      access: 'fence-lock',
      fence: imported.handle,
      block: (op % OFFSET) * 8,
      takenGeneration: Math.floor(op / OFFSET),
      currentGeneration: Math.floor(op2 / OFFSET),
      freedBy: arena.slot,
      nowType: 'operation',
      nowOwner: arena.slot,
    });
    expect(op2Lock.owner).toBe(-1); // the stale access was stopped before it touched the word
    expect(arena.check().ok).toBe(true);
    expect(() => imported.status()).toThrow(UseAfterFreeError);
    imported.put(); // putting a signaled fence does not take its lock
    arena.free(op2);
    expectClean(arena);
  });

  it('borrowed lock, no sanitizer: the fence lock word is now the new operation’s lock', () => {
    const arena = newArena(false);
    const { op, fence } = submit(arena, 'borrowed');
    const imported = fence.get();
    const { op2, op2Lock } = completeAndReuse(arena, op, fence);

    // False deadlock: the new operation holds its lock; the importer (same thread) is told it
    // already holds the *fence* lock — which it never took.
    expect(op2Lock.lock()).toBe(true);
    rejects(arena, () => imported.lock(20), 'EDEADLK');
    op2Lock.unlock();

    // False contention the other way: the importer locks the old fence... and the new operation
    // can no longer take its own lock.
    expect(imported.lock(20)).toBe(true);
    expect(op2Lock.owner).toBe(arena.slot);
    expect(op2Lock.tryLock()).toBe(false);
    const hw = arena.resolve(op2, -1, 'block');
    expect(arena.i32[hw + 2] & 0x3ff).toBe(arena.me); // the importer's id, written into op2's memory
    imported.unlock();

    // Broken mutual exclusion: the importer holds the fence lock while the exporter frees op2 and
    // starts op3 there (zeroed memory): op3 takes "its" lock although the fence lock is held.
    expect(imported.lock(20)).toBe(true);
    arena.free(op2);
    const op3 = arena.alloc(OP_BYTES, BlockType.OPERATION);
    expect(op3 % OFFSET).toBe(op % OFFSET);
    const op3Lock = SpinLock.at(arena, op3, 0);
    expect(op3Lock.tryLock()).toBe(true); // two holders of one word at once
    // The importer's unlock now releases op3's lock under op3's feet.
    imported.unlock();
    expect(op3Lock.owner).toBe(-1);
    rejects(arena, () => op3Lock.unlock(), 'EPERM');
    imported.put();
    arena.free(op3);
    expectClean(arena);
  });

  it('inline lock: the same sequence is clean (sanitizer counts nothing)', () => {
    const arena = newArena('count');
    const { op, fence } = submit(arena, 'inline');
    const imported = fence.get();
    const { op2, op2Lock } = completeAndReuse(arena, op, fence);
    expect(op2Lock.lock()).toBe(true);
    expect(imported.lock(20)).toBe(true); // independent words: no contention, no deadlock
    expect(op2Lock.owner).toBe(arena.slot);
    imported.unlock();
    expect(op2Lock.owner).toBe(arena.slot); // the new operation's lock was not touched
    op2Lock.unlock();
    expect(imported.status()).toBe(1);
    expect(imported.withLock(() => imported.isSignaled())).toBe(true);
    imported.put();
    arena.free(op2);
    expect(arena.uafCount).toBe(0);
    expectClean(arena);
  });
});

/** The importer in a worker, holding a reference to the exporter's fence. */
async function importer(arena: Arena, fence: Fence) {
  const w = new TestWorker('seed-importer', { buffer: arena.buffer });
  const { slot } = await w.next('ready');
  const imported = await w.ask({ type: 'import', handle: fence.get().handle }, 'imported');
  return { w, slot: slot as number, usesInlineLock: imported.usesInlineLock as boolean };
}

async function lockAsImporter(w: TestWorker, timeoutMs: number): Promise<Msg> {
  return w.ask({ type: 'lock', timeoutMs }, 'lock-result');
}

async function finish(arena: Arena, w: TestWorker, slot: number, detach = true) {
  const put = await w.ask({ type: 'put' }, 'put-result');
  expect(put.ok).toBe(true);
  await w.ask({ type: 'exit', detach }, 'bye');
  await w.exited();
  if (!detach) arena.reapSlot(slot); // the worker left a stale entry in its lock list: reap it
}

describe('two workers (exporter: main thread, importer: worker)', () => {
  it('borrowed lock, sanitize: the importer gets UseAfterFreeError naming the exporter’s free and new op', async () => {
    const arena = newArena(true);
    const { op, fence } = submit(arena, 'borrowed');
    const { w, slot, usesInlineLock } = await importer(arena, fence);
    try {
      expect(usesInlineLock).toBe(false);
      const { op2, op2Lock } = completeAndReuse(arena, op, fence);
      const r = await lockAsImporter(w, 50);
      expect(r.ok).toBe(false);
      expect(r.name).toBe('UseAfterFreeError');
      expect(r.code).toBe('EFAULT');
      expect(r.report).toMatchObject({
        access: 'fence-lock',
        block: (op % OFFSET) * 8,
        takenGeneration: Math.floor(op / OFFSET),
        currentGeneration: Math.floor(op2 / OFFSET),
        freedBy: arena.slot, // the exporter freed it
        nowType: 'operation',
        nowOwner: arena.slot, // and owns the new operation
        thread: slot, // the importer touched it
      });
      expect(arena.uafCount).toBe(1); // arena-wide: the main thread sees the importer's report
      expect(op2Lock.owner).toBe(-1);
      await finish(arena, w, slot);
      arena.free(op2);
      expectClean(arena);
    } finally {
      await w.worker.terminate();
    }
  });

  it('borrowed lock, no sanitizer: false contention, then broken mutual exclusion across threads', async () => {
    const arena = newArena(false);
    const { op, fence } = submit(arena, 'borrowed');
    const { w, slot } = await importer(arena, fence);
    try {
      const { op2, op2Lock } = completeAndReuse(arena, op, fence);
      // False contention: the new operation holds its lock; the importer cannot take the lock of
      // a fence that signaled long ago and that nobody holds.
      expect(op2Lock.lock()).toBe(true);
      let r = await lockAsImporter(w, 50);
      expect(r).toMatchObject({ ok: true, acquired: false });
      op2Lock.unlock();

      // The importer takes the fence lock — in fact op2's word — and the exporter's new operation
      // cannot lock itself.
      r = await lockAsImporter(w, 1000);
      expect(r).toMatchObject({ ok: true, acquired: true });
      expect(op2Lock.owner).toBe(slot);
      expect(op2Lock.lock(20)).toBe(false);

      // Broken mutual exclusion: while the importer holds the fence lock, op2 completes and op3
      // starts in the same memory; op3 locks its lock: two threads hold "one" lock.
      arena.free(op2);
      const op3 = arena.alloc(OP_BYTES, BlockType.OPERATION);
      expect(op3 % OFFSET).toBe(op % OFFSET);
      const op3Lock = SpinLock.at(arena, op3, 0);
      expect(op3Lock.tryLock()).toBe(true);
      // The importer's unlock is refused: the word says the exporter holds it now.
      r = await w.ask({ type: 'unlock' }, 'unlock-result');
      expect(r).toMatchObject({ ok: false, code: 'EPERM' });
      op3Lock.unlock();
      // The importer still lists the word as held: it cannot detach cleanly; the parent reaps it.
      await finish(arena, w, slot, false);
      arena.free(op3);
      expectClean(arena);
    } finally {
      await w.worker.terminate();
    }
  });

  it('inline lock: the same sequence is clean across threads', async () => {
    const arena = newArena('count');
    const { op, fence } = submit(arena, 'inline');
    const { w, slot, usesInlineLock } = await importer(arena, fence);
    try {
      expect(usesInlineLock).toBe(true);
      const { op2, op2Lock } = completeAndReuse(arena, op, fence);
      expect(op2Lock.lock()).toBe(true);
      let r = await lockAsImporter(w, 1000);
      expect(r).toMatchObject({ ok: true, acquired: true }); // no false contention
      expect(op2Lock.owner).toBe(arena.slot); // and nothing of op2 was touched
      // op2 completes while the importer holds the fence lock; op3 takes the memory.
      op2Lock.unlock();
      arena.free(op2);
      const op3 = arena.alloc(OP_BYTES, BlockType.OPERATION);
      const op3Lock = SpinLock.at(arena, op3, 0);
      expect(op3Lock.tryLock()).toBe(true);
      r = await w.ask({ type: 'unlock' }, 'unlock-result');
      expect(r.ok).toBe(true);
      expect(op3Lock.owner).toBe(arena.slot); // the importer's unlock left op3 alone
      op3Lock.unlock();
      r = await w.ask({ type: 'status' }, 'status-result');
      expect(r).toMatchObject({ ok: true, status: 1 });
      expect(arena.uafCount).toBe(0);
      await finish(arena, w, slot);
      arena.free(op3);
      expectClean(arena);
    } finally {
      await w.worker.terminate();
    }
  });
});

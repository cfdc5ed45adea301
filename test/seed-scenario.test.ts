/**
 * The borrowed-lock scenario of the kernel RFC "dma-fence: in-place lock": an operation struct owns
 * a lock, its out-fence borrows it, the operation is freed after signal, a new operation reuses the
 * memory (LIFO), and the old fence's lock is taken again.
 *  - sanitize → UseAfterFreeError at that moment;
 *  - no sanitizer → the real damage: the fence's lock word now belongs to the new operation
 *    (false contention, a false deadlock, or two holders of "one" lock);
 *  - inline lock → the same sequence is clean.
 * Same-thread and two-thread versions: in the latter the main thread is the exporter, handing its
 * fence over the engine's ring, and the engine's importer worker takes the fence lock once the
 * exporter says the operation is freed; the board's HOLD keeps it inside that lock while the main
 * thread reuses the memory.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, BlockType, Fence, SpinLock, UseAfterFreeError } from '../src/index.js';
import { C, EXPECT_OK } from '../workers/board.js';
import { Crew } from '../workers/crew.js';
import type { RingExporter } from '../workers/ring.js';
import { expectClean, rejects } from './support/core.js';
import { ENGINE_DIR } from './support/threads.js';

const OFFSET = 2 ** 28;
const OP_BYTES = 48; // an operation: lock word at 0, payload after it

type Mode = 'borrowed' | 'inline';

function newArena(sanitize: boolean | 'count' = false): Arena {
  return Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16, sanitize });
}

/** The exporter's first half: an operation with its own lock and an out-fence (borrowing it or not). */
function submit(arena: Arena, mode: Mode) {
  const op = arena.alloc(OP_BYTES);
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
  const op2 = arena.alloc(OP_BYTES);
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
      nowType: 'raw',
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

    // Broken mutual exclusion: the exporter frees op2 and starts op3 there (zeroed memory). Not
    // while this thread holds the fence lock: arena.free refuses a block under a lock word the
    // caller holds (EBUSY). Another thread's hold it cannot see: the two-thread test below.
    expect(imported.lock(20)).toBe(true);
    rejects(arena, () => arena.free(op2), 'EBUSY');
    imported.unlock();
    arena.free(op2);
    const op3 = arena.alloc(OP_BYTES);
    expect(op3 % OFFSET).toBe(op % OFFSET);
    const op3Lock = SpinLock.at(arena, op3, 0);
    expect(op3Lock.tryLock()).toBe(true);
    // The importer's unlock of "its" fence lock releases op3's lock under op3's feet.
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

const crews: Crew[] = [];
afterEach(async () => {
  await Promise.all(crews.splice(0).map((c) => c.terminateAll()));
});

/** The engine's importer worker, fed by the main thread as the exporter. */
async function importer(arena: Arena, lockTimeoutMs: number) {
  const crew = new Crew(arena, { seed: 'seed-scenario', workerDir: ENGINE_DIR, lockTimeoutMs, waitTimeoutMs: 60_000 });
  crews.push(crew);
  const exporter = crew.parentExporter();
  const slot = await crew.spawn('importer').ready;
  return { crew, exporter, slot };
}

/** Hands `fence` to the importer (the ring parks a reference of its own) and returns the ring slot. */
function handOff(exporter: RingExporter, fence: Fence, op: number): number {
  const slot = exporter.claim(1, false, () => false);
  expect(slot).toBeGreaterThanOrEqual(0);
  exporter.counted(slot);
  exporter.handOff(slot, fence, op, EXPECT_OK);
  return slot;
}

/** Waits until the importer handed back `n` fences in all. */
function consumed(crew: Crew, n: number): Promise<void> {
  return crew.until(`the importer to finish fence ${n}`, () => crew.count(C.CONSUMED) === n);
}

/** The exporter leaves, the importer exits, the ring drops its references. */
async function finish(crew: Crew, exporter: RingExporter): Promise<void> {
  exporter.leave();
  await crew.settled();
  crew.sweep();
}

describe('two threads (exporter: main thread, importer: the engine’s worker)', () => {
  it('borrowed lock, sanitize: the importer gets UseAfterFreeError naming the exporter’s free and new op', async () => {
    const arena = newArena(true);
    const { op, fence } = submit(arena, 'borrowed');
    const handle = fence.handle;
    const { crew, exporter, slot } = await importer(arena, 50);
    const s = handOff(exporter, fence, op);
    const { op2, op2Lock } = completeAndReuse(arena, op, fence);
    exporter.ended(s, 1); // the operation is freed: the importer takes the fence lock now
    await consumed(crew, 1);
    await finish(crew, exporter);
    expect(crew.errors).toEqual([]);
    expect(crew.uafReports).toHaveLength(1);
    expect(crew.uafReports[0]).toMatchObject({
      access: 'fence-lock',
      fence: handle,
      block: (op % OFFSET) * 8,
      takenGeneration: Math.floor(op / OFFSET),
      currentGeneration: Math.floor(op2 / OFFSET),
      freedBy: arena.slot, // the exporter freed it
      nowType: 'raw',
      nowOwner: arena.slot, // and owns the new operation
      thread: slot, // the importer touched it
    });
    expect(arena.uafCount).toBe(1); // arena-wide: the main thread sees the importer's access
    expect(crew.count(C.STALE)).toBe(1);
    expect(op2Lock.owner).toBe(-1); // stopped before it touched the word
    expect(crew.count(C.STATUS_MISMATCH)).toBe(0);
    arena.free(op2);
    expectClean(arena);
  });

  it('borrowed lock, no sanitizer: false contention, then broken mutual exclusion across threads', async () => {
    const arena = newArena(false);
    const { crew, exporter, slot } = await importer(arena, 50);

    // False contention: the new operation holds its lock; the importer cannot take the lock of a
    // fence that signaled long ago and that nobody holds.
    const a = submit(arena, 'borrowed');
    const sa = handOff(exporter, a.fence, a.op);
    const { op2, op2Lock } = completeAndReuse(arena, a.op, a.fence);
    expect(op2Lock.lock()).toBe(true);
    exporter.ended(sa, 1);
    await consumed(crew, 1);
    expect(crew.count(C.HANGS)).toBe(1); // its lock wait timed out
    op2Lock.unlock();

    // The importer takes another such fence lock — in fact the new operation's word — and stays
    // inside: the exporter's operation cannot lock itself.
    const b = submit(arena, 'borrowed');
    const sb = handOff(exporter, b.fence, b.op);
    const reuse = completeAndReuse(arena, b.op, b.fence);
    crew.holdSections(true);
    exporter.ended(sb, 1);
    await crew.until('the importer inside the fence lock', () => crew.count(C.HELD) === 1);
    expect(reuse.op2Lock.owner).toBe(slot);
    expect(reuse.op2Lock.lock(20)).toBe(false);
    // Broken mutual exclusion: while the importer holds the fence lock, that operation completes
    // and the next one starts in the same memory; it locks its lock: two threads hold "one" lock.
    arena.free(reuse.op2);
    const op3 = arena.alloc(OP_BYTES);
    expect(op3 % OFFSET).toBe(b.op % OFFSET);
    const op3Lock = SpinLock.at(arena, op3, 0);
    expect(op3Lock.tryLock()).toBe(true);
    crew.holdSections(false);
    await consumed(crew, 2);
    // The importer's unlock was refused: the word says the exporter holds it now.
    expect(crew.count(C.LOCK_ERRORS)).toBe(1);
    expect(op3Lock.owner).toBe(arena.slot);
    op3Lock.unlock();
    await finish(crew, exporter);
    // A refused unlock forgets the word: the importer still left the arena cleanly.
    expect(crew.errors).toEqual([]);
    expect(crew.count(C.STALE)).toBe(2);
    arena.free(op2);
    arena.free(op3);
    expectClean(arena);
  });

  it('inline lock: the same sequence is clean across threads', async () => {
    const arena = newArena('count');
    const { op, fence } = submit(arena, 'inline');
    const { crew, exporter } = await importer(arena, 1000);
    const s = handOff(exporter, fence, op);
    const { op2, op2Lock } = completeAndReuse(arena, op, fence);
    expect(op2Lock.lock()).toBe(true);
    crew.holdSections(true);
    exporter.ended(s, 1);
    // No false contention: the importer holds the fence lock while op2's is held...
    await crew.until('the importer inside the fence lock', () => crew.count(C.HELD) === 1);
    expect(op2Lock.owner).toBe(arena.slot); // ...and nothing of op2 was touched
    // op2 completes while the importer holds the fence lock; op3 takes the memory.
    op2Lock.unlock();
    arena.free(op2);
    const op3 = arena.alloc(OP_BYTES);
    const op3Lock = SpinLock.at(arena, op3, 0);
    expect(op3Lock.tryLock()).toBe(true);
    crew.holdSections(false);
    await consumed(crew, 1);
    expect(op3Lock.owner).toBe(arena.slot); // the importer's unlock left op3 alone
    op3Lock.unlock();
    await finish(crew, exporter);
    expect(crew.errors).toEqual([]);
    // Its status was the one the exporter set (1); no stale access, no damage.
    for (const c of [C.STATUS_MISMATCH, C.HANGS, C.LOCK_ERRORS, C.ME_VIOLATIONS, C.STALE]) expect(crew.count(c), `counter ${c}`).toBe(0);
    expect(arena.uafCount).toBe(0);
    arena.free(op3);
    expectClean(arena);
  });
});

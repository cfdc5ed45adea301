/**
 * The owner word of an fd entry (src/sync/fdtable.ts) is slot + 1, 0 for none. A claimer writes it
 * right after the compare-exchange that claims the entry, so a reaper closing a dead slot's fds
 * (closeFdsOf) can see another thread's claim before that write: it must read as nobody's. With
 * the slot itself stored, a fresh table's zeroed entries read as slot 0's, and the reaper of a
 * dead slot 0 undid a live thread's claim in flight.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence, SyncFile } from '../src/index.js';
import * as A from '../src/arena/layout.js';
import { closeFdsOf } from '../src/sync/fdtable.js';
import * as SY from '../src/sync/layout.js';
import { TestWorker, expectClean } from './support/core.js';

describe('fd entry owners', () => {
  it('a claim in flight in a fresh table is not undone by the reaper of slot 0', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const i32 = arena.i32;
    const e = i32[A.H_TABLE]; // entry 0, never used: its words are all 0
    expect(i32[e + SY.FD_OWNER]).toBe(0);
    // A thread's claim, between its compare-exchange and its owner write.
    const claimed = (1 << SY.FDS_GEN_SHIFT) | SY.FDS_CLAIMED;
    Atomics.store(i32, e + SY.FD_STATE, claimed);
    // Another thread closes slot 0's fds (as the reaper of a dead slot 0 would).
    const w = new TestWorker('fd-reap', { buffer: arena.buffer, slot: 0 });
    const m = await w.next('closed');
    expect(m.reaper).not.toBe(0);
    expect(m.n).toBe(0);
    expect(Atomics.load(i32, e + SY.FD_STATE)).toBe(claimed); // left to its claimer
    await w.exited();
    Atomics.store(i32, e + SY.FD_STATE, SY.FDS_FREE);
    expectClean(arena);
  });

  it('an open fd names its creator (slot + 1) and is closed with it', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const fd = SyncFile.create(arena, f);
    const e = arena.i32[A.H_TABLE] + (fd % SY.FD_INDEX_SCALE) * SY.FD_STRIDE;
    expect(arena.i32[e + SY.FD_OWNER]).toBe(arena.slot + 1);
    expect(closeFdsOf(arena, arena.slot + 1)).toBe(0); // another slot's: not this one's fds
    expect(SyncFile.openCount(arena)).toBe(1);
    expect(closeFdsOf(arena, arena.slot)).toBe(1);
    expect(SyncFile.openCount(arena)).toBe(0);
    expect(arena.i32[e + SY.FD_OWNER]).toBe(0);
    f.signal();
    f.put();
    expectClean(arena);
  });
});

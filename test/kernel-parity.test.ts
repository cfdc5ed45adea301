/**
 * Kernel parity, function by function: each test names the kernel function whose behaviour it
 * mirrors (dma-fence.c, dma-fence-array.c, dma-fence-chain.c, dma-fence-unwrap.c, sync_file.c,
 * sw_sync.c) and checks fencelab does the same, or the documented difference (docs/kernel-mapping.md).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, FenceError, FenceSlot } from '../src/index.js';
import { fenceTryGet } from '../src/fence/core.js';
import { F_REFCOUNT } from '../src/fence/layout.js';
import { TestWorker, expectClean, rejects } from './support/core.js';

const arenas: Arena[] = [];
function newArena(bytes = 1 << 20): Arena {
  const a = Arena.create({ bytes, maxThreads: 4, maxFds: 16 });
  arenas.push(a);
  return a;
}
afterEach(() => {
  for (const a of arenas.splice(0)) expectClean(a);
  expect(Fence.pendingAsyncWaits).toBe(0);
});

function fence(arena: Arena, seqno = 1, context = Fence.contextAlloc(arena)): Fence {
  return Fence.create(arena, { context, seqno });
}

describe('references: get-unless-zero and FenceSlot (kernel dma_fence_get_rcu, dma_fence_get_rcu_safe)', () => {
  it('dma_fence_get_rcu: a get never raises a count of 0 (the last put wins, the release path is undisturbed)', () => {
    const arena = newArena();
    const f = fence(arena);
    const i32 = arena.i32;
    expect(fenceTryGet(i32, f.fw)).toBe(true);
    expect(f.refcount).toBe(2);
    f.put();
    // Model the moment after the last put's decrement: the count is 0 and stays 0 under a get.
    const saved = Atomics.exchange(i32, f.fw + F_REFCOUNT, 0);
    expect(saved).toBe(1);
    expect(fenceTryGet(i32, f.fw)).toBe(false);
    expect(Atomics.load(i32, f.fw + F_REFCOUNT)).toBe(0);
    Atomics.store(i32, f.fw + F_REFCOUNT, 1);
    f.put();
    rejects(arena, () => f.get(), 'EBADF');
  });

  it('dma_fence_get_rcu_safe: slot.set takes its own reference and puts the old fence; get hands out a new one', () => {
    const arena = newArena();
    const slot = FenceSlot.create(arena);
    expect(slot.get()).toBeNull();
    const ctx = Fence.contextAlloc(arena);
    const a = fence(arena, 1, ctx);
    slot.set(a);
    expect(a.refcount).toBe(2); // ours and the slot's
    const got = slot.get()!;
    expect(got.handle).toBe(a.handle);
    expect(a.refcount).toBe(3);
    got.put();
    const b = fence(arena, 2, ctx);
    slot.set(b);
    expect(a.refcount).toBe(1); // the slot put its reference on a
    a.put();
    b.put(); // the slot still holds b
    const same = FenceSlot.fromHandle(arena, slot.handle);
    const g = same.get()!;
    expect(g.seqno).toBe(2);
    g.put();
    slot.set(null);
    expect(slot.get()).toBeNull();
    const c = fence(arena, 3, ctx);
    slot.set(c);
    c.put();
    // The slot holds the only reference of the last fence: destroy puts it, and frees the slot.
    slot.destroy();
    rejects(arena, () => same.get(), 'EBADF');
    rejects(arena, () => FenceSlot.fromHandle(arena, slot.handle), 'EBADF');
  });

  it('FenceSlot refuses what is not a live fence of its arena', () => {
    const arena = newArena();
    const other = newArena();
    const slot = FenceSlot.create(arena);
    rejects(arena, () => slot.set({} as Fence), 'EINVAL');
    const f = fence(other);
    rejects(arena, () => slot.set(f), 'EINVAL');
    f.put();
    const g = fence(arena);
    g.put();
    rejects(arena, () => slot.set(g), 'EBADF');
    const h = fence(arena);
    rejects(arena, () => FenceSlot.fromHandle(arena, h.handle), 'EINVAL');
    h.put();
    slot.destroy();
  });

  it('dma_fence_get_rcu_safe: a reader in another thread never gets a released fence while the main thread keeps replacing it', async () => {
    const arena = newArena(4 << 20);
    const slot = FenceSlot.create(arena);
    const ctx = Fence.contextAlloc(arena);
    const first = fence(arena, 1, ctx);
    slot.set(first);
    first.put(); // the slot holds the only reference
    const tally = new Int32Array(new SharedArrayBuffer(12));
    const w = new TestWorker('slot-reader', { buffer: arena.buffer, slot: slot.handle, rounds: 20_000, tally: tally.buffer });
    // Replace until the reader is done: every set puts the previous fence, often its last reference.
    let seqno = 2;
    while (Atomics.load(tally, 0) < 2 && w.exitCode === undefined && w.error === undefined) {
      const f = fence(arena, seqno++, ctx);
      slot.set(f);
      f.put();
      if (seqno % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    const done = await w.next('done');
    expect(done.bad).toBe(0);
    expect(await w.exited()).toBe(0);
    slot.destroy();
  });

  it('a handle cut to 32 bits (Int32Array) is refused with a message that says so and names FenceSlot', () => {
    const arena = newArena();
    // Reuse one 64-byte block until its generation no longer fits 32-bit handles.
    let f = fence(arena);
    while (f.handle <= 0x7fffffff) {
      f.put();
      f = fence(arena);
    }
    const cut = new Int32Array([f.handle])[0];
    expect(cut).not.toBe(f.handle);
    const e1 = rejects(arena, () => Fence.fromHandle(arena, cut), 'EBADF');
    expect(e1.message).toMatch(/truncated to 32 bits.*FenceSlot/);
    const cutU = new Uint32Array([f.handle])[0];
    if (cutU !== f.handle) {
      const e2 = rejects(arena, () => Fence.fromHandle(arena, cutU), 'EBADF');
      expect(e2.message).toMatch(/truncated to 32 bits/);
    }
    // A plain stale handle is not called truncated.
    const old = f.handle;
    f.put();
    const e3 = rejects(arena, () => Fence.fromHandle(arena, old), 'EBADF');
    expect(e3.message).not.toMatch(/truncated/);
    expect(e3).toBeInstanceOf(FenceError);
  });
});

/**
 * Arena: create/attach, handle validation, alloc/free with LIFO reuse, ENOMEM, stats() and check().
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Fence, FenceError, SpinLock } from '../src/index.js';
import { expectClean, rejects } from './support/core.js';

/** Word index of the layout version in the header (the one number this file must know). */
const H_VERSION = 1;

function smallArena(): Arena {
  return Arena.create({ bytes: 256 * 1024, maxThreads: 2, maxFds: 16 });
}

describe('Arena.create / Arena.attach', () => {
  it('creates an arena with the requested options and attaches to it in the same thread', () => {
    const arena = Arena.create({ bytes: 1 << 20, lockKind: 'ticket', maxThreads: 4 });
    expect(arena.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(arena.buffer.byteLength).toBe(1 << 20);
    expect(arena.lockKind).toBe('ticket');
    expect(arena.maxThreads).toBe(4);
    expect(arena.sanitize).toBe(false);
    expect(arena.slot).toBe(0);
    expect(arena.me).toBe(1);
    // Attaching again in the thread that owns a view returns that view (one slot per thread).
    expect(Arena.attach(arena.buffer)).toBe(arena);
    const stats = arena.stats();
    expect(stats.capacity).toBe(arena.capacity);
    expect(stats.capacity).toBeGreaterThan(0);
    expect(stats.capacity).toBeLessThan(1 << 20);
    expect(stats).toMatchObject({ used: 0, reserved: 0, live: {}, allocs: 0, frees: 0 });
    expectClean(arena);
  });

  it('defaults: futex locks, no sanitizer, 64 threads', () => {
    const arena = Arena.create({ bytes: 4 << 20 });
    expect(arena.lockKind).toBe('futex');
    expect(arena.maxThreads).toBe(64);
    expect(arena.sanitize).toBe(false);
    expect(arena.counting).toBe(false);
    expect(Arena.create({ bytes: 4 << 20, sanitize: 'count' })).toMatchObject({ sanitize: true, counting: true });
    expectClean(arena);
  });

  it('rejects impossible options with EINVAL', () => {
    const arena = smallArena();
    rejects(arena, () => Arena.create({ bytes: 1 << 20, lockKind: 'spinny' as never }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: 1 << 20, maxThreads: 0 }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: 1 << 20, maxThreads: 511 }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: 1 << 20, maxThreads: 1.5 }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: -1 }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: 2 ** 32 }), 'EINVAL');
    rejects(arena, () => Arena.create({ bytes: 8192 }), 'EINVAL'); // no room for the tables
    rejects(arena, () => Arena.create({ bytes: 1 << 20, maxFds: 0 }), 'EINVAL');
    expectClean(arena);
  });

  it('attaching to a foreign buffer throws EINVAL', () => {
    const arena = smallArena();
    rejects(arena, () => Arena.attach(new SharedArrayBuffer(1 << 16)), 'EINVAL'); // zeros: no magic
    const random = new SharedArrayBuffer(1 << 16);
    new Int32Array(random).fill(0x12345678);
    rejects(arena, () => Arena.attach(random), 'EINVAL');
    rejects(arena, () => Arena.attach(new SharedArrayBuffer(16)), 'EINVAL'); // too small for a header
    rejects(arena, () => Arena.attach(new ArrayBuffer(1 << 16) as unknown as SharedArrayBuffer), 'EINVAL');
    rejects(arena, () => Arena.attach(undefined as unknown as SharedArrayBuffer), 'EINVAL');
    // A fencelab header copied into a buffer of another size does not describe that buffer.
    const resized = new SharedArrayBuffer(arena.buffer.byteLength * 2);
    new Int32Array(resized).set(new Int32Array(arena.buffer));
    rejects(arena, () => Arena.attach(resized), 'EINVAL');
    expectClean(arena);
  });

  it('attaching to an arena of another layout version throws EINVAL', () => {
    const arena = smallArena();
    const copy = new SharedArrayBuffer(arena.buffer.byteLength);
    const words = new Int32Array(copy);
    words.set(new Int32Array(arena.buffer));
    words[H_VERSION] += 1;
    const err = rejects(arena, () => Arena.attach(copy), 'EINVAL');
    expect(err.message).toMatch(/version/);
    words[H_VERSION] -= 2;
    rejects(arena, () => Arena.attach(copy), 'EINVAL');
    expectClean(arena);
  });
});

describe('handles', () => {
  it('a handle carries offset and generation; stale, freed, forged, misaligned and out-of-bounds handles are EBADF', () => {
    const arena = smallArena();
    const ref = arena.alloc(40);
    expect(Number.isSafeInteger(ref)).toBe(true);
    expect(arena.resolve(ref, BlockType.RAW, 'block')).toBeGreaterThan(0);

    // Forged: not numbers, not integers, not positive.
    for (const bad of [0, -1, 1.5, NaN, Infinity, '12' as unknown as number, null as unknown as number])
      rejects(arena, () => arena.free(bad), 'EBADF');
    // Near misses of a live handle: its offset with a fraction, negated, or an object whose
    // valueOf would give it (never called: nothing is converted).
    let converted = false;
    const sneaky = { valueOf: () => ((converted = true), ref) } as unknown as number;
    for (const bad of [ref + 0.5, ref - 0.5, -ref, sneaky]) rejects(arena, () => arena.free(bad), 'EBADF');
    expect(converted).toBe(false);
    // Out of bounds: past the carved heap, and below the heap (inside the header).
    rejects(arena, () => arena.free(ref + 1_000_000 * 8), 'EBADF');
    rejects(arena, () => arena.free(2), 'EBADF');
    // Inside the buffer but past the bump pointer: memory never carved into blocks.
    const uncarved = rejects(arena, () => arena.free(ref + 4096), 'EBADF');
    expect(uncarved.message).toMatch(/out of the arena heap/);
    // Misaligned: blocks start on 16 bytes; the handle's offset unit is 8 bytes.
    rejects(arena, () => arena.free(ref + 1), 'EBADF');
    // Forged but aligned: points into the payload of a block, not at a header.
    const big = arena.alloc(200);
    rejects(arena, () => arena.free(big + 2), 'EBADF');
    // Wrong generation on a live block, also one that matches in its low 24 bits only.
    rejects(arena, () => arena.free(ref + 2 ** 28), 'EBADF');
    rejects(arena, () => arena.free(ref + 2 ** 52), 'EBADF');

    // Freed: the handle is dead; freeing again is EBADF, nothing changes.
    arena.free(ref);
    rejects(arena, () => arena.free(ref), 'EBADF');
    // Stale: the block was reused (next same-size alloc takes it back): the old handle stays dead.
    const reused = arena.alloc(40);
    expect(reused % 2 ** 28).toBe(ref % 2 ** 28);
    expect(reused).not.toBe(ref);
    const stale = rejects(arena, () => arena.free(ref), 'EBADF');
    expect(stale.message).toMatch(/stale generation/);
    rejects(arena, () => SpinLock.at(arena, ref), 'EBADF');
    arena.free(reused);
    arena.free(big);
    expectClean(arena);
  });

  it('a live block of the wrong type is EINVAL', () => {
    const arena = smallArena();
    const raw = arena.alloc(16);
    rejects(arena, () => Fence.fromHandle(arena, raw), 'EINVAL');
    rejects(arena, () => SpinLock.fromRef(arena, raw), 'EINVAL');
    rejects(arena, () => arena.resolve(raw, BlockType.CALLBACK, 'callback'), 'EINVAL');
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    rejects(arena, () => SpinLock.fromRef(arena, f.handle), 'EINVAL');
    rejects(arena, () => SpinLock.at(arena, f.handle, 0), 'EINVAL');
    // A fence is released by its last put(), never freed behind its references' back.
    rejects(arena, () => arena.free(f.handle), 'EINVAL');
    expect(f.refcount).toBe(1);
    f.put();
    arena.free(raw);
    expectClean(arena);
  });
});

describe('alloc / free', () => {
  it('allocates zeroed blocks of the size asked and frees them', () => {
    const arena = smallArena();
    // Payloads up to 248 bytes take the inline path (cleared 8 bytes at a time), larger ones the
    // checked path (fill): sizes on both sides of that switch and of the small classes' end (1016).
    const sizes = [1, 8, 24, 56, 100, 248, 249, 1000, 1016, 1017, 5000];
    const refs = sizes.map((n) => arena.alloc(n));
    expect(new Set(refs).size).toBe(sizes.length);
    refs.forEach((ref, i) => {
      const hw = arena.resolve(ref, BlockType.RAW, 'block');
      expect(arena.payloadBytes(hw)).toBeGreaterThanOrEqual(sizes[i]);
      const payload = arena.i32.subarray(hw + 2, hw + 2 + (arena.payloadBytes(hw) >>> 2));
      expect(payload.every((w) => w === 0)).toBe(true);
      payload.fill(-1); // dirty it: the next owner must still get zeros
    });
    for (const ref of refs) arena.free(ref);
    const again = sizes.map((n) => arena.alloc(n));
    for (const ref of again) {
      const hw = arena.resolve(ref, BlockType.RAW, 'block');
      expect(arena.i32.subarray(hw + 2, hw + 2 + (arena.payloadBytes(hw) >>> 2)).every((w) => w === 0)).toBe(true);
      arena.free(ref);
    }
    expectClean(arena);
  });

  it('rejects bad sizes and types with EINVAL', () => {
    const arena = smallArena();
    for (const bad of [0, -8, 1.5, NaN, '8' as unknown as number]) rejects(arena, () => arena.alloc(bad), 'EINVAL');
    rejects(arena, () => arena.alloc(8, 0), 'EINVAL');
    rejects(arena, () => arena.alloc(8, 99), 'EINVAL');
    expectClean(arena);
  });

  it('LIFO: the next allocation of the same size gets the block freed last', () => {
    const arena = smallArena();
    const a = arena.alloc(48);
    const b = arena.alloc(48);
    const c = arena.alloc(48);
    const off = (h: number) => h % 2 ** 28;
    arena.free(a);
    arena.free(c);
    const c2 = arena.alloc(48);
    expect(off(c2)).toBe(off(c));
    const a2 = arena.alloc(48);
    expect(off(a2)).toBe(off(a));
    // A block of another size class does not take it.
    arena.free(b);
    const other = arena.alloc(500);
    expect(off(other)).not.toBe(off(b));
    const b2 = arena.alloc(48);
    expect(off(b2)).toBe(off(b));
    // The reused block has a new generation: the handle differs, the old one is stale.
    expect(c2).not.toBe(c);
    rejects(arena, () => arena.free(c), 'EBADF');
    for (const h of [a2, c2, other, b2]) arena.free(h);
    expect(arena.stats().live).toEqual({});
    expectClean(arena);
  });

  it('frees that switch size class each push to their own class\'s cache', () => {
    // The public free guesses its cache from the class of the view's last free (freeRaw): a wrong
    // guess kept would put a block in another class's cache.
    const arena = smallArena();
    const off = (h: number) => h % 2 ** 28;
    const sizes = [24, 24, 120, 500, 24, 120, 120, 500];
    const lock = SpinLock.create(arena);
    const refs = sizes.map((s) => arena.alloc(s));
    refs.forEach((r, i) => {
      arena.free(r);
      // The next allocation of each size gets the block just freed, whatever class went before.
      const again = arena.alloc(sizes[i]);
      expect(off(again), `free #${i} (${sizes[i]} B)`).toBe(off(r));
      arena.free(again);
    });
    // A lock block (the other type the public free takes) in between, then each size again.
    arena.free(lock.ref);
    for (const s of [500, 120, 24]) expect(off(arena.alloc(s)), `${s} B`).toBe(off(refs[sizes.lastIndexOf(s)]));
    expect(arena.stats().frees).toBe(2 * sizes.length + 1);
    expect(arena.check().problems).toEqual([]);
  });

  it('LIFO reuse survives a cache overflow to the global free list', () => {
    const arena = smallArena();
    const refs = Array.from({ length: 100 }, () => arena.alloc(24));
    for (const r of refs) arena.free(r);
    const last = refs[refs.length - 1] % 2 ** 28;
    const back = arena.alloc(24);
    expect(back % 2 ** 28).toBe(last);
    arena.free(back);
    // Every block comes back exactly once.
    const again = Array.from({ length: 100 }, () => arena.alloc(24));
    expect(new Set(again.map((h) => h % 2 ** 28))).toEqual(new Set(refs.map((h) => h % 2 ** 28)));
    for (const r of again) arena.free(r);
    expectClean(arena);
  });

  it('ENOMEM on exhaustion leaves the arena consistent and usable', () => {
    const arena = smallArena();
    const refs: number[] = [];
    let err: unknown;
    for (;;) {
      try {
        refs.push(arena.alloc(120));
      } catch (e) {
        err = e;
        break;
      }
    }
    expect(err).toBeInstanceOf(FenceError);
    expect((err as FenceError).code).toBe('ENOMEM');
    expect(refs.length).toBeGreaterThan(100);
    expect(arena.check().ok).toBe(true);
    const before = arena.stats();
    rejects(arena, () => arena.alloc(120), 'ENOMEM');
    rejects(arena, () => arena.alloc(4000), 'ENOMEM');
    rejects(arena, () => arena.alloc(1 << 30), 'ENOMEM'); // larger than any size class
    expect(arena.stats()).toEqual(before); // nothing changed
    // Freed memory is usable again for its size.
    arena.free(refs.pop()!);
    refs.push(arena.alloc(120));
    for (const r of refs) arena.free(r);
    expect(arena.stats().live).toEqual({});
    expectClean(arena);
  });

  it('stats() counts capacity, used, reserved, live blocks by type, allocs and frees', () => {
    const arena = smallArena();
    const cap = arena.stats().capacity;
    const r1 = arena.alloc(56); // 64-byte block
    const r2 = arena.alloc(120); // 128-byte block
    const lock = SpinLock.create(arena);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    let s = arena.stats();
    expect(s.capacity).toBe(cap);
    expect(s.live).toEqual({ raw: 2, lock: 1, fence: 1 });
    expect(s.allocs).toBe(4);
    expect(s.frees).toBe(0);
    expect(s.used).toBe(64 + 128 + 16 + 64);
    expect(s.reserved).toBe(0); // blocks are carved one at a time, on demand
    arena.free(r1);
    f.put();
    s = arena.stats();
    expect(s.reserved).toBe(64 + 64); // freed blocks stay with their size class
    expect(s.live).toEqual({ raw: 1, lock: 1 });
    expect(s.frees).toBe(2);
    expect(s.used).toBe(128 + 16);
    lock.free();
    arena.free(r2);
    s = arena.stats();
    expect(s).toMatchObject({ used: 0, live: {}, allocs: 4, frees: 4 });
    expectClean(arena);
  });

  it('check() reports leaks with their type, size, generation and allocating thread', () => {
    const arena = smallArena();
    const raw = arena.alloc(100);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 7 });
    const op = SpinLock.create(arena).ref;
    const report = arena.check();
    expect(report.ok).toBe(true); // leaks are not structural problems
    expect(report.problems).toEqual([]);
    expect(report.leakedBytes).toBe(128 + 64 + 16);
    const byRef = new Map(report.leaks.map((l) => [l.ref, l]));
    expect(byRef.get(raw)).toMatchObject({ type: 'raw', bytes: 128, allocatedBy: 0 });
    expect(byRef.get(f.handle)).toMatchObject({ type: 'fence', bytes: 64, allocatedBy: 0 });
    expect(byRef.get(op)).toMatchObject({ type: 'lock', bytes: 16 });
    expect(byRef.get(raw)!.generation).toBe(Math.floor(raw / 2 ** 28));
    // The permanent stub fence is not a leak.
    const stub = Fence.stub(arena);
    stub.put();
    expect(arena.check().leakedBytes).toBe(128 + 64 + 16);
    f.put();
    arena.free(raw);
    arena.free(op);
    expectClean(arena);
  });

  it('check() detects a corrupted block header and a broken free list', () => {
    const arena = smallArena();
    const a = arena.alloc(24);
    const hw = arena.resolve(a, -1, 'block');
    const saved = arena.i32[hw + 1];
    arena.i32[hw + 1] = 0; // smash the generation/self-check word
    const bad = arena.check();
    expect(bad.ok).toBe(false);
    expect(bad.problems.join('\n')).toMatch(/corrupt block header/);
    arena.i32[hw + 1] = saved;
    expect(arena.check().ok).toBe(true);
    arena.free(a);
    expectClean(arena);
  });
});

/**
 * A waitAny the arena cannot arm (one 48-byte wake node per fence) is refused with ENOMEM before
 * it allocates anything. Blocks are never split or merged: wake nodes carved from the heap's bump
 * region and freed again stay 48-byte blocks, so a call that armed part of its list and then gave
 * up left an "empty" arena that could no longer hold the fences it held before.
 */
import { describe, expect, it } from 'vitest';
import * as A from '../src/arena/layout.js';
import * as L from '../src/fence/layout.js';
import { Arena, Fence, FenceError } from '../src/index.js';
import { expectClean, rejects } from './support/core.js';

const BYTES = 1 << 20;
/** A wake node's block: a callback node and its header, rounded up to its size class (48 bytes). */
const WAKE_BLOCK = A.SIZE_CLASSES.find((bytes) => bytes >= A.BLOCK_HEADER_BYTES + L.CB_WORDS * 4)!;

function makeFences(arena: Arena, n: number): Fence[] {
  const context = Fence.contextAlloc(arena);
  return Array.from({ length: n }, (_, i) => Fence.create(arena, { context, seqno: i + 1 }));
}

function putAll(fences: Fence[]): void {
  for (const f of fences) f.put();
}

/** How many fences the arena still holds: created until ENOMEM, then put again. */
function fencesThatFit(arena: Arena): number {
  const made: Fence[] = [];
  const context = Fence.contextAlloc(arena);
  try {
    for (;;) made.push(Fence.create(arena, { context, seqno: made.length + 1 }));
  } catch (e) {
    if (!(e instanceof FenceError) || e.code !== 'ENOMEM') throw e;
  }
  putAll(made);
  return made.length;
}

/** Bytes of the heap never carved (no live, cached or listed block there). */
function uncarved(arena: Arena): number {
  const s = arena.stats();
  return s.capacity - s.used - s.reserved;
}

/** `n` fences made and put on a fresh arena, then how many fit: what a rejected waitAny must leave. */
function baseline(n: number): number {
  const arena = Arena.create({ bytes: BYTES });
  putAll(makeFences(arena, n));
  const fit = fencesThatFit(arena);
  expectClean(arena);
  return fit;
}

async function rejectsAsync(arena: Arena, p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FenceError);
  expect((err as FenceError).code).toBe(code);
  const report = arena.check();
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
}

describe('waitAny without room for its wake nodes', () => {
  // Three quarters of the heap in fences: a wake node for each needs more than the quarter left.
  const most = (arena: Arena): number => Math.floor((arena.stats().capacity / 64) * 0.75);

  for (const mode of ['waitAny', 'waitAnyAsync'] as const) {
    it(`${mode}: ENOMEM before anything is allocated; afterwards the arena holds as many fences as before`, async () => {
      const arena = Arena.create({ bytes: BYTES });
      const fences = makeFences(arena, most(arena));
      expect(uncarved(arena)).toBeLessThan(fences.length * WAKE_BLOCK);
      const before = arena.stats();
      if (mode === 'waitAny') rejects(arena, () => Fence.waitAny(fences, 10), 'ENOMEM');
      else await rejectsAsync(arena, Fence.waitAnyAsync(fences, 10), 'ENOMEM');
      const after = arena.stats();
      putAll(fences);
      expectClean(arena);
      expect(fencesThatFit(arena)).toBe(baseline(fences.length));
      expectClean(arena);
      // Nothing was allocated: no block carved, cached or listed by the call.
      expect(after.allocs).toBe(before.allocs);
      expect(after.reserved).toBe(before.reserved);
      expect(after.live).toEqual(before.live);
    });
  }

  it('arms as many wake nodes as the arena has room for, and refuses one more', () => {
    const arena = Arena.create({ bytes: BYTES });
    const fences = makeFences(arena, most(arena));
    const room = Math.floor(uncarved(arena) / WAKE_BLOCK);
    expect(room).toBeLessThan(fences.length);
    rejects(arena, () => Fence.waitAny(fences.slice(0, room + 1), 0), 'ENOMEM');
    expect(Fence.waitAny(fences.slice(0, room), 0)).toBe(-1);
    expect(arena.stats().live).toEqual({ fence: fences.length });
    putAll(fences);
    expectClean(arena);
  });

  it('counts the wake-node blocks freed to the lists and the caller’s cache as room', () => {
    const arena = Arena.create({ bytes: BYTES });
    const fences = makeFences(arena, most(arena));
    const room = Math.floor(uncarved(arena) / WAKE_BLOCK);
    // The uncarved heap becomes wake-node blocks, now free (cached and listed): the same room.
    expect(Fence.waitAny(fences.slice(0, room), 0)).toBe(-1);
    expect(uncarved(arena)).toBeLessThan(WAKE_BLOCK);
    rejects(arena, () => Fence.waitAny(fences.slice(0, room + 1), 0), 'ENOMEM');
    expect(Fence.waitAny(fences.slice(0, room), 0)).toBe(-1);
    putAll(fences);
    expectClean(arena);
  });

  it('a list holding a signaled fence returns its index however little room there is', () => {
    const arena = Arena.create({ bytes: BYTES });
    const fences = makeFences(arena, most(arena));
    fences[fences.length - 1].signal();
    expect(Fence.waitAny(fences, 0)).toBe(fences.length - 1);
    putAll(fences);
    expectClean(arena);
  });
});

/**
 * Signals nested deeper than SIGNAL_INLINE (src/fence/signal.ts runRecorded): their callback lists
 * are deferred to the thread's deferred list and run, under the record of the signal at the last
 * inline depth, before that signal returns — so a signal never runs callbacks without a record
 * (deep-signal-kill.test.ts terminates threads in there). Here, in one thread: every callback of a
 * deep cascade runs once before the outermost signal() returns, each fence's callbacks in their
 * order, errors reach the outermost caller without stopping the rest, and the records are empty after.
 */
import { describe, expect, it } from 'vitest';
import { Arena, defineFenceOps, Errno, Fence } from '../src/index.js';
import * as FL from '../src/fence/layout.js';
import { expectClean } from './support/core.js';

const DEPTH = 3 * FL.SIGNAL_INLINE;

/** The calling thread's signal depth and deferred list head (both 0 outside any signal). */
function records(arena: Arena): [number, number, number] {
  const i32 = arena.i32;
  return [i32[arena.slotBase + FL.T_SIGNAL_DEPTH], i32[arena.slotBase + FL.T_SIGNAL_DEFER], i32[arena.slotBase + FL.T_SIGNAL_DEFER_TAIL]];
}

/** DEPTH fences of one context, each callback `i` logging around the signal of fence i + 1. */
function cascade(arena: Arena, log: string[], extra: (i: number) => void = () => {}): Fence[] {
  const ctx = Fence.contextAlloc(arena);
  const fs = Array.from({ length: DEPTH }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
  fs.forEach((f, i) => {
    f.addCallback(() => log.push(`a${i}`));
    f.addCallback(() => {
      extra(i);
      if (i + 1 < DEPTH) fs[i + 1].signal();
    });
    f.addCallback(() => log.push(`b${i}`));
  });
  return fs;
}

describe('signals nested deeper than the signal records reach inline', () => {
  it('run every callback once, in each fence\'s order, before the outermost signal returns', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const log: string[] = [];
    const depths: number[] = [];
    const fs = cascade(arena, log, () => depths.push(records(arena)[0]));
    fs[0].signal();
    expect(fs.filter((f) => !f.testSignaledFlag())).toEqual([]);
    expect([...log].sort()).toEqual(fs.flatMap((_, i) => [`a${i}`, `b${i}`]).sort());
    for (let i = 0; i < DEPTH; i++) expect(log.indexOf(`a${i}`)).toBeLessThan(log.indexOf(`b${i}`));
    // The nesting stops at the last inline depth: deeper lists ran from the deferred list there.
    expect(Math.max(...depths)).toBe(FL.SIGNAL_INLINE);
    expect(records(arena)).toEqual([0, 0, 0]);
    for (const f of fs) f.put();
    expectClean(arena);
  });

  it('a deep callback that throws: the outermost signal throws it, every other callback still ran', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const log: string[] = [];
    const boom = new Error('deep');
    const fs = cascade(arena, log, (i) => {
      if (i === DEPTH - 2) throw boom;
    });
    expect(() => fs[0].signal()).toThrow(boom);
    // The throwing callback signaled nothing: its fence's successor is the test's to signal.
    expect(fs.filter((f) => !f.testSignaledFlag()).length).toBe(1);
    fs[DEPTH - 1].signal();
    expect(log.length).toBe(2 * DEPTH);
    expect(records(arena)).toEqual([0, 0, 0]);
    for (const f of fs) f.put();
    expectClean(arena);
  });

  it('a refused enableSignaling deep inside a cascade signals with a record, and leaves none', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const ops = defineFenceOps('test:defer-refuse', { getDriverName: () => 'd', getTimelineName: () => 't', enableSignaling: () => false });
    const refusing = Array.from({ length: DEPTH }, (_, i) => Fence.create(arena, { ops, context: Fence.contextAlloc(arena), seqno: i + 1 }));
    const added: (object | null)[] = [];
    const fs = cascade(arena, [], (i) => added.push(refusing[i].addCallback(() => added.push({}))));
    fs[0].signal();
    expect(added).toEqual(Array<null>(DEPTH).fill(null)); // -ENOENT: the refusal signaled each
    expect(refusing.filter((f) => !f.testSignaledFlag())).toEqual([]);
    expect(records(arena)).toEqual([0, 0, 0]);
    for (const f of [...fs, ...refusing]) f.put();
    expectClean(arena);
  });

  it('a deferred list keeps its fence alive until its callbacks ran: a deep last put of an unsignaled fence', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const ctx = Fence.contextAlloc(arena);
    const seen: { i: number; error: number; signaled: boolean }[] = [];
    // Deep in the cascade, each callback drops the last reference of an unsignaled fence with a
    // callback: its release signals it -EDEADLK (deferred past the inline depth), then frees it
    // (kernel dma_fence_release). The deferred callbacks must still get a live fence.
    const fs = cascade(arena, [], (i) => {
      const g = Fence.create(arena, { context: ctx, seqno: i + 1 });
      g.addCallback((v) => seen.push({ i, error: v.error, signaled: v.testSignaledFlag() }));
      g.put();
    });
    const before = arena.stats().live.fence ?? 0;
    fs[0].signal();
    expect(seen.map((s) => s.i).sort((a, b) => a - b)).toEqual(Array.from({ length: DEPTH }, (_, i) => i));
    for (const s of seen) expect(s).toEqual({ i: s.i, error: Errno.EDEADLK, signaled: true });
    // Every such fence freed once its callbacks ran; the references the deferred lists held are gone.
    expect(arena.stats().live.fence ?? 0).toBe(before);
    expect(records(arena)).toEqual([0, 0, 0]);
    for (const f of fs) f.put();
    expectClean(arena);
  });
});

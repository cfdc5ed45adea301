/**
 * Releases nested deeper than RELEASE_INLINE are deferred, not unrecorded (docs/architecture.md,
 * "Kill safety": release records). A last put inside a release nests that fence's release inside
 * the outer one; nested more than RELEASE_INLINE deep, a release that would run code (callbacks,
 * ops.release) is moved to the thread's deferred list, which the release at the last inline depth
 * runs before it returns. These cascades are single-threaded and deterministic: each release runs
 * once, in the documented order, under a release record, and everything is freed by the time the
 * outermost put returns.
 */
import { describe, expect, it } from 'vitest';
import { Arena, defineFenceOps, Errno, Fence } from '../src/index.js';
import * as FL from '../src/fence/layout.js';
import { nestFence, nestReleases } from './fixtures/release-nest.js';
import { expectClean } from './support/core.js';

const NEST = 14; // container levels: releases nest this deep, more than RELEASE_INLINE (5)

/** The calling thread's release-record depth and the head of its deferred release list. */
function releaseState(arena: Arena): { depth: number; deferred: number } {
  return { depth: arena.i32[arena.slotBase + FL.T_RELEASE_DEPTH], deferred: arena.i32[arena.slotBase + FL.T_RELEASE_DEFER] };
}

/*
 * Probe fences: ops whose release logs the fence's seqno and the release-record depth it runs at,
 * and (when `next` names one) puts another fence: the release cascade of a driver whose fences hold
 * references on other fences.
 */
const log: { seqno: number; depth: number }[] = [];
const next = new Map<number, Fence>();
const throwing = new Set<number>();
let probeArena: Arena | null = null;
const probeOps = defineFenceOps('test:release-defer-probe', {
  getDriverName: () => 'test',
  getTimelineName: () => 'release-defer',
  release: (f) => {
    const seqno = Number(f.seqno);
    log.push({ seqno, depth: releaseState(probeArena!).depth });
    const n = next.get(f.fw);
    next.delete(f.fw);
    n?.put();
    if (throwing.has(seqno)) throw new Error(`probe ${seqno} failed`);
  },
});

function setup(): { arena: Arena; context: number; baseline: number } {
  const arena = Arena.create({ bytes: 8 << 20 });
  probeArena = arena;
  log.length = 0;
  next.clear();
  throwing.clear();
  return { arena, context: Fence.contextAlloc(arena), baseline: arena.stats().used };
}

function expectDone(arena: Arena, baseline: number): void {
  expect(releaseState(arena)).toEqual({ depth: 0, deferred: 0 });
  expect(arena.stats().used, 'bytes in use back to the baseline').toBe(baseline);
  expectClean(arena);
}

describe('release cascades deeper than RELEASE_INLINE', () => {
  it(`nest fences ${NEST} deep, each also holding a probe: every probe released once, under a record, in the documented order, before the put returns`, () => {
    const { arena, context, baseline } = setup();
    // Level i: a nest of [level i + 1, probe i]; the innermost holds probe NEST - 1 alone.
    const probeAt = (i: number): Fence => {
      const p = Fence.create(arena, { context, seqno: i, ops: probeOps });
      p.signal();
      return p;
    };
    let inner = nestFence(arena, context, 1000 + NEST - 1, [probeAt(NEST - 1)]);
    for (let i = NEST - 2; i >= 0; i--) inner = nestFence(arena, context, 1000 + i, [inner, probeAt(i)]);
    nestReleases.length = 0;
    inner.put();
    // Nest i's release runs at record i and its probe's at record i + 1. Inline (nests 0..4,
    // probes 0..3) the order is the kernel's, innermost first as the puts return; the nest at the
    // last inline record (4) defers nest 5 and probe 4, then runs its deferred list first in first
    // out: each deferred nest, at record 4, defers its own two children in turn. So nests and
    // probes 4 and up are released in level order, all at record 4 (depth 5 while they run),
    // before the puts of probes 3..0 return.
    const inline = FL.RELEASE_INLINE - 1;
    const expected = [
      ...Array.from({ length: NEST - inline }, (_, k) => ({ seqno: inline + k, depth: FL.RELEASE_INLINE })),
      ...Array.from({ length: inline }, (_, k) => ({ seqno: inline - 1 - k, depth: FL.RELEASE_INLINE - k })),
    ];
    expect(log).toEqual(expected);
    expect(nestReleases).toEqual(Array.from({ length: NEST }, (_, i) => 1000 + i));
    expectDone(arena, baseline);
  });

  it('ops releases that put the next fence, 20,000 deep: constant stack, each once, in put order', () => {
    const { arena, context, baseline } = setup();
    const N = 20_000;
    const fences = Array.from({ length: N }, (_, i) => Fence.create(arena, { context, seqno: i, ops: probeOps }));
    for (let i = 0; i < N - 1; i++) next.set(fences[i].fw, fences[i + 1]);
    for (const f of fences) f.signal();
    fences[0].put();
    expect(log.map((e) => e.seqno)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(Math.max(...log.map((e) => e.depth))).toBe(FL.RELEASE_INLINE);
    expectDone(arena, baseline);
  });

  it('unsignaled fences with callbacks below a nest 6 deep, each callback putting the next: each -EDEADLK callback once, in order', () => {
    const { arena, context, baseline } = setup();
    const N = 12;
    const fences = Array.from({ length: N }, (_, i) => Fence.create(arena, { context, seqno: i }));
    const ran: { i: number; error: number; depth: number }[] = [];
    fences.forEach((f, i) => {
      f.addCallback((g) => {
        ran.push({ i, error: g.error, depth: releaseState(arena).depth });
        if (i + 1 < N) fences[i + 1].put();
      });
    });
    // The nests put the first fence RELEASE_INLINE releases deep: its release (a signal that runs
    // code) is deferred, and so is each one its callback's put nests in it.
    let inner = nestFence(arena, context, 1000, [fences[0]]);
    for (let i = 1; i < FL.RELEASE_INLINE; i++) inner = nestFence(arena, context, 1000 + i, [inner]);
    inner.put();
    expect(ran.map((r) => r.i)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(ran.every((r) => r.error === Errno.EDEADLK), 'each signaled with -EDEADLK').toBe(true);
    expect(ran.every((r) => r.depth === FL.RELEASE_INLINE), 'each deferred, run at the last inline record').toBe(true);
    expectDone(arena, baseline);
  });

  it('a deferred release that throws: the others still run, the outermost put rethrows the first error', () => {
    const { arena, context, baseline } = setup();
    const N = 12;
    const fences = Array.from({ length: N }, (_, i) => Fence.create(arena, { context, seqno: i, ops: probeOps }));
    for (let i = 0; i < N - 1; i++) next.set(fences[i].fw, fences[i + 1]);
    for (const f of fences) f.signal();
    throwing.add(7);
    throwing.add(9);
    expect(() => fences[0].put()).toThrow('probe 7 failed');
    expect(log.map((e) => e.seqno)).toEqual(Array.from({ length: N }, (_, i) => i));
    expectDone(arena, baseline);
  });
});

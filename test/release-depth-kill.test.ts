/**
 * Kill window of releases nested deeper than the release records (docs/architecture.md, "Kill
 * safety": release records). A last put inside a release nests that fence's release inside the
 * outer one; before deeper releases were deferred (RELEASE_INLINE, deferRelease in
 * src/fence/release.ts), one nested more than RELEASE_CAP deep ran with no record at all, so a
 * thread terminated inside it lost it: the container's remaining references were never dropped
 * (leaked), and so was everything below it.
 *
 * Each round the main thread builds nests LEVELS deep (each level a nest fence holding the next
 * level and a plain fence, see test/fixtures/release-nest.ts), a worker takes over their last
 * references (tracked) and puts them, and is terminated at a seeded point. After the reap every
 * fence is freed, exactly once (bytes in use back to the baseline, arena.check() clean). A reap hook
 * that runs first reads how deep the dead thread's releases went: the kills under test leave a nest
 * of level RELEASE_CAP or deeper in flight (dropped and not released yet, on a record or deferred).
 */
import { describe, expect, it } from 'vitest';
import { Arena, Fence } from '../src/index.js';
import { onReap, ReapStage } from '../src/arena/hooks.js';
import * as A from '../src/arena/layout.js';
import * as FL from '../src/fence/layout.js';
import { CR_AT, CR_CELLS, CR_DONE, CR_GO } from './fixtures/container-release-kill-cells.js';
import { nestFence } from './fixtures/release-nest.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { adaptJitter, killRound, killTargets } from './support/killloop.js';

/** Rounds (one kill each) at most: the test kills until DEEP_KILLS landed in the window, so a run that lands fewer per round (a loaded machine) kills more, not fails. */
const MAX_KILLS = 200;
const NESTS = 80; // per round: their puts outlast terminate()'s landing
const LEVELS = 48; // nest levels: releases cascade this deep, most of it past RELEASE_CAP
const DEEP_KILLS = 50; // kills that must land in the window under test

const targets = killTargets();
const KILL_CELLS = { go: CR_GO, at: CR_AT, done: CR_DONE };

/** The nest level of each nest fence of the current round, by payload word. */
const levelOf = new Map<number, number>();
/** The deepest nest level the last reaped thread had in flight (-1: none). */
let deepest = -1;

/*
 * Before anything is reaped: the deepest nest named by a dropped, live release record of the dead
 * thread or on its deferred list. (Code without the deferred list only counted releases deeper than
 * its records: its depth word then tells how deep the unrecorded ones went.)
 */
onReap(ReapStage.LOCKS, (arena, slot) => {
  if (slot === arena.slot) return;
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  let max = -1;
  const depth = i32[b + FL.T_RELEASE_DEPTH];
  for (let j = 0; j < Math.min(depth, FL.RELEASE_CAP); j++) {
    const fw = i32[FL.releaseRecord(b, j, FL.REC_FW)];
    const gs = i32[FL.releaseRecord(b, j, FL.REC_STATE)];
    if (gs & FL.REL_DROPPED && arena.isLive(fw - A.BLOCK_HEADER_WORDS, gs & A.GEN_MASK)) max = Math.max(max, levelOf.get(fw) ?? -1);
  }
  const q = FL.T_RELEASE_DEFER as number | undefined;
  for (let fw = q === undefined ? 0 : i32[b + q]; fw > 0; fw = -i32[fw + FL.F_REFCOUNT]) max = Math.max(max, levelOf.get(fw) ?? -1);
  if (depth > FL.RELEASE_CAP) max = Math.max(max, depth - 1);
  deepest = max;
});

/** One round's nests (their handles: the worker takes over the one reference on each). */
function buildNests(arena: Arena): number[] {
  levelOf.clear();
  const context = Fence.contextAlloc(arena);
  let seqno = 0;
  const handles: number[] = [];
  for (let n = 0; n < NESTS; n++) {
    let inner: Fence | null = null;
    for (let level = LEVELS - 1; level >= 0; level--) {
      const plain = Fence.create(arena, { context, seqno: ++seqno });
      plain.signal();
      const nest: Fence = nestFence(arena, context, ++seqno, inner === null ? [plain] : [inner, plain]);
      levelOf.set(nest.fw, level);
      inner = nest;
    }
    handles.push(inner!.handle);
  }
  return handles;
}

describe('threads terminated inside releases nested deeper than the release records', () => {
  it(`nests ${LEVELS} deep put at seeded kill points until ${DEEP_KILLS} land in the window (at most ${MAX_KILLS} kills): every fence freed exactly once`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'release-depth-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 16 << 20 });
    const baseline = arena.stats().used;
    const cells = new Int32Array(new SharedArrayBuffer(CR_CELLS * 4));
    let delay = 500;
    let inside = 0;
    let deep = 0;
    let round = 0;
    for (; deep < DEEP_KILLS && round < MAX_KILLS; round++) {
      const nests = buildNests(arena);
      deepest = -1;
      const { at, done, errors } = await killRound(arena, 'release-depth-kill', { buffer: arena.buffer, shared: cells.buffer, nests, levels: LEVELS }, targets, cells, KILL_CELLS, rand(delay));
      expect(errors, `round ${round}`).toEqual([]);
      if (at > done) inside++;
      if (deepest >= FL.RELEASE_CAP) deep++;
      delay = adaptJitter(delay, done, NESTS);
      const where = `round ${round} (seed ${seed}, kill in put ${at}, ${done} done, nest level ${deepest} in flight)`;
      expect(arena.stats().live.fence ?? 0, `${where}: fences left`).toBe(0);
      expect(arena.stats().used, `${where}: bytes in use back to the baseline`).toBe(baseline);
      expectClean(arena);
    }
    console.log(`release-depth-kill (seed ${seed}): ${round} kills, ${inside} inside a put, ${deep} with a release ${FL.RELEASE_CAP} or more nests deep in flight`);
    expect(deep, 'kills in the window under test').toBeGreaterThanOrEqual(DEEP_KILLS);
  }, 300_000);
});

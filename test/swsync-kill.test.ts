/**
 * Kill windows inside sw_sync's inc() and close(): a worker increments and closes timelines whose
 * points carry callbacks of the main thread and of a live importer worker, and is terminated at a
 * seeded random point — before an inc, after the counter moved and before its points are
 * signaled, half-way through a point's callback list, between two points, inside the last close,
 * inside a point's release. After each kill and reap, read without polling (the flags, not
 * status(), which would signal a reached point itself): every point the counter reached is
 * signaled without error, every other one with -ENOENT (its owner died or closed it), every
 * callback ran exactly once (main's and the importer's), every timeline lock is free; at the end
 * nothing is pending in either thread, the importer exits by itself, every timeline is freed and
 * the arena is clean with its bytes in use back to the baseline.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, BlockType, Errno, Fence, SwTimeline, SyncFile, ledgerCompact, pendingCallbacks } from '../src/index.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';
import { FLAG_SIGNALED } from '../src/fence/layout.js';
import { TL_VALUE } from '../src/sync/layout.js';
import { SW_AT, SW_CELLS, SW_DONE, SW_GO } from './fixtures/swsync-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, TestWorker, until } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 60;
const TIMELINES = 3; // per round
const REACHED = 20; // points 1..REACHED, which the worker's incs reach…
const EXTRA = 30; // …and points past them, which only a close signals (-ENOENT): the closes get their share of the kills
const POINTS = REACHED + EXTRA;

const running: Worker[] = [];
const probes: TestWorker[] = [];
afterEach(async () => {
  await Promise.all([...running.splice(0), ...probes.splice(0).map((p) => p.worker)].map((w) => w.terminate()));
});

/** The worker's operations: each timeline's incs (seeded steps of 1–3 up to REACHED) round-robin, then its close. */
function plan(rand: (n: number) => number): [number, number][] {
  const steps: number[][] = [];
  for (let k = 0; k < TIMELINES; k++) {
    const s: number[] = [];
    for (let v = 0; v < REACHED; ) {
      const n = Math.min(1 + rand(3), REACHED - v);
      s.push(n);
      v += n;
    }
    steps.push(s);
  }
  const ops: [number, number][] = [];
  for (let i = 0; steps.some((s) => i < s.length); i++) for (let k = 0; k < TIMELINES; k++) if (i < steps[k].length) ops.push([k, steps[k][i]]);
  for (let k = 0; k < TIMELINES; k++) ops.push([k, 0]);
  return ops;
}

describe('sw_sync inc/close kill window', () => {
  it(`a timeline signaler terminated at random points (${KILLS} kills): reached points signaled, callbacks exactly once, locks free, no leak`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'swsync-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 16 << 20, maxFds: 256 });
    const perRound = TIMELINES * POINTS;
    const tally = new SharedArrayBuffer(KILLS * 2 * perRound * 4);
    const t = new Int32Array(tally);
    const importer = new TestWorker('callback-probe', { buffer: arena.buffer, tally });
    probes.push(importer);
    await importer.next('ready');
    arena.watch(importer.worker);
    const baseline = arena.stats().used;
    const mine: number[][] = [];
    const kept: Fence[] = [];
    let inside = 0;
    let inClose = 0;
    let midInc = 0;
    let delay = 300; // µs of jitter range, adapted so that kills land inside the run
    for (let round = 0; round < KILLS; round++) {
      const timelines = Array.from({ length: TIMELINES }, (_, k) => SwTimeline.create(arena, `kill-${round}-${k}`));
      const fences: Fence[] = [];
      for (const tl of timelines) {
        for (let v = 1; v <= POINTS; v++) {
          const fd = tl.createFence(v);
          fences.push(SyncFile.getFence(arena, fd)!);
          SyncFile.close(arena, fd);
        }
      }
      // Every fourth point has no callbacks (those are signaled in a row under one lock hold).
      const withCb = fences.filter((_, i) => i % 4 !== 3);
      const counts = new Array<number>(withCb.length).fill(0);
      mine.push(counts);
      withCb.forEach((f, i) => expect(f.addCallback(() => counts[i]++)).not.toBeNull());
      for (const f of withCb) f.get(); // the importer's references (it tracks them)
      const base = round * 2 * perRound;
      const added = await importer.ask({ type: 'add', handles: withCb.map((f) => f.handle), base }, 'added');
      expect((added.results as number[]).every((r) => r === 1)).toBe(true);
      const ops = plan(rand);
      const shared = new SharedArrayBuffer(SW_CELLS * 4);
      const s = new Int32Array(shared);
      // The worker's open references, shared: it receives them before 'ready'.
      const k = new KillTarget(arena, 'swsync-kill', { buffer: arena.buffer, shared, tokens: timelines.map((tl) => tl.share()), ops });
      running.push(k.worker);
      await k.ready;
      // The worker adopted them: its close (or its death) is the last.
      for (const tl of timelines) tl.close();
      await k.killDuringWork(s, SW_GO, SW_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      const at = s[SW_AT];
      const done = s[SW_DONE];
      if (at !== done) {
        inside++;
        if (ops[at - 1][1] === 0) inClose++;
        else midInc++;
      }
      delay = adaptJitter(delay, done, ops.length);
      // Every timeline lock free (the reaper released what the worker held).
      for (let k = 0; k < TIMELINES; k++) {
        expect(fences[k * POINTS].lock(5_000)).toBe(true);
        fences[k * POINTS].unlock();
      }
      // The counter as the worker left it: what it reached is signaled OK, the rest -ENOENT.
      for (let k = 0; k < TIMELINES; k++) {
        const tw = arena.resolve(timelines[k].handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
        const value = arena.i32[tw + TL_VALUE];
        const incs = ops.slice(0, done).filter(([j, n]) => j === k && n > 0).reduce((a, [, n]) => a + n, 0);
        const cut = at !== done && ops[at - 1][0] === k ? ops[at - 1][1] : 0;
        expect([incs, incs + cut], `round ${round} timeline ${k} (seed ${seed})`).toContain(value);
        for (let v = 1; v <= POINTS; v++) {
          const f = fences[k * POINTS + v - 1];
          expect(f.flags & FLAG_SIGNALED, `round ${round} timeline ${k} point ${v} (value ${value}, seed ${seed}): unsignaled`).toBe(FLAG_SIGNALED);
          expect(f.error, `round ${round} timeline ${k} point ${v} (value ${value}, seed ${seed})`).toBe(v <= value ? 0 : Errno.ENOENT);
        }
      }
      const roundOk = await until(() => counts.every((c) => c >= 1) && t.subarray(base, base + withCb.length).every((c) => c >= 1), 10_000);
      expect(roundOk, `round ${round} (seed ${seed}): callbacks missing`).toBe(true);
      kept.push(...fences);
    }
    // Late duplicates would show by now: exactly once, everywhere.
    await new Promise((r) => setTimeout(r, 20));
    for (const counts of mine) expect(counts.every((c) => c === 1)).toBe(true);
    for (let round = 0; round < KILLS; round++) expect(t.subarray(round * 2 * perRound, round * 2 * perRound + mine[round].length).every((c) => c === 1)).toBe(true);
    for (const f of kept) f.put();
    expect(pendingCallbacks()).toBe(0);
    const pend = await importer.ask({ type: 'pending' }, 'pending');
    expect(pend.callbacks).toBe(0);
    await importer.ask({ type: 'exit' }, 'bye');
    expect(await importer.exited()).toBe(0);
    console.log(`swsync-kill: ${KILLS} kills (seed ${seed}), ${inside} inside an operation (${midInc} in inc, ${inClose} in close), ${mine.reduce((a, c) => a + c.length, 0) * 2} callbacks`);
    expect(arena.stats().live.timeline ?? 0).toBe(0);
    // Our open references were closed and our shares received: our ledger holds nothing and is freed.
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 180_000);
});

/**
 * Kill windows of sw_sync timeline references held by a thread that is not the timeline's owner:
 * a worker takes and drops open references in a loop — get(), share() to itself and receive(),
 * close() — and is terminated at a seeded random point. Every reference it took is its ledger's
 * (or, shared and not received yet, its transit record's), so its reaper drops each exactly once.
 *
 * Even rounds, the main thread keeps its own reference: after the kill and reap the timeline holds
 * exactly that one open reference (none of the worker's left, none dropped twice), stays open, and
 * the main thread's inc signals its points. Odd rounds, the main thread closes its reference once
 * the worker holds one: the reaper's drop of the worker's last reference is the last close, so every
 * point ends -ENOENT and a waiter returns. Either way every callback runs exactly once, every block
 * is freed once the main thread has put its points, and `arena.check()` finds nothing.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, BlockType, Errno, SwTimeline, ledgerCompact } from '../src/index.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';
import { FLAG_SIGNALED } from '../src/fence/layout.js';
import { TL_FILE_REFS } from '../src/sync/layout.js';
import { SW_AT, SW_CELLS, SW_DONE, SW_GO } from './fixtures/swsync-kill-cells.js';
import { CLOSE, GET, RECEIVE, SHARE } from './fixtures/swsync-ref-ops.js';
import { seededInt } from './fixtures/seeded.js';
import { timelinePoint, until } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 60;
const STEPS = 300; // reference operations per round
const POINTS = 8; // the main thread's points, at 1..POINTS
const NAMES = ['get', 'share', 'receive', 'close'];

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

/** The worker's operations, random but valid: a RECEIVE has a token shared before it, a CLOSE a view. */
function plan(rand: (n: number) => number): number[] {
  const ops: number[] = [];
  let views = 0;
  let tokens = 0;
  while (ops.length < STEPS) {
    const op = rand(4);
    if (op === RECEIVE && tokens === 0) continue;
    if (op === CLOSE && views === 0) continue;
    ops.push(op);
    if (op === GET || op === RECEIVE) views++;
    if (op === SHARE || op === RECEIVE) tokens += op === SHARE ? 1 : -1;
    if (op === CLOSE) views--;
  }
  return ops;
}

describe('sw_sync timeline references of a non-owner', () => {
  it(`a thread taking and dropping references terminated at random points (${KILLS} kills): each dropped once, the timeline closes, nothing leaks`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'swsync-ref-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const baseline = arena.stats().used;
    const counts: number[][] = [];
    const inside = [0, 0, 0, 0];
    let delay = 100; // µs of jitter range, adapted so that kills land inside the run
    for (let round = 0; round < KILLS; round++) {
      const keep = round % 2 === 0;
      const tl = SwTimeline.create(arena, `ref-${round}`);
      const tw = arena.resolve(tl.handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
      const points = Array.from({ length: POINTS }, (_, i) => timelinePoint(arena, tl, i + 1));
      const c = new Array<number>(POINTS).fill(0);
      counts.push(c);
      points.forEach((f, i) => expect(f.addCallback(() => c[i]++)).not.toBeNull());
      const waiter = points[POINTS - 1].waitAsync(10_000);
      const ops = plan(rand);
      const s = new Int32Array(new SharedArrayBuffer(SW_CELLS * 4));
      const k = new KillTarget(arena, 'swsync-ref-kill', { buffer: arena.buffer, shared: s.buffer, token: tl.share(), ops });
      running.push(k.worker);
      await k.ready; // the worker holds its first reference from here
      if (!keep) tl.close(); // from here only the worker's references keep the timeline open
      await k.killDuringWork(s, SW_GO, SW_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      const at = s[SW_AT];
      const done = s[SW_DONE];
      if (at !== done) inside[ops[at - 1]]++;
      delay = adaptJitter(delay, done, ops.length);
      const where = `round ${round} (${keep ? 'main keeps its reference' : 'the worker held the last'}), op ${at}/${done} (seed ${seed})`;
      if (keep) {
        expect(arena.i32[tw + TL_FILE_REFS], `${where}: open references left`).toBe(1);
        expect(tl.pending, where).toBe(POINTS);
        tl.inc(POINTS);
      }
      for (const f of points) {
        expect(f.flags & FLAG_SIGNALED, `${where}: a point unsignaled`).toBe(FLAG_SIGNALED);
        expect(f.error, where).toBe(keep ? 0 : Errno.ENOENT);
      }
      expect(await waiter, `${where}: the waiter`).toBe(true);
      expect(await until(() => c.every((n) => n >= 1), 10_000), `${where}: callbacks missing`).toBe(true);
      if (keep) tl.close();
      for (const f of points) f.put();
      expect(arena.stats().live.timeline ?? 0, `${where}: the timeline was not freed`).toBe(0);
      const report = arena.check();
      expect(report.problems, where).toEqual([]);
      expect(report.leakedBytes, where).toBe(0);
    }
    // Late duplicates would show by now: exactly once.
    await new Promise((r) => setTimeout(r, 20));
    for (const c of counts) expect(c.every((n) => n === 1)).toBe(true);
    console.log(`swsync-ref-kill: ${KILLS} kills (seed ${seed}), inside ${inside.map((n, i) => `${NAMES[i]} ${n}`).join(', ')}`);
    // Our references were closed and our shares received: our ledger holds nothing and is freed.
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used).toBe(baseline);
    expect(arena.check().ok).toBe(true);
  }, 360_000); // ~55 s alone; ~3 min under two busy loops on 2 cores (a worker spawned per kill)
});

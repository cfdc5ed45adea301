/**
 * Kill window of close() from a view holding no reference (src/sync/timeline.ts close: the thread
 * takes an open reference of its own, closes the timeline under a timeline record, drops the
 * reference). A worker holding none closes a view of each of TIMELINES timelines whose points carry
 * the main thread's callbacks, and is terminated at a seeded random point. After each kill and reap:
 * every timeline the worker finished closing is closed, the one it was inside is closed or not,
 * the rest are open; a closed one has every point signaled -ENOENT, an open one none; and each
 * holds exactly the main thread's open reference (the worker's own was dropped once). The main
 * thread then closes its references: every point ends -ENOENT, every callback ran exactly once,
 * every timeline is freed, and the arena is clean with its bytes in use back to the baseline.
 */
import { describe, expect, it } from 'vitest';
import { Arena, BlockType, Errno, Fence, SwTimeline, SyncFile, ledgerCompact } from '../src/index.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';
import { FLAG_SIGNALED } from '../src/fence/layout.js';
import { TL_CLOSED, TL_FILE_REFS } from '../src/sync/layout.js';
import { SW_AT, SW_CELLS, SW_DONE, SW_GO } from './fixtures/swsync-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, until } from './support/core.js';
import { adaptJitter, killRound, killTargets } from './support/killloop.js';

const KILLS = 60;
const TIMELINES = 6; // per round, closed in order by the worker
const POINTS = 24; // per timeline, each with a callback of the main thread

const targets = killTargets();

describe('sw_sync close() from a view holding no reference: kill window', () => {
  it(`a thread closing other threads' timelines terminated at random points (${KILLS} kills): closed whole or not at all, no reference lost or leaked`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'swsync-viewclose-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20, maxFds: 64 });
    const baseline = arena.stats().used;
    const cells = new Int32Array(new SharedArrayBuffer(SW_CELLS * 4));
    const counts: number[][] = [];
    let inside = 0;
    let delay = 200; // µs of jitter range, adapted so that kills land inside the run
    for (let round = 0; round < KILLS; round++) {
      const timelines = Array.from({ length: TIMELINES }, (_, k) => SwTimeline.create(arena, `vc-${round}-${k}`));
      const points: Fence[][] = timelines.map((tl) =>
        Array.from({ length: POINTS }, (_, i) => {
          const fd = tl.createFence(i + 1);
          const f = SyncFile.getFence(arena, fd)!;
          SyncFile.close(arena, fd);
          return f;
        }),
      );
      const c = new Array<number>(TIMELINES * POINTS).fill(0);
      counts.push(c);
      points.forEach((ps, k) => ps.forEach((f, i) => expect(f.addCallback(() => c[k * POINTS + i]++)).not.toBeNull()));
      const r = await killRound(arena, 'swsync-viewclose-kill', { buffer: arena.buffer, shared: cells.buffer, handles: timelines.map((tl) => tl.handle) },
        targets, cells, { go: SW_GO, at: SW_AT, done: SW_DONE }, rand(delay));
      expect(r.errors).toEqual([]);
      if (r.at !== r.done) inside++;
      delay = adaptJitter(delay, r.done, TIMELINES);
      for (let k = 0; k < TIMELINES; k++) {
        const where = `round ${round} timeline ${k}, worker at ${r.at}/${r.done} (seed ${seed})`;
        const tw = arena.resolve(timelines[k].handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
        expect(arena.i32[tw + TL_FILE_REFS], `${where}: open references`).toBe(1);
        const closed = arena.i32[tw + TL_CLOSED] !== 0;
        if (k < r.done) expect(closed, `${where}: a finished close`).toBe(true);
        if (k >= r.at) expect(closed, `${where}: a close never started`).toBe(false);
        for (const f of points[k]) {
          expect(f.flags & FLAG_SIGNALED, `${where}: point ${f.seqno}`).toBe(closed ? FLAG_SIGNALED : 0);
          if (closed) expect(f.error, where).toBe(Errno.ENOENT);
        }
        timelines[k].close(); // main's reference: the last (closes what the worker did not)
      }
      // The worker's signals delivered our callbacks to our inbox: they run on our event loop.
      expect(await until(() => c.every((n) => n >= 1), 10_000), `round ${round} (seed ${seed}): callbacks missing`).toBe(true);
      for (const ps of points) for (const f of ps) {
        expect(f.error).toBe(Errno.ENOENT);
        f.put();
      }
      expect(arena.stats().live.timeline ?? 0, `round ${round}: a timeline was not freed`).toBe(0);
      const report = arena.check();
      expect(report.problems, `round ${round}`).toEqual([]);
      expect(report.leakedBytes, `round ${round}`).toBe(0);
    }
    await new Promise((res) => setTimeout(res, 20));
    for (const c of counts) expect(c.every((n) => n === 1)).toBe(true);
    console.log(`swsync-viewclose-kill: ${KILLS} kills (seed ${seed}), ${inside} inside a close`);
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 240_000);
});

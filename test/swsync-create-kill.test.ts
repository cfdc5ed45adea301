/**
 * Kill windows inside sw_sync's createFence(): a worker creates points on two timelines (new ones,
 * linked or signaled at once, and ones it reuses from the main thread's), closes their fds and
 * increments, and is terminated at a seeded random point — between a point's allocation and its
 * link, between the link and the fd's install, inside the install, before the creator's reference
 * is dropped. One timeline is the main thread's (the worker uses a view without a reference): it
 * stays open across the kill, and the main thread then creates and signals a later point on it.
 * The other is the worker's (it adopted signaling): its death closes it.
 *
 * After each kill and reap: every timeline lock is free; every point of the main thread ends —
 * reached ones signaled without error, the rest -ENOENT on the closed timeline, or signaled by the
 * main thread's later inc on the open one; nothing is left on the open timeline's list; every
 * callback ran exactly once; `arena.check()` finds no problem and, once the main thread has put
 * its points and closed its timeline, no leaked byte.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, BlockType, Errno, SwTimeline, ledgerCompact } from '../src/index.js';
import { BLOCK_HEADER_WORDS } from '../src/arena/layout.js';
import { FLAG_SIGNALED } from '../src/fence/layout.js';
import { TL_VALUE } from '../src/sync/layout.js';
import { SW_AT, SW_CELLS, SW_DONE, SW_GO } from './fixtures/swsync-kill-cells.js';
import { CLOSE, CREATE, CREATE_NAMED, INC } from './fixtures/swsync-create-ops.js';
import { seededInt } from './fixtures/seeded.js';
import { timelinePoint, until } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 60;
const UNITS = 150; // createFence + close pairs per round, with incs in between
const REACHED = 24; // the incs of a round take each timeline this far…
const MAIN_POINTS = 20; // …and the main thread's points sit at the even values 2..40: the worker's odd ones are new points
const LATER = 2 * MAIN_POINTS + 1; // the main thread's point created after the kill

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

/** The worker's operations: createFence/close pairs on a random timeline near its counter, an inc now and then. */
function plan(rand: (n: number) => number): [number, number, number][] {
  const vals = [0, 0];
  const ops: [number, number, number][] = [];
  for (let u = 0; u < UNITS; u++) {
    const k = rand(2);
    if (vals[k] < REACHED && rand(3) === 0) {
      ops.push([INC, k, 0]);
      vals[k]++;
    }
    // Values already reached (a point signaled at once), the next few (reused or new, linked).
    const v = Math.max(0, vals[k] + rand(8) - 2);
    ops.push([rand(3) === 0 ? CREATE_NAMED : CREATE, k, v]);
    ops.push([CLOSE, k, 0]);
  }
  return ops;
}

/** What timeline `k`'s counter may be after the first `done` ops ran whole and op `at` (if ≠ done) was cut. */
function expectedValues(ops: [number, number, number][], k: number, at: number, done: number): number[] {
  const incs = ops.slice(0, done).filter(([kind, j]) => kind === INC && j === k).length;
  const cut = at !== done && ops[at - 1][0] === INC && ops[at - 1][1] === k ? 1 : 0;
  return [incs, incs + cut];
}

describe('sw_sync createFence kill window', () => {
  it(`a point creator terminated at random points (${KILLS} kills): points end, callbacks exactly once, locks free, no leak`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'swsync-create-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 16 << 20, maxFds: 256 });
    const baseline = arena.stats().used;
    const leaky: string[] = [];
    let leaked = 0;
    const counts: number[][] = [];
    let inCreate = 0;
    let delay = 300; // µs of jitter range, adapted so that kills land inside the run
    for (let round = 0; round < KILLS; round++) {
      const tls = [SwTimeline.create(arena, `main-${round}`), SwTimeline.create(arena, `worker-${round}`)];
      const fences = tls.map((tl) => Array.from({ length: MAIN_POINTS }, (_, i) => timelinePoint(arena, tl, 2 * (i + 1))));
      const c = new Array<number>(2 * MAIN_POINTS + 1).fill(0);
      counts.push(c);
      fences.flat().forEach((f, i) => expect(f.addCallback(() => c[i]++)).not.toBeNull());
      const ops = plan(rand);
      const s = new Int32Array(new SharedArrayBuffer(SW_CELLS * 4));
      // The worker's open reference on tls[1], shared: it adopts signaling, so its death is the last close.
      const k = new KillTarget(arena, 'swsync-create-kill', { buffer: arena.buffer, shared: s.buffer, handle: tls[0].handle, token: tls[1].share(), ops });
      running.push(k.worker);
      await k.ready;
      tls[1].close();
      await k.killDuringWork(s, SW_GO, SW_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      const at = s[SW_AT];
      const done = s[SW_DONE];
      if (at !== done && ops[at - 1][0] !== CLOSE && ops[at - 1][0] !== INC) inCreate++;
      delay = adaptJitter(delay, done, ops.length);
      const where = `round ${round}, op ${at}/${done} (seed ${seed})`;
      // Every timeline lock free: the reaper released what the worker held.
      for (const f of [fences[0][0], fences[1][0]]) {
        expect(f.lock(5_000), where).toBe(true);
        f.unlock();
      }
      // The worker's timeline, closed by its death: reached points OK, the rest -ENOENT.
      const tw1 = arena.resolve(tls[1].handle, BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
      const v1 = arena.i32[tw1 + TL_VALUE];
      expect(expectedValues(ops, 1, at, done), where).toContain(v1);
      fences[1].forEach((f, i) => {
        expect(f.flags & FLAG_SIGNALED, `${where}: worker timeline point ${2 * (i + 1)} unsignaled`).toBe(FLAG_SIGNALED);
        expect(f.error, `${where}: worker timeline point ${2 * (i + 1)} (value ${v1})`).toBe(2 * (i + 1) <= v1 ? 0 : Errno.ENOENT);
      });
      // The main thread's timeline, still open: reached points OK, the rest waiting; a later point
      // and an inc past it signal them all and leave nothing on the list.
      const v0 = tls[0].value;
      expect(expectedValues(ops, 0, at, done), where).toContain(v0);
      fences[0].forEach((f, i) => expect(f.flags & FLAG_SIGNALED, `${where}: main timeline point ${2 * (i + 1)} (value ${v0})`).toBe(2 * (i + 1) <= v0 ? FLAG_SIGNALED : 0));
      const later = timelinePoint(arena, tls[0], LATER);
      expect(later.addCallback(() => c[2 * MAIN_POINTS]++)).not.toBeNull();
      tls[0].inc(LATER - v0);
      for (const f of [...fences[0], later]) {
        expect(f.flags & FLAG_SIGNALED, `${where}: main timeline point after the inc`).toBe(FLAG_SIGNALED);
        expect(f.error, where).toBe(0);
      }
      expect(tls[0].pending, where).toBe(0);
      expect(await until(() => c.every((n) => n >= 1), 10_000), `${where}: callbacks missing`).toBe(true);
      tls[0].close();
      for (const f of [...fences.flat(), later]) f.put();
      const report = arena.check();
      expect(report.problems, where).toEqual([]);
      expect(report.ok, where).toBe(true);
      // What leaked stays: a round is counted by what it added.
      if (report.leakedBytes !== leaked) leaky.push(`${where}: ${report.leakedBytes - leaked} bytes`);
      leaked = report.leakedBytes;
    }
    // Late duplicates would show by now: exactly once.
    await new Promise((r) => setTimeout(r, 20));
    expect(leaky, `${leaky.length} of ${KILLS} rounds leaked`).toEqual([]);
    for (const c of counts) expect(c.every((n) => n === 1)).toBe(true);
    console.log(`swsync-create-kill: ${KILLS} kills (seed ${seed}), ${inCreate} inside createFence`);
    expect(arena.stats().live.timeline ?? 0).toBe(0);
    // Our open references were closed and our shares received: our ledger holds nothing and is freed.
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used).toBe(baseline);
  }, 180_000);
});

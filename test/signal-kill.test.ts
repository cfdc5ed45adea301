/**
 * Kill windows inside signal(): a worker signals fences that carry callbacks of the main thread
 * and of a live importer worker, and is terminated at a seeded random point — before a signal,
 * between the flag and the detach, half-way through dispatching the callback list, between a
 * push and its doorbell. After each kill and reap: every fence the worker signaled has had its
 * callbacks delivered, the rest are signaled by the main thread, and then every callback has run
 * exactly once (main's and the importer's); every fence lock is free; at the end nothing is
 * pending in either thread, the importer exits by itself, and the arena is clean with its bytes
 * in use back to the baseline.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, pendingCallbacks, SpinLock } from '../src/index.js';
import { SK_AT, SK_CELLS, SK_DONE, SK_GO } from './fixtures/signal-kill-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, TestWorker, until } from './support/core.js';
import { adaptJitter, KillTarget } from './support/killloop.js';

const KILLS = 50;
const FENCES = 120; // per round
const PARK_EVERY = 5;

const running: Worker[] = [];
const probes: TestWorker[] = [];
afterEach(async () => {
  await Promise.all([...running.splice(0), ...probes.splice(0).map((p) => p.worker)].map((w) => w.terminate()));
});

describe('signal() kill window', () => {
  it(`a signaler terminated at random points (${KILLS} kills): callbacks exactly once, locks free, no leak`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'signal-kill-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const tally = new SharedArrayBuffer(KILLS * 2 * FENCES * 4);
    const t = new Int32Array(tally);
    const importer = new TestWorker('callback-probe', { buffer: arena.buffer, tally });
    probes.push(importer);
    await importer.next('ready');
    arena.watch(importer.worker);
    const baseline = arena.stats().used;
    const mine: number[][] = [];
    let inside = 0;
    let midBatch = 0;
    let delay = 300; // µs of jitter range, adapted so that kills land inside the batch
    for (let round = 0; round < KILLS; round++) {
      const ctx = Fence.contextAlloc(arena);
      const fences = Array.from({ length: FENCES }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
      const counts = new Array<number>(FENCES).fill(0);
      mine.push(counts);
      fences.forEach((f, i) => f.addCallback(() => counts[i]++));
      for (const f of fences) f.get(); // the importer's references (it tracks them)
      const base = round * 2 * FENCES;
      await importer.ask({ type: 'add', handles: fences.map((f) => f.handle), base }, 'added');
      const shared = new SharedArrayBuffer(SK_CELLS * 4);
      const s = new Int32Array(shared);
      const k = new KillTarget(arena, 'signal-kill', { buffer: arena.buffer, shared, handles: fences.map((f) => f.handle) });
      running.push(k.worker);
      await k.ready;
      // Wait (bounded) until it is signaling, then a seeded jitter, then the kill.
      await k.killDuringWork(s, SK_GO, SK_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      const at = s[SK_AT];
      const done = s[SK_DONE];
      if (at !== done) inside++;
      if (done > 0 && done < FENCES) midBatch++;
      delay = adaptJitter(delay, done, FENCES);
      // Every lock free (the reaper released what the worker held).
      for (const f of fences) {
        expect(f.lock(5_000)).toBe(true);
        f.unlock();
      }
      // What the worker did not get to, the main thread signals.
      for (const f of fences) f.signal();
      const roundOk = await until(() => counts.every((c) => c >= 1) && t.subarray(base, base + FENCES).every((c) => c >= 1));
      expect(roundOk, `round ${round} (seed ${seed}): callbacks missing`).toBe(true);
      for (const f of fences) f.put();
    }
    // Late duplicates would show by now: exactly once, everywhere.
    await new Promise((r) => setTimeout(r, 20));
    for (const counts of mine) expect(counts.every((c) => c === 1)).toBe(true);
    for (let round = 0; round < KILLS; round++) expect(t.subarray(round * 2 * FENCES, round * 2 * FENCES + FENCES).every((c) => c === 1)).toBe(true);
    expect(pendingCallbacks()).toBe(0);
    const pend = await importer.ask({ type: 'pending' }, 'pending');
    expect(pend.callbacks).toBe(0);
    await importer.ask({ type: 'exit' }, 'bye');
    expect(await importer.exited()).toBe(0);
    console.log(`signal-kill: ${KILLS} kills (seed ${seed}), ${inside} inside signal(), ${midBatch} mid-batch, ${KILLS * FENCES * 2} callbacks`);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 300_000); // 50 worker boots and kills: 43 s with two busy loops on both cores

  // The state that kill leaves, made exactly (a random kill lands there in about one of a few
  // hundred): with an inline lock the reaper found the fence by its lock; with a borrowed one it
  // did not, and the fence stayed unsignaled for good.
  for (const borrowed of [false, true]) {
    it(`a signaler cut off at the SIGNALED flag's Atomics.or (${borrowed ? 'borrowed' : 'inline'} lock): its reaper signals the fence -EOWNERDEAD`, async () => {
      const arena = Arena.create({ bytes: 1 << 20 });
      const lock = borrowed ? SpinLock.create(arena) : undefined;
      const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock });
      const k = new KillTarget(arena, 'signal-cut', { buffer: arena.buffer, handle: f.handle });
      running.push(k.worker);
      await k.ready;
      await k.kill(0);
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      expect(f.testSignaledFlag()).toBe(true);
      expect(f.error).toBe(Errno.EOWNERDEAD);
      expect(f.lock(5_000)).toBe(true); // released by the reaper
      f.unlock();
      f.put();
      lock?.free();
      expectClean(arena);
    });
  }

  // The signal writes the timestamp over the signaler words before its Atomics.or sets SIGNALED,
  // and a terminate() lands at that Atomics call: the fence is left unsignaled, naming nobody. With
  // an inline lock the reaper finds it by the lock it held; with a borrowed (robust-listed) lock it
  // did not, and such a fence stayed unsignaled for good (see the test above: random kills rarely land
  // there, so this one guards the rest of the window). Every PARK_EVERY-th round parks the worker
  // before a seeded fence and kills it there, so that some kills land inside the batch by
  // construction (under two busy loops all 50 seeded kills once came after the last signal).
  it(`the responsible signaler of fences with a borrowed lock terminated at random points (${KILLS} kills): the reaper signals every fence it left`, async () => {
    const seed = process.env.FENCELAB_SEED ?? 'signal-kill-borrowed-1';
    const rand = seededInt(seed);
    const arena = Arena.create({ bytes: 8 << 20 });
    const baseline = arena.stats().used;
    let delay = 300;
    let orphaned = 0;
    for (let round = 0; round < KILLS; round++) {
      const lock = SpinLock.create(arena);
      const ctx = Fence.contextAlloc(arena);
      const fences = Array.from({ length: FENCES }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1, lock }));
      const shared = new SharedArrayBuffer((SK_CELLS + 1) * 4);
      const s = new Int32Array(shared);
      const park = round % PARK_EVERY === PARK_EVERY - 1 ? { at: 1 + rand(FENCES - 1), cell: SK_CELLS } : undefined;
      const k = new KillTarget(arena, 'signal-kill', { buffer: arena.buffer, shared, handles: fences.map((f) => f.handle), adopt: true, park });
      running.push(k.worker);
      await k.ready;
      if (park) await k.killParked(s, SK_GO, park.cell);
      else await k.killDuringWork(s, SK_GO, SK_AT, rand(delay));
      running.splice(running.indexOf(k.worker), 1);
      expect(k.errors).toEqual([]);
      if (park) expect(fences.slice(park.at).every((f) => f.error === Errno.EOWNERDEAD), `round ${round}: parked before fence ${park.at}`).toBe(true);
      else delay = adaptJitter(delay, s[SK_DONE], FENCES);
      // Nobody else signals them: the worker did, or its reaper (-EOWNERDEAD), every one.
      const left = fences.flatMap((f, i) => (f.testSignaledFlag() ? [] : [i]));
      expect(left, `round ${round} (seed ${seed}): fences left unsignaled (the kill at ${s[SK_AT]})`).toEqual([]);
      for (const f of fences) expect([0, Errno.EOWNERDEAD]).toContain(f.error);
      orphaned += fences.filter((f) => f.error === Errno.EOWNERDEAD).length;
      for (const f of fences) f.put();
      lock.free();
    }
    console.log(`signal-kill borrowed (seed ${seed}): ${KILLS} kills, ${orphaned} fences signaled by the reaper`);
    expect(orphaned).toBeGreaterThan(0); // the kills landed inside the batch
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 300_000);
});

/**
 * Locks under kills: lanes of real workers hammer one lock (lock(), lock(short timeout), tryLock())
 * and the test terminates one of them at a random point — waiting, taking a ticket, at its turn,
 * holding, releasing — then lets the watch reap it. After every kill and reap: the main thread
 * takes the lock within a bounded wait, the shared counter equals the critical sections the lanes
 * completed (exactly: the fixture writes both in one run that terminate() cannot split), nobody
 * is marked inside, the main thread's held-lock count is exact and `arena.check()` is clean.
 * At the end no lane ever met another inside, and the lock is free.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Fence, SpinLock, type LockKind } from '../src/index.js';
import * as K from '../src/locks/layout.js';
import { heldLockCount } from '../src/locks/lockword.js';
import { CELLS, COUNTER, DONE, GO, IN, MAX_LANES, PAUSE, ROUNDS, STOP, VIOLATIONS } from './fixtures/lock-kill-cells.js';
import { seededInt, testSeed } from './fixtures/seeded.js';
import { expectClean, fixture } from './support/core.js';

const LANES = 3;
/** Replacement lanes booted together (in parallel, while the lanes pause). */
const BATCH = 4;

const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

/** What the lock looks like to the main thread. */
interface Target {
  data: { ref?: number; fence?: number };
  lock(timeoutMs: number): boolean;
  unlock(): void;
  word(): number;
  /** Frees what the target allocated. */
  dispose(): void;
}

function spinLockTarget(arena: Arena, kind: LockKind): Target {
  const l = SpinLock.create(arena, kind);
  return { data: { ref: l.ref }, lock: (t) => l.lock(t), unlock: () => l.unlock(), word: () => Atomics.load(arena.i32, l.index), dispose: () => l.free() };
}

function fenceTarget(arena: Arena, lender?: SpinLock): Target {
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock: lender });
  return {
    data: { fence: f.handle }, lock: (t) => f.lock(t), unlock: () => f.unlock(), word: () => Atomics.load(arena.i32, f.lockWordIndex),
    dispose: () => {
      f.put();
      lender?.free();
    },
  };
}

function isFree(word: number, ticket: boolean): boolean {
  if ((word & K.LOCK_OWNER_MASK) !== 0) return false;
  if (!ticket) return true;
  return ((word >>> K.LOCK_TICKET_NEXT_SHIFT) & K.LOCK_TICKET_MASK) === ((word >>> K.LOCK_TICKET_SERVING_SHIFT) & K.LOCK_TICKET_MASK);
}

/** Runs LANES lanes on `target` and kills one at random `kills` times, checking after each reap. */
async function killRun(arena: Arena, target: Target, ticket: boolean, kills: number, seed: string): Promise<void> {
  const shared = new SharedArrayBuffer(CELLS * 4);
  const s = new Int32Array(shared);
  const rand = seededInt(seed);
  const errors: string[] = [];
  const lanes: Worker[] = [];
  const runs = new Int32Array(MAX_LANES); // DONE of the lane when its current worker started
  let generation = 0;

  /** A worker for `lane`; with `gated`, it waits for GO + lane to hold its generation. */
  const spawn = (lane: number, gated: boolean): { w: Worker; gate: number } => {
    const gate = ++generation;
    const w = new Worker(fixture('lock-kill'), {
      workerData: { buffer: arena.buffer, shared, lane, lanes: LANES, seed: `${seed}:${gate}`, gate: gated ? gate : undefined, ...target.data },
    });
    w.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'error') errors.push(String(m.message));
    });
    w.on('error', (e) => errors.push(String(e)));
    // Before the watch's reap (listeners run in order): clear the lane's inside mark — only a
    // holder can have one, and nobody enters before its reap.
    w.once('exit', () => {
      if (lanes[lane] === w) Atomics.store(s, IN + lane, 0);
    });
    arena.watch(w);
    running.push(w);
    return { w, gate };
  };
  const ready = (w: Worker): Promise<void> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('a replacement lane did not boot')), 60_000);
      const on = (m: { type: string }) => {
        if (m.type !== 'ready') return;
        clearTimeout(t);
        w.off('message', on);
        resolve();
      };
      w.on('message', on);
    });
  for (let lane = 0; lane < LANES; lane++) lanes[lane] = spawn(lane, false).w;

  const sumDone = (): number => {
    let n = 0;
    for (let lane = 0; lane < LANES; lane++) n += s[DONE + lane];
    return n;
  };

  for (let k = 0; k < kills; ) {
    // Replacements boot first, a batch at a time with the lanes paused (a boot next to lanes
    // spinning on both cores takes up to a second); then each victim runs a random number of
    // rounds and dies, and its replacement starts in its lane.
    const batch = Array.from({ length: Math.min(BATCH, kills - k) }, () => rand(LANES)).map((lane) => ({ lane, ...spawn(lane, true) }));
    Atomics.store(s, PAUSE, 1);
    await Promise.all(batch.map((b) => ready(b.w)));
    Atomics.store(s, PAUSE, 0);
    Atomics.notify(s, PAUSE);
    for (const next of batch) {
      const lane = next.lane;
      const victim = lanes[lane];
      const goal = runs[lane] + 1 + rand(60);
      const until = Date.now() + 60_000;
      while (Atomics.load(s, DONE + lane) < goal && Date.now() < until) await new Promise((r) => setTimeout(r, rand(2)));
      expect(errors).toEqual([]);
      expect(Atomics.load(s, DONE + lane), `lane ${lane} made no progress before kill ${k}`).toBeGreaterThanOrEqual(goal);
      const gone = new Promise((r) => victim.once('exit', r));
      await victim.terminate();
      await gone; // the watch has reaped it
      running.splice(running.indexOf(victim), 1);

      expect(target.lock(60_000), `kill ${k}: the lock is not acquirable after the reap (word 0x${(target.word() >>> 0).toString(16)})`).toBe(true);
      expect(heldLockCount(arena)).toBe(1);
      expect(s[COUNTER]).toBe(sumDone());
      for (let l = 0; l < LANES; l++) expect(Atomics.load(s, IN + l)).toBe(0);
      target.unlock();
      expect(heldLockCount(arena)).toBe(0);
      expect(arena.check().problems).toEqual([]);
      lanes[lane] = next.w;
      runs[lane] = s[DONE + lane];
      Atomics.store(s, GO + lane, next.gate);
      Atomics.notify(s, GO + lane);
      k++;
    }
  }

  Atomics.store(s, STOP, 1);
  const stopped = lanes.map(
    (w) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('a lane did not stop')), 60_000);
        w.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      }),
  );
  await Promise.all(stopped);
  running.splice(0);
  expect(errors).toEqual([]);
  expect(Atomics.load(s, VIOLATIONS)).toBe(0);
  expect(s[COUNTER]).toBe(sumDone());
  expect(Atomics.load(s, ROUNDS)).toBeGreaterThan(0);
  expect(isFree(target.word(), ticket), `word 0x${(target.word() >>> 0).toString(16)} is not free`).toBe(true);
  expect(target.lock(0)).toBe(true);
  target.unlock();
  expect(heldLockCount(arena)).toBe(0);
}

/** Kills per lock kind: the ticket kind has the most ways to be left half taken. */
const KILLS: Record<LockKind, number> = { tas: 50, ttas: 50, ticket: 60, futex: 50 };

describe.each(K.LOCK_KINDS.map((k) => [k]))('a %s SpinLock whose holders and waiters are killed at random points', (kind: LockKind) => {
  it(`${KILLS[kind]} kills: after each reap the lock is acquirable, the counts are exact, the arena is clean`, { timeout: 180_000 }, async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 16, maxFds: 16 });
    const target = spinLockTarget(arena, kind);
    await killRun(arena, target, kind === 'ticket', KILLS[kind], testSeed(`spin-${kind}`));
    target.dispose();
    expectClean(arena);
  });
});

describe.each([
  ['ticket', 'inline', 50],
  ['ticket', 'borrowed', 50],
  ['futex', 'inline', 25],
] as [LockKind, 'inline' | 'borrowed', number][])('the fence lock of a %s arena (%s), its holders and waiters killed at random points', (kind, mode, kills) => {
  it(`${kills} kills: acquirable after each reap, counts exact, arena clean`, { timeout: 180_000 }, async () => {
    const arena = Arena.create({ bytes: 1 << 20, maxThreads: 16, maxFds: 16, lockKind: kind });
    const target = fenceTarget(arena, mode === 'borrowed' ? SpinLock.create(arena, kind) : undefined);
    await killRun(arena, target, kind === 'ticket', kills, testSeed(`fence-${mode}-${kind}`));
    target.dispose();
    expectClean(arena);
  });
});

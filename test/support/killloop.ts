/**
 * The kill-loop harness of the kill-window tests (signal-kill, swsync-kill, defer-kill, the
 * container and deep-signal kill tests): a fixture worker that the arena watches, started through
 * a GO cell, terminated at a seeded point of its work (killRound: one such round), and the
 * adaptive jitter that keeps those points inside the work.
 *
 * Protocol of a kill-loop fixture: it posts { type: 'ready', … } once set up, then waits for
 * cells[go] = 1; it stores a non-zero step number in cells[at] when it starts a step and in
 * cells[done] when it finished one; anything unexpected it posts as { type: 'error', message }.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, expect } from 'vitest';
import { Arena, drain, type Fence, setAutoDispatch, stopDispatcher } from '../../src/index.js';
import { seededInt } from '../fixtures/seeded.js';
import { expectClean, fixture, spin } from './core.js';

/** A message of a kill-loop fixture. */
export interface KillMsg {
  type: string;
  message?: string;
  [k: string]: unknown;
}

/**
 * The kill targets of a test file: each test's are terminated after it, so that a failing test's
 * workers cannot outlive it. Push a target while it lives (killRound does).
 */
export function killTargets(): KillTarget[] {
  const targets: KillTarget[] = [];
  afterEach(async () => {
    await Promise.all(targets.splice(0).map((k) => k.worker.terminate()));
  });
  return targets;
}

/**
 * A fixture worker under test: watched by `arena` (so its death is reaped), its 'ready' message,
 * its reported errors and its 'exit' listened for from the start (an event is never awaited after
 * it may have fired).
 */
export class KillTarget {
  readonly worker: Worker;
  /** What the fixture reported as { type: 'error' } (a kill test expects none). */
  readonly errors: string[] = [];
  /** The fixture's 'ready' message (rejects on a worker error). */
  readonly ready: Promise<KillMsg>;
  private readonly exited: Promise<void>;

  constructor(arena: Arena, name: string, workerData: unknown) {
    const w = new Worker(fixture(name), { workerData });
    this.worker = w;
    this.ready = new Promise<KillMsg>((resolve, reject) => {
      w.on('message', (m: KillMsg) => {
        if (m.type === 'ready') resolve(m);
        if (m.type === 'error') this.errors.push(String(m.message));
      });
      w.on('error', reject);
    });
    this.exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    arena.watch(w);
  }

  /** Sets cells[go] (and wakes the fixture waiting on it). */
  go(cells: Int32Array, go: number): void {
    Atomics.store(cells, go, 1);
    Atomics.notify(cells, go);
  }

  /** Busy-waits (bounded: 10 s) until the fixture started its first step (cells[at] ≠ 0). */
  awaitWork(cells: Int32Array, at: number): void {
    const start = Date.now();
    while (Atomics.load(cells, at) === 0 && Date.now() - start < 10_000);
  }

  /**
   * One round's kill: sets cells[go], waits until the fixture started working (cells[at]), and
   * after `jitterUs` terminates it; resolves once it exited (and so was reaped).
   */
  async killDuringWork(cells: Int32Array, go: number, at: number, jitterUs: number): Promise<void> {
    this.go(cells, go);
    this.awaitWork(cells, at);
    await this.kill(jitterUs);
  }

  /**
   * Sets cells[go], waits (bounded: 10 s) until the fixture parked (cells[parked] = 1, see
   * parkUntilKilled in test/fixtures/killsteps.ts), and terminates it there; resolves once it
   * exited (and so was reaped). Fails the test when it did not park.
   */
  async killParked(cells: Int32Array, go: number, parked: number): Promise<void> {
    this.go(cells, go);
    const start = Date.now();
    while (Atomics.load(cells, parked) === 0 && this.errors.length === 0 && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 1));
    expect(Atomics.load(cells, parked), `the fixture parked within 10 s (errors: ${this.errors.join('; ')}; cells ${cells.join(',')})`).toBe(1);
    await this.kill(0);
  }

  /** After `jitterUs` of busy-waiting, terminates the worker; resolves once its 'exit' (and so its reap) happened. */
  async kill(jitterUs: number): Promise<void> {
    spin(jitterUs);
    await this.worker.terminate();
    await this.exited;
  }
}

/** How many times its planned kills a kill loop may run to land enough of them in its window. */
export const KILL_ROUNDS_FACTOR = 4;

/**
 * Whether a kill loop goes on after `round` rounds (one kill each): always for its planned `kills`,
 * then while the kills that landed in the window under test are not `enough` yet, up to
 * KILL_ROUNDS_FACTOR × `kills` rounds. Where a kill lands is up to the scheduler: a loaded machine
 * lands fewer per round and so kills more, instead of failing on a count it did not choose.
 */
export function moreKills(round: number, enough: boolean, kills: number): boolean {
  return round < kills || (!enough && round < KILL_ROUNDS_FACTOR * kills);
}

/**
 * The next jitter bound (µs) of an adaptive kill loop: halved (≥ 10) when the last kill came after
 * the work was all done, doubled (≤ 5,000) when it came before any step finished, so that on a
 * fast or a loaded machine the kills land inside the work.
 */
export function adaptJitter(delay: number, done: number, total: number): number {
  if (done >= total) return Math.max(10, delay >> 1);
  if (done === 0) return Math.min(5000, delay * 2);
  return delay;
}

/**
 * One round of an adaptive kill loop on a started fixture whose cells are [GO, AT, DONE] (the
 * protocol above, at 0, 1, 2): sets GO, waits for its first step, terminates it `delayUs` later and
 * resumes after its reap. Returns whether the kill landed inside a step, and the next jitter bound
 * (see adaptJitter) from `jitter` and the fixture's `total` steps.
 */
export async function killInStep(k: KillTarget, cells: Int32Array, delayUs: number, jitter: number, total: number): Promise<{ inside: boolean; jitter: number }> {
  k.go(cells, 0);
  k.awaitWork(cells, 1);
  await k.kill(delayUs);
  expect(k.errors).toEqual([]);
  const done = Atomics.load(cells, 2);
  return { inside: Atomics.load(cells, 1) > done, jitter: adaptJitter(jitter, done, total) };
}

/** Where one round's kill landed: the fixture's last started and last finished step, and what it reported. */
export interface KillRound {
  at: number;
  done: number;
  errors: string[];
}

/**
 * One round of a kill loop: starts fixture `name` with `workerData` (listed in `targets` while it
 * lives, so a failing test's cleanup terminates it), clears `cells`, and once it is ready kills it
 * `jitterUs` after its first step (cells[go], cells[at], cells[done] as in the protocol above) —
 * or, given `parked`, where the fixture parked (KillTarget.killParked; `jitterUs` unused).
 * Resolves after its exit, so after its reap.
 */
export async function killRound(
  arena: Arena, name: string, workerData: unknown, targets: KillTarget[],
  cells: Int32Array, idx: { go: number; at: number; done: number }, jitterUs: number, parked?: number,
): Promise<KillRound> {
  const k = new KillTarget(arena, name, workerData);
  targets.push(k);
  for (let c = 0; c < cells.length; c++) Atomics.store(cells, c, 0);
  await k.ready;
  if (parked === undefined) await k.killDuringWork(cells, idx.go, idx.at, jitterUs);
  else await k.killParked(cells, idx.go, parked);
  targets.splice(targets.indexOf(k), 1);
  return { at: Atomics.load(cells, idx.at), done: Atomics.load(cells, idx.done), errors: k.errors };
}

/** The shared state of a signal-family kill test (see {@link signalKillSetup}). */
export interface SignalKillSetup {
  seed: string;
  rand: (n: number) => number;
  arena: Arena;
  /** Bytes in use before the first round: every round ends back at it. */
  baseline: number;
  cells: Int32Array;
}

/**
 * The setup of a kill test: seeded (FENCELAB_SEED, else `defaultSeed`), an arena of `bytes`
 * (`prepare` runs on it before the baseline is read), its bytes in use, and `cellCount` shared cells.
 */
export function killSetup(defaultSeed: string, cellCount: number, bytes = 8 << 20, prepare?: (arena: Arena) => void): SignalKillSetup {
  const seed = process.env.FENCELAB_SEED ?? defaultSeed;
  const arena = Arena.create({ bytes });
  prepare?.(arena);
  return { seed, rand: seededInt(seed), arena, baseline: arena.stats().used, cells: new Int32Array(new SharedArrayBuffer(cellCount * 4)) };
}

/**
 * The setup of the signal-family kill tests: {@link killSetup} with no dispatcher — this thread
 * drains its inbox itself once a round's worker is reaped: a dispatcher may run a delivered
 * callback between the kill and the 'exit' that reaps the worker, and block there for good on a
 * lock the dead worker held, which only that reap releases. The test's afterEach turns
 * auto-dispatch back on.
 */
export function signalKillSetup(defaultSeed: string, cellCount: number): SignalKillSetup {
  return killSetup(defaultSeed, cellCount, 8 << 20, (arena) => {
    setAutoDispatch(false);
    stopDispatcher(arena);
  });
}

/**
 * The end of a container kill round: the leaves the worker did not signal, the test signals (each
 * container's count then reaches its end here or was finished by the reaper, so every container's
 * flag is up at once, without a poll); bounded waits on the containers end; the test's callbacks the
 * worker or its reaper queued to this thread run; after the puts each callback ran once and the
 * arena is clean with its bytes in use back to `baseline`. `where` names the round in failures.
 */
export async function settleContainerRound(
  arena: Arena, leaves: Fence[], containers: Fence[], counts: number[], baseline: number, where: string, waitMs: number,
): Promise<void> {
  for (const f of leaves) if (!f.testSignaledFlag()) f.signal();
  const unsignaled = containers.flatMap((c, i) => (c.testSignaledFlag() ? [] : [i]));
  expect(unsignaled, `${where}: containers left unsignaled`).toEqual([]);
  for (const c of containers) expect(await c.waitAsync(waitMs), `${where}: a bounded wait ended`).toBe(true);
  drain(arena);
  for (const f of [...containers, ...leaves]) f.put();
  expect(counts.flatMap((c, i) => (c === 1 ? [] : [`#${i}: ${c}`])), `${where}: each callback once`).toEqual([]);
  expect(arena.stats().used, `${where}: bytes in use back to the baseline`).toBe(baseline);
  expectClean(arena);
}

/**
 * What the exporter and importer workers share: their options, the thread's context (arena,
 * board, seeded PRNG), watched critical sections, and the start/finish protocol with the parent.
 *
 * Messages to the parent: { type: 'ready', slot } once attached; { type: 'error', message } for an
 * unexpected exception (counted in C.ERRORS); { type: 'undetached', message } when the worker
 * could not leave the arena (it still lists a lock word it took through a stale fence: its reaper
 * releases it); then { type: 'done', latencies, uafReports }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import { Arena, FenceError, UseAfterFreeError, type LockMode, type UseAfterFreeReport } from '../src/index.js';
import { C, boardOf, bump, guardEnter, guardExit, type Board } from './board.js';

export type Role = 'exporter' | 'importer';
export type WaitMode = 'sync' | 'async' | 'mixed';

/** Options of an engine worker (the parent gives every worker the same, with per-worker overrides). */
export interface EngineOptions {
  /** Lock mode of the driver an exporter creates (a driver given by handle has its own). */
  lockMode: LockMode;
  /** Handle of the driver an exporter runs; 0: it creates its own (destroyed with it, or by its reaper). */
  driver: number;
  /** Operations an exporter runs; 0 = until the board says stop. */
  ops: number;
  /** Operations an exporter submits and hands off ahead of their execution (≥ 1). */
  depth: number;
  /** Simulated work per operation (µs), varied by ±jitter (a share of it). */
  workUs: number;
  jitter: number;
  /** Time spent inside each critical section (µs, jittered). */
  csUs: number;
  /** Share of its operations an exporter cancels itself (the ioctl in its own context). */
  cancelRate: number;
  /** An exporter adds its own callback to each out-fence (EX_CB_RAN; C.DOUBLE_SIGNALS if one runs twice). */
  exporterCallbacks: boolean;
  /** Published fences not yet handed back, across exporters (1–256). */
  maxInflight: number;
  /**
   * An exporter executes an operation only once an importer took its fence (or after
   * waitTimeoutMs): importers' commands then meet operations before they run, however late the
   * importers are scheduled. It does not wait once an importer took a later fence of its own
   * (that importer may be waiting for it).
   */
  awaitTake: boolean;
  /** Share of fences an importer adds a callback to, and of those the share it removes again. */
  callbackRate: number;
  removeRate: number;
  /** Share of fences whose operation an importer cancels or deletes (in place, or through the driver's ring). */
  commandRate: number;
  /**
   * Where importers' commands run: 'either' (at random: in the importer's own thread, the ioctl in
   * the caller's context, or posted to the driver's ring for its exporter) or 'ring' only — for
   * runs that kill importers: a thread terminated inside signal() can lose the callbacks it was
   * delivering (a known gap), and an in-place command makes the importer the signaler.
   */
  commandVia: 'either' | 'ring';
  /** An importer holds each fence up to this long (ms, random) before it waits for it. */
  holdMaxMs: number;
  waitMode: WaitMode;
  waitTimeoutMs: number;
  lockTimeoutMs: number;
}

/** workerData of an engine worker. */
export interface EngineWorkerData extends EngineOptions {
  role: Role;
  /** Worker index on the board (1..MAX_WORKERS-1; 0 is the parent). */
  index: number;
  arena: SharedArrayBuffer;
  board: SharedArrayBuffer;
  guard: SharedArrayBuffer;
  seed: string;
}

export const ENGINE_DEFAULTS: EngineOptions = {
  lockMode: 'inline',
  driver: 0,
  ops: 0,
  depth: 1,
  workUs: 0,
  jitter: 0,
  csUs: 0,
  cancelRate: 0,
  exporterCallbacks: false,
  maxInflight: 256,
  awaitTake: false,
  callbackRate: 0,
  removeRate: 0.3,
  commandRate: 0,
  commandVia: 'either',
  holdMaxMs: 0,
  waitMode: 'sync',
  waitTimeoutMs: 5000,
  lockTimeoutMs: 1000,
};

/** Use-after-free reports a worker sends back (the first ones). */
const MAX_REPORTS = 16;

export function spinMicros(us: number): void {
  if (us <= 0) return;
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

const napWord = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for `ms` (a worker that does not return to its event loop). */
export function sleepMs(ms: number): void {
  if (ms > 0) Atomics.wait(napWord, 0, 0, ms);
}

/** This worker's context. */
export class EngineThread {
  readonly cfg: EngineWorkerData;
  readonly arena: Arena;
  readonly board: Board;
  readonly index: number;
  readonly rng: () => number;
  /** Stale accesses the sanitizer stopped (sanitize: true) in this thread. */
  readonly uafReports: UseAfterFreeReport[] = [];
  readonly latencies: number[] = [];

  constructor() {
    this.cfg = workerData as EngineWorkerData;
    this.arena = Arena.attach(this.cfg.arena);
    this.board = boardOf(this.cfg.board, this.cfg.guard);
    this.index = this.cfg.index;
    this.rng = seedrandom(`${this.cfg.seed}:${this.cfg.role}:${this.index}`);
  }

  stopping(): boolean {
    return Atomics.load(this.board.i32, C.STOP) !== 0;
  }

  /** `us` varied by ±jitter. */
  jittered(us: number): number {
    const j = this.cfg.jitter;
    return us * (1 - j + 2 * j * this.rng());
  }

  /**
   * A critical section on a lock word, watched by the board's guard: counts timeouts (hangs),
   * owner deaths, a second holder inside (broken mutual exclusion) and refused unlocks (the word
   * was overwritten). A stale access the sanitizer stops (sanitize: true) is noted and skipped.
   */
  critical(lockFn: (ms: number) => boolean, unlockFn: () => void, idx: number, holdUs: number, ownerDied?: () => boolean): void {
    const board = this.board;
    let acquired: boolean;
    try {
      acquired = lockFn(this.cfg.lockTimeoutMs);
    } catch (e) {
      if (!(e instanceof UseAfterFreeError)) throw e;
      // Stopped before it touched the word (the arena counted it): nothing is held.
      this.uafReports.push(e.report);
      return;
    }
    if (!acquired) {
      bump(board, C.HANGS);
      return;
    }
    if (ownerDied?.()) bump(board, C.OWNER_DIED);
    guardEnter(board, idx, this.index);
    spinMicros(holdUs);
    this.holdIfAsked();
    guardExit(board, idx, this.index);
    try {
      unlockFn();
    } catch (e) {
      if (e instanceof FenceError && e.code === 'EPERM') bump(board, C.LOCK_ERRORS);
      else throw e;
    }
  }

  /** While C.HOLD is set, stays inside the critical section (counted in C.HELD for the parent). */
  private holdIfAsked(): void {
    const i32 = this.board.i32;
    let hold = Atomics.load(i32, C.HOLD);
    if (hold === 0) return;
    Atomics.add(i32, C.HELD, 1);
    Atomics.notify(i32, C.HELD);
    while (hold !== 0) {
      Atomics.wait(i32, C.HOLD, hold, 50);
      hold = Atomics.load(i32, C.HOLD);
    }
    Atomics.sub(i32, C.HELD, 1);
  }

  /**
   * The worker's life: 'ready', `body`, `finish` (even after an exception in `body`), leave the
   * arena, 'done'. An exception is counted and reported, never thrown past here.
   */
  async run(body: () => void | Promise<void>, finish: () => void): Promise<void> {
    const port = parentPort!;
    port.postMessage({ type: 'ready', slot: this.arena.slot });
    for (const step of [body, finish]) {
      try {
        await step();
      } catch (e) {
        bump(this.board, C.ERRORS);
        port.postMessage({ type: 'error', message: describe(e) });
      }
    }
    const uafReports = [...this.uafReports, ...this.arena.uafReports].slice(0, MAX_REPORTS);
    try {
      this.arena.detach();
    } catch (e) {
      port.postMessage({ type: 'undetached', message: describe(e) });
    }
    port.postMessage({ type: 'done', latencies: Float64Array.from(this.latencies), uafReports });
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/**
 * Shared helpers of the core suites (arena, locks, fence, sanitizer, borrowed-lock scenario): bounded worker
 * messaging and the two assertions every test makes — a rejected call leaves the arena consistent,
 * and a finished test leaves nothing allocated.
 *
 * Worker fixtures: Node 20 cannot start a worker from a .ts file, so the tiny test-only workers
 * live in test/fixtures/<name>.ts and `npm run build` compiles them with the rest (tsconfig.json
 * includes test/fixtures) to dist/test/fixtures/<name>.js; `npm test` builds first. A fixture
 * imports the library as ../../src/index.js, which compiles to the built library. `fixture(name)`
 * finds it. (The product's own workers, the exporter/importer engine, are workers/*.ts, compiled to
 * dist/workers/: see ENGINE_DIR in threads.ts.)
 */
import { Worker } from 'node:worker_threads';
import { expect } from 'vitest';
import { FenceError, SyncFile, type Arena, type Fence, type SwTimeline } from '../../src/index.js';

/** What `fn` throws (undefined when it returns). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Asserts `fn` throws a FenceError with `code` (a negative errno); returns it. */
export function throwsCode(fn: () => unknown, code: string): FenceError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected FenceError ${code}`).toBeInstanceOf(FenceError);
  const err = caught as FenceError;
  expect(err.code).toBe(code);
  expect(err.errno).toBeLessThan(0);
  return err;
}

/** Asserts `fn` throws a FenceError with `code`, then that the arena is still consistent. */
export function rejects(arena: Arena, fn: () => unknown, code: string): FenceError {
  const err = throwsCode(fn, code);
  const report = arena.check();
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
  return err;
}

/** Asserts the arena is consistent and holds no live block besides its permanent stub. */
export function expectClean(arena: Arena): void {
  const report = arena.check();
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.leaks).toEqual([]);
  expect(report.leakedBytes).toBe(0);
}

/** URL of compiled worker fixture `name` (test/fixtures/<name>.ts → dist/test/fixtures/<name>.js). */
export function fixture(name: string): URL {
  return new URL(`../../dist/test/fixtures/${name}.js`, import.meta.url);
}

export interface Msg {
  type: string;
  [k: string]: unknown;
}

/**
 * A worker with a queue of its messages: `next(type)` waits (bounded) for the next message of that
 * type; an 'error' message or an uncaught error fails the wait instead of hanging.
 */
/**
 * How long a test waits for a worker's message or exit before failing: far beyond what the reply
 * needs on an idle machine, because CI and busy laptops can starve a worker for seconds (it only
 * matters when something is really stuck).
 */
export const WORKER_WAIT_MS = 60_000;

export class TestWorker {
  readonly worker: Worker;
  readonly messages: Msg[] = [];
  private waiters: (() => void)[] = [];
  error: Error | undefined;
  exitCode: number | undefined;

  constructor(name: string, workerData: unknown) {
    this.worker = new Worker(fixture(name), { workerData });
    this.worker.on('message', (m: Msg) => {
      this.messages.push(m);
      this.wake();
    });
    this.worker.on('error', (e) => {
      this.error = e;
      this.wake();
    });
    this.worker.on('exit', (code) => {
      this.exitCode = code;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  post(m: Msg): void {
    this.worker.postMessage(m);
  }

  /** Next message of `type` (removed from the queue). Rejects on timeout, worker error or exit. */
  async next(type: string, timeoutMs = WORKER_WAIT_MS): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => m.type === type || m.type === 'error');
      if (i >= 0) {
        const [m] = this.messages.splice(i, 1);
        if (m.type === 'error' && type !== 'error') throw new Error(`worker reported: ${String(m.message)}`);
        return m;
      }
      if (this.error) throw this.error;
      if (this.exitCode !== undefined) throw new Error(`worker exited (${this.exitCode}) before sending '${type}'`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for '${type}' from the worker`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends `m` and waits for the reply of type `reply`. */
  async ask(m: Msg, reply: string, timeoutMs = WORKER_WAIT_MS): Promise<Msg> {
    this.post(m);
    return this.next(reply, timeoutMs);
  }

  /** Waits (bounded) for the worker to exit on its own; terminates it when the wait runs out. */
  async exited(timeoutMs = WORKER_WAIT_MS): Promise<number> {
    if (this.exitCode !== undefined) return this.exitCode;
    const code = await new Promise<number | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), timeoutMs);
      this.worker.once('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    if (code === undefined) {
      await this.worker.terminate();
      throw new Error(`worker did not exit within ${timeoutMs} ms`);
    }
    return code;
  }
}

/**
 * Resolves true when `cond` holds within `ms` (false after), polling on the event loop every 2 ms:
 * the bounded wait of the concurrency tests, so a bug fails a test instead of hanging CI.
 */
export async function until(cond: () => boolean, ms = 60_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

/** Busy-waits about `us` microseconds (a kill point's jitter in the kill-loop tests). */
export function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

/** A Fence of the calling thread on a new point of `tl` at `value`, through an fd it closes. */
export function timelinePoint(arena: Arena, tl: SwTimeline, value: number): Fence {
  const fd = tl.createFence(value);
  const f = SyncFile.getFence(arena, fd)!;
  SyncFile.close(arena, fd);
  return f;
}

/**
 * piscina glue (DESIGN.md §6): run a task on a pool and get its out-fence at once; tasks may wait
 * on other tasks' fences in shared memory, so dependency graphs need no round trip through the
 * caller. The pool must be created with `atomics: 'async'`: piscina's default `'sync'` blocks the
 * worker in Atomics.wait between tasks, freezing the async waits and callbacks a task leaves behind.
 *
 * Caller side: {@link runWithFence}. Worker side: `export default fenceTask(async (payload, ctx) => …)`
 * in the pool's filename module.
 */
import type { Worker } from 'node:worker_threads';
import { Arena } from '../arena/arena.js';
import { Errno, Errors } from '../errors.js';
import { contextAlloc } from '../fence/core.js';
import { Fence } from '../fence/fence.js';
import { defineFenceOps } from '../fence/ops.js';
import { putTracked, trackRef } from './ledger.js';

/** The message a task receives (plain numbers and the arena's buffer). */
export interface FenceTaskMessage {
  buffer: SharedArrayBuffer;
  /** Out-fence handle; the caller took a reference for the task. */
  fence: number;
  /** Fences to wait for before running; a reference each, taken for the task. */
  deps: number[];
  depTimeoutMs: number;
  payload: unknown;
}

/** What the task function gets besides its payload. */
export interface FenceTaskContext {
  arena: Arena;
  /** The task's out-fence (signaled by the wrapper when the function returns). */
  fence: Fence;
}

/** The minimum of a piscina pool the glue needs. */
export interface PoolLike {
  run(task: unknown, options?: { name?: string }): Promise<unknown>;
  readonly threads: Worker[];
  readonly options?: { atomics?: string };
  on(event: 'workerCreate', fn: () => void): unknown;
}

export const taskOps = defineFenceOps('fencelab:piscina', {
  getDriverName: () => 'piscina',
  getTimelineName: () => 'task',
});

const contexts = new Map<Arena, { context: number; seqno: number }>();

/**
 * Signals `fence` with `errno` unless it is already signaled, atomically under the fence lock (so
 * a concurrent successful signal is never turned into an error). Callbacks of the calling thread
 * run under the lock (kernel dma_fence_signal_locked). Returns true when this call signaled it.
 */
export function signalError(fence: Fence, errno: number): boolean {
  return fence.withLock(() => {
    if (fence.testSignaledFlag()) return false;
    fence.setError(errno);
    fence.signalLocked();
    return true;
  });
}

/**
 * Runs `payload` on `pool` and returns the task's out-fence at once (a reference for the caller
 * to put). `deps`: fences the task waits for first (an error in one is propagated to the out-fence
 * and the function does not run). When the task throws, the out-fence gets -EIO; when the worker
 * dies or the pool rejects the task before the wrapper ran, the caller signals it with -EIO.
 * Threads: any attached thread. Throws EINVAL for a pool not in `atomics: 'async'` mode.
 * `done` (optional) receives the task's result or error.
 */
export function runWithFence(
  pool: PoolLike,
  arena: Arena,
  payload: unknown,
  opts: { deps?: Fence[]; name?: string; depTimeoutMs?: number; done?: (err: unknown, result?: unknown) => void } = {},
): Fence {
  const atomics = pool.options?.atomics;
  if (atomics !== undefined && atomics !== 'async')
    throw Errors.invalid(`piscina pool must use atomics: 'async' (got '${atomics}'): 'sync' freezes a task's async waits`);
  let tl = contexts.get(arena);
  if (!tl) contexts.set(arena, (tl = { context: contextAlloc(arena, 1), seqno: 0 }));
  const out = Fence.create(arena, { ops: taskOps, context: tl.context, seqno: ++tl.seqno >>> 0 });
  out.get(); // the task's reference
  const deps = opts.deps ?? [];
  for (const d of deps) d.get();
  const msg: FenceTaskMessage = {
    buffer: arena.buffer,
    fence: out.handle,
    deps: deps.map((d) => d.handle),
    depTimeoutMs: opts.depTimeoutMs ?? 60_000,
    payload,
  };
  const view = Fence.fromHandle(arena, out.handle);
  pool.run(msg, opts.name ? { name: opts.name } : undefined).then(
    (r) => opts.done?.(null, r),
    (e) => {
      // The wrapper signals before its promise settles; an unsignaled fence here means the task
      // never ran to the end (worker terminated, pool destroyed, bad module).
      if (view.arena.isDetached) return;
      try {
        signalError(view, Errno.EIO);
      } catch {
        // released meanwhile: the caller put its reference and the task ran; nothing to signal
      }
      opts.done?.(e);
    },
  );
  return out;
}

/**
 * Wraps a task function for a piscina worker module: attaches the arena, tracks the references it
 * was handed (so a dying worker's are put by the reaper), waits for the dependencies, runs `fn`,
 * signals the out-fence (-EIO if `fn` threw, a dependency's error if one failed) and puts.
 */
export function fenceTask<R>(
  fn: (payload: unknown, ctx: FenceTaskContext) => R | Promise<R>,
): (msg: FenceTaskMessage) => Promise<R | undefined> {
  return async (msg: FenceTaskMessage) => {
    const arena = Arena.attach(msg.buffer);
    const out = trackRef(Fence.fromHandle(arena, msg.fence));
    const deps = msg.deps.map((h) => trackRef(Fence.fromHandle(arena, h)));
    try {
      for (const d of deps) {
        if (!(await d.waitAsync(msg.depTimeoutMs))) {
          signalError(out, Errno.ETIMEDOUT);
          return undefined;
        }
        const st = d.status();
        if (st < 0) {
          signalError(out, st);
          return undefined;
        }
      }
      const r = await fn(msg.payload, { arena, fence: out });
      out.signal();
      return r;
    } catch (e) {
      signalError(out, Errno.EIO);
      throw e;
    } finally {
      for (const d of deps) putTracked(d);
      putTracked(out);
    }
  };
}

/**
 * Watches every worker of `pool`, present and future (Arena.watch): a task worker that dies has its
 * slot reaped — its tracked references put, its locks released.
 * Threads: the thread that owns the pool.
 */
export function watchPool(arena: Arena, pool: PoolLike): void {
  const seen = new WeakSet<Worker>();
  const scan = () => {
    for (const w of pool.threads) {
      if (seen.has(w) || w.threadId < 0) continue;
      seen.add(w);
      arena.watch(w);
    }
  };
  scan();
  pool.on('workerCreate', scan);
}

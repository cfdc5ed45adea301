/**
 * piscina glue: a pool whose tasks start only once their dependency fences have signaled (a
 * scheduler in the spirit of the kernel's drm_sched: jobs.ts, finish.ts and queue.ts in shared
 * memory, task.ts in the workers; the pool's thread is pool.ts — the FencePool class — and this file:
 * submitting tasks, their results).
 *
 * Caller side: {@link createFencePool}, then {@link runWithFence} (one task, its out-fence at once)
 * or runGraph (graph.ts). Worker side: the pool's module exports `fenceTask(async (payload, ctx) => …)`.
 *
 * A task is never handed to a worker early: no worker sits waiting for a dependency, so a graph of
 * any shape completes on a pool of any size. Payloads and results travel through the arena
 * (codec.ts); piscina carries only "kicks" — messages that start a pull loop in a worker, which
 * takes ready jobs from the scheduler's queue, sleeps on it (in shared memory) while it is empty,
 * and ends after a while without work. When a job finishes, the jobs it releases are queued by the
 * worker that signals, and that worker's loop takes the next one: a dependency chain runs without a
 * round trip through the main thread.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { Errno, Errors, describeValue, optionsArg, isArrayArg, isInstance, isLiveObject } from '../errors.js';
import type { Fence } from '../fence/fence.js';
import { checkErrno, isSignaledFlag } from '../fence/core.js';
import { holdsFenceLock } from '../fence/held.js';
import { checkSameArena, fenceArgOf } from './args.js';
import { startDispatcher } from './dispatcher.js';
import { encode, type Encoded } from './codec.js';
import { createJob, isJob } from './jobs.js';
import { abortRunning, cancelJob, jobResult, signalErrorAt } from './finish.js';
import { FencePool } from './pool.js';
import type { Envelope } from './task.js';

export { createFencePool, FencePool, watchPool } from './pool.js';
export type { FencePoolOptions, PiscinaPool, PoolLike } from './pool.js';
export { fenceTask } from './task.js';
export type { FenceTaskContext, FenceTaskMessage } from './task.js';

/** Per-task options of {@link runWithFence}. */
export interface RunOptions {
  /** Fences the task needs signaled before it may start; an error in one becomes the task's. */
  deps?: Fence[];
  /** Keys of ctx.inputs, one per dependency (default: positions '0', '1', …). */
  inputNames?: string[];
  /** Cancels the task: not started → never runs, out-fence -ECANCELED; running → ctx.aborted. */
  signal?: AbortSignal;
  /** Runs the pool module's export of that name instead of the pool's default task. */
  name?: string;
  /** Called on this thread once the task finished: (null, result) or (error). */
  done?: (err: unknown, result?: unknown) => void;
}

/**
 * Throws EINVAL unless `pool` is a live fence pool of `arena` (checked before anything is submitted).
 * Threads: any. `where` names the entry in the messages.
 */
export function checkPool(pool: FencePool, arena: Arena, where: string): void {
  arenaArg(arena, where);
  if (!isInstance(pool, FencePool)) {
    const options = isLiveObject(pool) ? (pool as { options?: unknown }).options : undefined;
    const atomics = isLiveObject(options) ? (options as { atomics?: string }).atomics : undefined;
    if (atomics !== undefined && atomics !== 'async')
      throw Errors.invalid(`piscina pool must use atomics: 'async' (got ${describeValue(atomics)}): 'sync' freezes a task's async waits`);
    throw Errors.invalid(`${where} needs a pool from createFencePool (its scheduler starts tasks once their dependencies signal), got ${describeValue(pool)}`);
  }
  if (pool.arena.buffer !== arena.buffer) throw Errors.invalid('the pool belongs to another arena');
  if (pool.isDestroyed) throw Errors.invalid('the pool was destroyed');
}


/**
 * Runs `payload` on `pool` once every fence in `deps` has signaled, and returns the task's
 * out-fence at once (a reference for the caller to put).
 *
 * The out-fence signals with status 1 when the task returned, -EIO when it threw, the error of the
 * first dependency that failed (the task then never runs), -ECANCELED when `signal` aborted it
 * before it started, -ENODEV when its worker died. The result (or what the task threw) stays with
 * the fence: {@link taskResult}.
 * Threads: the pool's thread. Locking: takes each dependency's fence lock in turn, then the
 * scheduler's queue lock.
 * Throws EINVAL (not a fence pool, destroyed pool, not an Arena, options: not an object, an unknown
 * key, a value of the wrong type, deps of another arena; a payload that cannot travel through
 * shared memory — functions, SharedArrayBuffers), EBADF (a released dependency), EDEADLK (the
 * calling thread holds a dependency's fence lock), ENOMEM; every check happens before anything is
 * allocated or taken, and nothing is left behind on a throw.
 */
export function runWithFence(pool: FencePool, arena: Arena, payload: unknown, opts?: RunOptions): Fence {
  checkPool(pool, arena, 'runWithFence');
  const o = runOptions(arena, opts);
  return submitEncoded(pool, arena, encodeEnvelope(payload, o.name, o.inputNames), o.deps ?? [], o.signal, o.done);
}

/**
 * A task's envelope (payload, task name, input keys), encoded for the arena. Throws EINVAL for a
 * payload that cannot travel through shared memory. Threads: any. Allocates nothing.
 */
export function encodeEnvelope(payload: unknown, name: string | undefined, names: readonly string[] | undefined): Encoded {
  if (name === undefined && names === undefined && payload === undefined) return encode(undefined, 'payload');
  const envelope: Envelope = [payload, name ?? null, names ? [...names] : null];
  return encode(trimEnvelope(envelope), 'payload');
}

/**
 * {@link runWithFence} after its checks, with the envelope encoded ({@link encodeEnvelope}): the
 * job, its abort signal and done callback. Threads: the pool's thread. Throws ENOMEM.
 */
export function submitEncoded(
  pool: FencePool,
  arena: Arena,
  encoded: Encoded,
  deps: Fence[],
  signal?: AbortSignal,
  done?: (err: unknown, result?: unknown) => void,
): Fence {
  const job = createJob(arena, pool.sw, encoded, signal?.aborted ? [] : deps, signal?.aborted === true);
  if (signal && !signal.aborted) onAbort(arena, job, signal);
  if (done) onDone(job, done);
  return job;
}

const RUN_OPTIONS = ['deps', 'inputNames', 'signal', 'name', 'done'] as const;

/**
 * {@link runWithFence}'s options, every one checked (types, unknown keys, each dependency a live
 * fence of `arena`). Threads: any. Throws EINVAL naming the option, EBADF (a released dependency).
 */
function runOptions(arena: Arena, opts: RunOptions | undefined): RunOptions {
  const o = optionsArg(opts, 'runWithFence', [...RUN_OPTIONS]);
  const deps = o.deps ?? [];
  if (!isArrayArg(deps)) throw Errors.invalid(`runWithFence: deps must be an array of fences, got ${describeValue(deps)}`);
  deps.forEach((d, i) => {
    checkSameArena(arena, fenceArgOf(d, 'runWithFence', `deps[${i}]`), `deps[${i}]`);
    // Arming an unsignaled dependency takes its lock: refused here, before anything is allocated
    // (it was an -ENOMEM job returned as if submitted). A signaled one is counted without the lock
    // (a callback run under it, as signalError's are, may submit its dependents).
    if (!isSignaledFlag(arena.i32, d.fw) && holdsFenceLock(arena, d.fw))
      throw Errors.deadlock(`runWithFence: deps[${i}]'s fence lock is held by the calling thread: unlock first`);
  });
  const names: unknown = o.inputNames;
  if (names !== undefined && (!isArrayArg(names) || names.length !== deps.length || names.some((n) => typeof n !== 'string')))
    throw Errors.invalid('runWithFence: inputNames must be strings, one per dependency');
  if (o.name !== undefined && typeof o.name !== 'string') throw Errors.invalid(`runWithFence: name must be a string, got ${describeValue(o.name)}`);
  if (o.signal !== undefined && !isInstance(o.signal, AbortSignal))
    throw Errors.invalid(`runWithFence: signal must be an AbortSignal, got ${describeValue(o.signal)}`);
  if (o.done !== undefined && typeof o.done !== 'function') throw Errors.invalid(`runWithFence: done must be a function, got ${describeValue(o.done)}`);
  return o;
}

/** Drops trailing nulls of the envelope (most tasks have neither a name nor input keys). */
function trimEnvelope(e: Envelope): unknown[] {
  if (e[2] !== null) return e;
  if (e[1] !== null) return [e[0], e[1]];
  return [e[0]];
}

/**
 * Arms `signal` on a job: not started → cancelled (-ECANCELED); running → its abort word is set.
 * The listener holds a job reference until the job's fence signals.
 */
function onAbort(arena: Arena, job: Fence, signal: AbortSignal): void {
  job.get();
  const jw = job.fw;
  const abort = (): void => {
    if (!cancelJob(arena, jw, Errno.ECANCELED)) abortRunning(arena, jw);
  };
  signal.addEventListener('abort', abort, { once: true });
  startDispatcher(arena); // the cleanup below may be delivered from a worker
  const cleanup = (): void => {
    signal.removeEventListener('abort', abort);
    job.put();
  };
  if (job.addCallback(cleanup) === null) cleanup();
}

/** Calls `done` on this thread when the job's fence signals (holding a reference until then). */
function onDone(job: Fence, done: (err: unknown, result?: unknown) => void): void {
  startDispatcher(job.arena); // a worker signals: the call is delivered to this thread's inbox
  job.get();
  const run = (): void => {
    let err: unknown = null;
    let value: unknown;
    try {
      value = taskResult(job);
    } catch (e) {
      err = e;
    }
    job.put();
    if (err === null) done(null, value);
    else done(err);
  };
  if (job.addCallback(run) === null) queueMicrotask(run);
}

/**
 * The result of a finished pool task. Returns what the task returned. Throws what it threw (its
 * fence has -EIO), a FenceError with the fence's code and errno for any other error (ECANCELED,
 * ENODEV, a dependency's — `'E32'` for an errno without a name here, see errnoName), EBUSY while
 * the fence is not signaled, EINVAL for a fence that is not a pool task.
 * Threads: any attached thread holding a reference on `fence`. EBADF for a released fence.
 */
export function taskResult(fence: Fence): unknown {
  fenceArgOf(fence, 'taskResult');
  if (!isJob(fence.arena, fence.fw)) throw Errors.invalid('taskResult: not the out-fence of a pool task');
  if (!fence.testSignaledFlag()) throw Errors.busy('taskResult: the task has not finished');
  const status = fence.status();
  const r = jobResult(fence.arena, fence.fw);
  if (r.thrown) throw r.value;
  if (status < 0) throw Errors.fromErrno(status, `task ended with ${fence.error} (${fence.describe()})`);
  return r.value;
}

/**
 * Signals `fence` with `errno` unless it is already signaled, atomically under the fence lock (so
 * a concurrent successful signal is never turned into an error). Callbacks of the calling thread
 * run under the lock (kernel dma_fence_signal_locked).
 * Threads: any attached thread. Returns true when this call signaled it. Throws EINVAL (not a
 * Fence; errno not in -4095..-1, checked even when the fence is already signaled), EBADF (a
 * released fence), before anything changes.
 */
export function signalError(fence: Fence, errno: number): boolean {
  fenceArgOf(fence, 'signalError');
  checkErrno(errno);
  return signalErrorAt(fence.arena, fence, errno);
}

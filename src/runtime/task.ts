/**
 * The worker side of a fence pool: `export default fenceTask(async (payload, ctx) => …)` in the
 * pool's module. Each piscina message ("kick") starts a pull loop that takes ready jobs from the
 * scheduler's queue (queue.ts) and runs them — this module's task, or a named export's — then
 * finishes them (finish.ts): the result goes to the arena, the out-fence signals, and the jobs that
 * signal releases are queued by this very thread, whose loop takes the next one. Between jobs the
 * loop spins briefly, then sleeps on the queue in shared memory, and ends after a while idle.
 */
import { Arena } from '../arena/arena.js';
import { Errno, Errors, describeValue, isInstance, isLiveObject } from '../errors.js';
import type { Fence } from '../fence/fence.js';
import * as L from './layout.js';
import { encode, encodeThrown, type Encoded } from './codec.js';
import { isJob } from './jobs.js';
import { depError, finishRun, isAborted, jobDeps, jobEnvelope, jobFence, jobResult, startJob } from './finish.js';
import { enterPull, leaveIdle, LEAVE, lookAgain, PARK, schedFromHandle, takeOrPark, workIndex, type Park } from './queue.js';

/** The message piscina carries to a worker: it starts a pull loop there (plain numbers and the arena). */
export interface FenceTaskMessage {
  /** The arena's buffer (the worker attaches to it). */
  buffer: SharedArrayBuffer;
  /** Handle of the scheduler block whose ready queue the loop pulls from. */
  sched: number;
  /** The pool's module, to find tasks run by name. */
  filename: string;
  /** How long (µs) the loop spins on an empty queue before it sleeps. */
  lingerUs: number;
  /** How long (ms) the loop sleeps without work before it ends. */
  idleMs: number;
}

/** What a task function gets besides its payload. */
export interface FenceTaskContext {
  /** The worker's view of the pool's arena. */
  arena: Arena;
  /** The task's out-fence (signaled by the scheduler when the function returns). */
  fence: Fence;
  /**
   * Results of the task's dependencies, decoded on first access: keyed by the names given
   * (`inputNames`, or the node names in a graph), else by position ('0', '1', …). A dependency that
   * is not a pool task (a plain fence) gives `undefined`.
   */
  readonly inputs: Readonly<Record<string, unknown>>;
  /** True once the caller's AbortSignal fired (read from shared memory). */
  readonly aborted: boolean;
  /** An AbortSignal in this worker that fires when the caller's does (created on first access). */
  readonly signal: AbortSignal;
}

/** The envelope of a task: [payload, task name or null, input keys or null]. */
export type Envelope = [unknown, string | null, string[] | null];

const TASK_FN = Symbol.for('fencelab.fenceTask');
type TaskFn = (payload: unknown, ctx: FenceTaskContext) => unknown;
type Handler = ((msg: FenceTaskMessage) => Promise<number>) & { [TASK_FN]?: TaskFn };

/**
 * Wraps a task function for the pool's module: `export default fenceTask(async (payload, ctx) => …)`
 * (named exports run tasks submitted with `name`). The wrapper is piscina's handler: each message
 * starts a pull loop that runs ready jobs — this function for jobs without a name — and sleeps on
 * the queue between them, until the pool's idle time passes without work or the pool is destroyed.
 * Returns the handler; its promise resolves with the number of jobs the loop ran.
 *
 * What `fn` returns becomes the task's result (it must travel through shared memory like the
 * payload); a throw makes the out-fence -EIO and is kept as the error. The wrapper signals the
 * out-fence; `fn` must not.
 * Threads: pool workers. Throws EINVAL when `fn` is not a function.
 */
export function fenceTask<R>(fn: (payload: unknown, ctx: FenceTaskContext) => R | Promise<R>): (msg: FenceTaskMessage) => Promise<number> {
  if (typeof fn !== 'function') throw Errors.invalid('fenceTask needs a function');
  const handler: Handler = (msg: FenceTaskMessage) => pullLoop(msg, handler);
  handler[TASK_FN] = fn as TaskFn;
  return handler;
}

const modules = new Map<string, Promise<Record<string, unknown>>>();

/**
 * The export `name` of the pool's module, loaded with import(): in a fence pool's workers that is
 * how piscina loaded it too (require(esm) is off there: poolopts.ts workerExecArgv), so this finds
 * the module already evaluated and the module is never loaded two ways at once.
 */
async function namedTask(filename: string, name: string): Promise<TaskFn> {
  let m = modules.get(filename);
  if (!m) modules.set(filename, (m = import(filename) as Promise<Record<string, unknown>>));
  const h = (await m)[name] as Handler | undefined;
  const fn = typeof h === 'function' ? h[TASK_FN] : undefined;
  if (!fn) throw Errors.invalid(`the pool module has no fenceTask export named '${name}'`);
  return fn;
}

async function pullLoop(msg: FenceTaskMessage, self: Handler): Promise<number> {
  // Sent by a fence pool only: anything else is a misuse of the handler (rejects with EINVAL).
  if (msg === null || typeof msg !== 'object' || !isLiveObject(msg) || !isInstance(msg.buffer, SharedArrayBuffer))
    throw Errors.invalid(`a fenceTask handler runs the messages of a fence pool, got ${describeValue(msg)}`);
  const arena = Arena.attach(msg.buffer);
  const sw = schedFromHandle(arena, msg.sched);
  enterPull(arena, sw);
  const i32 = arena.i32;
  const park: Park = { parkedOn: 0, asleep: false };
  const linger = new Linger(msg.lingerUs);
  let ran = 0;
  for (;;) {
    const jw = takeOrPark(arena, sw, linger.us, park);
    if (jw === LEAVE) return ran;
    if (jw === PARK) {
      linger.parked();
      // Asleep without holding the event loop (the async work a task left behind goes on); the
      // next push wakes one sleeper. Idle for idleMs, the loop ends and the worker is piscina's again.
      // No timeout on the wait itself: a notify that meets an async waiter with a timeout costs
      // the notifier up to milliseconds (measured here), a plain one ≈ 10 µs. A timer wakes the
      // sleepers instead; the one whose idle time is up leaves, the others sleep again.
      const r = Atomics.waitAsync(i32, workIndex(sw), park.parkedOn);
      if (r.async) {
        let idle = false;
        const timer = setTimeout(() => {
          idle = true;
          Atomics.notify(i32, workIndex(sw));
        }, msg.idleMs);
        await r.value;
        clearTimeout(timer);
        if (idle && leaveIdle(arena, sw, park)) return ran;
      }
      continue;
    }
    linger.took();
    if (!startJob(arena, jw)) {
      lookAgain(arena, sw); // cancelled while queued
      linger.looking();
      continue;
    }
    ran++;
    const err = depError(arena, jw);
    let status = 1;
    let result: Encoded | null = null;
    let ctx: TaskContext | null = null;
    if (err < 0) status = err;
    else {
      ctx = new TaskContext(arena, jw);
      try {
        const env = jobEnvelope(arena, jw) as Envelope | undefined;
        const name = env?.[1] ?? null;
        ctx.keys = env?.[2] ?? null;
        const fn = name === null ? self[TASK_FN]! : await namedTask(msg.filename, name);
        let r = fn(env?.[0], ctx);
        if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') r = await r;
        result = encode(r, 'task result');
      } catch (e) {
        status = Errno.EIO;
        result = encodeThrown(e);
      }
      ctx.over = true;
    }
    // Looking again before the fence signals: the jobs the signal releases count on this loop.
    lookAgain(arena, sw);
    try {
      finishRun(arena, jw, status, result, err < 0, ctx?.waitsOnAbort === true);
    } catch (e) {
      // A callback of this thread threw while the fence signaled: report it, keep pulling.
      queueMicrotask(() => {
        throw e;
      });
    }
    linger.looking();
  }
}

/** How far a pull loop's linger may grow over the pool's `lingerUs`. */
const LINGER_GROWTH = 16;

/**
 * A pull loop's linger, adapted to how soon jobs come: a job that arrives after the loop parked,
 * but within LINGER_GROWTH × `lingerUs` of its last one, sets the linger to 1.5 × that interval,
 * so the next such job finds the loop still spinning; a longer lull sets it back to `lingerUs`.
 * A fixed linger shorter than a submitter's turnaround (a main thread woken from its own wait,
 * then submitting the next task) makes every job pay a wake-up of a parked loop, whose cost makes
 * the next turnaround longer still. `lingerUs` 0 stays 0 (park at once).
 */
export class Linger {
  /** The current linger (µs). */
  us: number;
  private readonly base: number;
  private readonly cap: number;
  /** When the loop began looking (performance.now()), and whether it parked since. */
  private since = performance.now();
  private slept = false;

  constructor(lingerUs: number) {
    this.base = lingerUs;
    this.us = lingerUs;
    this.cap = lingerUs * LINGER_GROWTH;
  }

  /** The loop began looking for a job (its last one is done). */
  looking(): void {
    this.since = performance.now();
    this.slept = false;
  }

  /** The loop parked: its linger ran out. */
  parked(): void {
    this.slept = true;
  }

  /** The loop took a job: after a park, the linger follows the interval since it began looking. */
  took(): void {
    if (!this.slept) return;
    const waited = (performance.now() - this.since) * 1000;
    this.us = waited < this.cap ? Math.min(this.cap, Math.max(this.base, waited * 1.5)) : this.base;
  }
}

class TaskContext implements FenceTaskContext {
  readonly arena: Arena;
  readonly fence: Fence;
  keys: string[] | null = null;
  /** Set when the task returned: the job may be freed from then on. */
  over = false;
  private readonly jw: number;
  private cachedInputs: Record<string, unknown> | undefined;
  private controller: AbortController | undefined;

  /** True once ctx.signal armed a wait on the job's abort word (finishing must wake it). */
  get waitsOnAbort(): boolean {
    return this.controller !== undefined;
  }

  constructor(arena: Arena, jw: number) {
    this.arena = arena;
    this.jw = jw;
    this.fence = jobFence(arena, jw);
  }

  get aborted(): boolean {
    return !this.over && isAborted(this.arena, this.jw);
  }

  get inputs(): Readonly<Record<string, unknown>> {
    if (this.cachedInputs) return this.cachedInputs;
    const out: Record<string, unknown> = {};
    jobDeps(this.arena, this.jw).forEach((dfw, i) => {
      const key = this.keys?.[i] ?? String(i);
      out[key] = dfw !== 0 && isJob(this.arena, dfw) ? jobResult(this.arena, dfw).value : undefined;
    });
    return (this.cachedInputs = Object.freeze(out));
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const c = (this.controller = new AbortController());
    if (this.aborted) c.abort();
    else if (!this.over) {
      const i32 = this.arena.i32;
      const r = Atomics.waitAsync(i32, this.jw + L.J_ABORT, L.AB_NONE);
      // finishJob always moves the word on (AB_OVER) and notifies, so this never stays pending.
      const check = (): void => {
        if (!this.over && isAborted(this.arena, this.jw)) c.abort();
      };
      if (r.async) void r.value.then(check);
      else check();
    }
    return c.signal;
  }
}

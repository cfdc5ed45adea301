/**
 * The piscina pool underneath a fence pool: piscina loaded on first use, its workers watched (a
 * worker that dies is reaped), and {@link FencePool}, which starts pull loops ("kicks") while ready
 * jobs outnumber the loops that will take them and tears the pool down. Submitting tasks to it is
 * piscina.ts; the scheduler in shared memory is jobs.ts, finish.ts and queue.ts, the worker side
 * task.ts.
 */
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { Arena, arenaArg } from '../arena/arena.js';
import { Errno, Errors, describeValue, optionsArg, isArrayArg, isLiveObject } from '../errors.js';
import { checkPoolOptions, startPiscina, type FencePoolOptions } from './poolopts.js';
import { drainQueue } from './jobs.js';
import { bellIndex, schedCounts, schedCreate, schedDestroy, schedHandle, schedPut } from './queue.js';
import type { FenceTaskMessage } from './task.js';

/** The minimum of a piscina pool that {@link watchPool} needs. */
export interface PoolLike {
  /** The pool's current workers. */
  readonly threads: Worker[];
  /** Subscribes `fn` to the creation of each new worker. */
  on(event: 'workerCreate', fn: () => void): unknown;
}

/** What the fence pool also listens to on its piscina pool. */
interface PoolEvents {
  /** Subscribes `fn` to the removal of each worker (one that died, or the pool's teardown). */
  on(event: 'workerDestroy', fn: () => void): unknown;
  /** Subscribes `fn` to the errors of workers that had no task (piscina throws them without a listener). */
  on(event: 'error', fn: (e: unknown) => void): unknown;
}

/**
 * The part of a piscina pool the fence pool uses. piscina is an optional peer dependency, loaded
 * only when a fence pool is created, so neither its code nor its types are needed by other users.
 */
export interface PiscinaPool extends PoolLike {
  /** The pool's options as piscina resolved them. */
  readonly options: {
    /** Most workers the pool runs. */
    readonly maxThreads: number;
    /** Tasks one worker runs at once. */
    readonly concurrentTasksPerWorker: number;
  };
  /** Runs `task` on a worker; the fence pool sends only the message that starts a pull loop. */
  run(task: unknown, options?: { name?: string; signal?: AbortSignal }): Promise<unknown>;
  /** Ends the pool's workers. */
  destroy(): Promise<void>;
}

export type { FencePoolOptions } from './poolopts.js';

const KICK_FAILURES_TO_GIVE_UP = 3;
/**
 * Kicks failed by their worker's exit in a row (no loop started since) before the pool gives up
 * too: a module that kills its worker as it loads. More than KICK_FAILURES_TO_GIVE_UP, because a
 * worker terminated before its loop started (the pool-kill test's kills, a crash) says nothing
 * about the module: three such deaths in a row failed every queued job with -EIO.
 */
const KICK_EXITS_TO_GIVE_UP = 10;

/**
 * A piscina pool driven by a fence scheduler. Create with {@link createFencePool}; destroy with
 * {@link FencePool.destroy}.
 */
export class FencePool {
  /** The arena whose fences its tasks signal (the creating thread's view). */
  readonly arena: Arena;
  /** The piscina pool underneath (its options, threads and events are piscina's). */
  readonly piscina: PiscinaPool;
  /** @internal payload word of the scheduler block. */
  readonly sw: number;
  private readonly msg: FenceTaskMessage;
  private readonly limit: number;
  /** Kicks whose piscina promise has not settled. */
  private kicks = 0;
  /** Kicks ever sent (wraps like the loops' start count it is compared with). */
  private issued = 0;
  private kickFailures = 0;
  /** Of the kick failures in a row, those of a worker's exit (piscina: "worker exited with code"). */
  private kickExits = 0;
  /** The loops' start count at the last kick failure: loops started since prove the module loads. */
  private startedAtFailure = 0;
  /** Workers removed in a row while a job was queued and no loop started (see onWorkerGone). */
  private bootDeaths = 0;
  /** The loops' start count at the last worker removal. */
  private startedAtGone = 0;
  /** Gave up on a module that kills every worker as it loads: no replacement kicks until the next pump's. */
  private stalled = false;
  private destroyed = false;
  private pumping = false;
  private again = false;
  /** Resolves destroy()'s wait for the pull loops to end. */
  private whenIdle: (() => void) | null = null;
  /** Pull loops started and the jobs they ran (for tests and benchmarks). */
  readonly counters = {
    /** Pull loops asked for (piscina tasks submitted). */
    kicks: 0,
    /** Jobs the ended pull loops ran. */
    ran: 0,
    /** Pull loops whose piscina task failed (a worker that died, a module that failed to load). */
    kickErrors: 0,
  };
  /** The last error a kick ended with (a worker that died, a module that failed to load). */
  lastKickError: unknown = undefined;

  /** Not public (one built by hand would skip its factory's checks): use {@link createFencePool}. */
  private constructor(arena: Arena, options: FencePoolOptions) {
    const { lingerUs = 50, idleMs = 250, filename } = checkPoolOptions(options);
    this.arena = arena;
    this.piscina = startPiscina(options) as PiscinaPool;
    const o = this.piscina.options;
    this.limit = o.maxThreads * o.concurrentTasksPerWorker;
    this.sw = schedCreate(arena, this);
    this.msg = { buffer: arena.buffer, sched: schedHandle(arena, this.sw), filename: toURL(filename), lingerUs, idleMs };
    watchPool(arena, this.piscina);
    (this.piscina as unknown as PoolEvents).on('workerDestroy', this.onWorkerGone);
    // A worker that fails before it took a task (its module threw as it loaded) is piscina's
    // 'error' event, which without a listener ended the whole process. Its removal is counted below.
    (this.piscina as unknown as PoolEvents).on('error', (e) => {
      this.lastKickError = e;
    });
    void this.bellLoop();
  }

  /** @internal The pool behind createFencePool (after its checks). */
  static make(arena: Arena, options: FencePoolOptions): FencePool {
    return new FencePool(arena, options);
  }

  /** True once {@link destroy} was called. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Ready jobs, running pull loops, and pull loops between jobs (a snapshot). */
  stats(): {
    /** Jobs ready to run that no pull loop has taken yet. */
    queued: number;
    /** Pull loops running. */
    pullers: number;
    /** Pull loops between jobs, looking for the next (spinning or asleep on the queue). */
    looking: number;
    /** Pull loops started whose piscina task has not settled. */
    kicksInFlight: number;
  } {
    if (this.destroyed) return { queued: 0, pullers: 0, looking: 0, kicksInFlight: this.kicks };
    return { ...schedCounts(this.arena, this.sw), kicksInFlight: this.kicks };
  }

  /**
   * Starts pull loops while ready jobs outnumber the loops that will take them — those looking for
   * work, and kicks sent but not yet started (told by the loops' own start count in shared memory,
   * not by piscina's promises, which settle only once this thread's event loop runs) — up to
   * maxThreads × concurrentTasksPerWorker loops.
   * Threads: the pool's. Called on submission, on the BELL, and when a kick settles.
   * @internal
   */
  pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        if (this.destroyed) return;
        const c = schedCounts(this.arena, this.sw);
        // A kick that failed may or may not have started its loop: counting it as started may
        // start one loop too many (it finds nothing and leaves), never one too few.
        // Stalled, the kicks in flight wait in piscina's queue for a worker it will not start.
        const unstarted = this.stalled ? 0 : Math.max(0, (this.issued - c.started - this.counters.kickErrors) | 0);
        let want = Math.min(c.queued - c.looking - unstarted, this.limit - c.pullers - unstarted);
        if (want > 0) this.stalled = false;
        while (want-- > 0) this.kick();
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  private kick(): void {
    this.kicks++;
    this.issued = (this.issued + 1) | 0;
    this.counters.kicks++;
    this.piscina.run(this.msg).then(this.onKickDone, this.onKickFailed);
  }

  private readonly onKickDone = (ran: unknown): void => {
    this.kicks--;
    if (this.kicks === 0) this.whenIdle?.();
    this.kickFailures = 0;
    this.kickExits = 0;
    if (typeof ran === 'number') this.counters.ran += ran;
    this.pump();
  };

  private readonly onKickFailed = (e: unknown): void => {
    this.kicks--;
    if (this.kicks === 0) this.whenIdle?.();
    this.counters.kickErrors++;
    this.lastKickError = e;
    if (this.destroyed) return;
    // A module that cannot load fails every kick: after a few in a row, fail the queued jobs
    // instead of kicking forever (a worker that died is reaped, and its jobs end with -ENODEV).
    // Loops started since the last failure prove the module loads: the failure was a worker's
    // death (terminated, crashed), which says nothing about the next kick. Without that reset,
    // three workers dying while they ran loops failed every queued job with -EIO.
    const c = schedCounts(this.arena, this.sw);
    if (c.started !== this.startedAtFailure) {
      this.startedAtFailure = c.started;
      this.kickFailures = 0;
      this.kickExits = 0;
    }
    if (e instanceof Error && e.message.startsWith('worker exited with code')) this.kickExits++;
    else this.kickFailures++;
    if ((this.kickFailures >= KICK_FAILURES_TO_GIVE_UP || this.kickExits >= KICK_EXITS_TO_GIVE_UP) && c.pullers === 0) {
      this.kickFailures = 0;
      this.kickExits = 0;
      drainQueue(this.arena, this.sw, Errno.EIO);
      return;
    }
    this.pump();
  };

  /**
   * A worker left piscina's pool. piscina replaces a worker that dies — unless one ever died
   * before it was ready ("fails during bootstrap"): from then on it replaces none, and starts one
   * only for a task submitted while it has fewer than maxThreads. The kicks it holds then wait for
   * a worker that never comes, and the pump sends no more (they count as loops about to start):
   * with every worker gone, every job waited forever. So once piscina is done with the removal
   * (a microtask later), a kick is sent for each worker missing under the kicks in flight: each
   * such submission makes piscina start a worker. A kick too many only starts a loop that finds
   * nothing and leaves.
   *
   * A module that kills every worker as it loads (it throws, or exits) fails no kick — piscina had
   * not handed it one — so that resent kick started the next doomed worker, for ever (≈10 a second,
   * the job never ending). So removals in a row while a job is queued, no loop running and none
   * started since, count towards a give-up: the queued jobs fail with -EIO, and the pool sends no
   * more kicks for removals until a pump kicks again (the next job made ready).
   */
  private readonly onWorkerGone = (): void => {
    queueMicrotask(() => {
      if (this.destroyed) return;
      const c = schedCounts(this.arena, this.sw);
      if (c.started !== this.startedAtGone || c.queued === 0 || c.pullers > 0) {
        this.startedAtGone = c.started;
        this.bootDeaths = 0;
      } else if (++this.bootDeaths >= KICK_EXITS_TO_GIVE_UP) {
        this.bootDeaths = 0;
        this.stalled = true;
        drainQueue(this.arena, this.sw, Errno.EIO);
      }
      if (this.stalled) return;
      const live = this.piscina.threads.filter((w) => w.threadId >= 0).length;
      const missing = Math.min(this.kicks, this.piscina.options.maxThreads) - live;
      for (let k = 0; k < missing; k++) this.kick();
    });
  };

  /**
   * Waits on the scheduler's BELL, rung by threads that queued jobs no pull loop will take.
   * A pending Atomics.waitAsync does not keep the process alive: the loop costs nothing when idle.
   */
  private async bellLoop(): Promise<void> {
    const i32 = this.arena.i32;
    const bell = bellIndex(this.sw);
    while (!this.destroyed) {
      const seen = Atomics.load(i32, bell);
      this.pump();
      const r = Atomics.waitAsync(i32, bell, seen);
      if (r.async) await r.value;
    }
  }

  /**
   * Destroys the pool: tasks not started are cancelled (their out-fences -ECANCELED, now or — for
   * those still waiting on fences from outside the pool — when they become ready); pull loops leave
   * after their current task; after `graceMs` (default 100) piscina's workers are terminated, and a
   * task still running then ends with -ENODEV (its worker reaped).
   *
   * The grace matters even when no task runs long: a worker that has just signaled a fence may still
   * be handing the fence's callbacks to their threads, and terminating it there would lose them.
   * Threads: the pool's. Returns when piscina is destroyed. Calling it again does nothing. Rejects
   * with EINVAL (options: not an object, an unknown key, a bad graceMs) before anything changes.
   */
  async destroy(options?: { graceMs?: number }): Promise<void> {
    const graceMs = optionsArg(options, 'FencePool.destroy', ['graceMs']).graceMs ?? 100;
    if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0)
      throw Errors.invalid(`FencePool.destroy: graceMs must be a finite number ≥ 0, got ${describeValue(graceMs)}`);
    if (this.destroyed) return;
    this.destroyed = true;
    schedDestroy(this.arena, this.sw);
    drainQueue(this.arena, this.sw, Errno.ECANCELED);
    try {
      if (this.kicks > 0 && graceMs > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          this.whenIdle = resolve;
          timer = setTimeout(resolve, graceMs);
        });
        clearTimeout(timer);
        this.whenIdle = null;
      }
      await this.piscina.destroy();
    } finally {
      schedPut(this.arena, this.sw);
    }
  }
}

function toURL(filename: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(filename) && !/^[a-z]:[\\/]/i.test(filename) ? filename : pathToFileURL(filename).href;
}

/**
 * Creates a piscina pool run by a fence scheduler: tasks start only once their dependency fences
 * have signaled, and every pool worker is watched with `arena.watch` (a worker that dies is reaped:
 * the task it ran ends with -ENODEV, its references and locks are recovered).
 *
 * piscina runs with `atomics: 'async'`: its default `'sync'` parks an idle worker in a blocking
 * Atomics.wait between tasks, which freezes whatever async work a task leaves behind (awaited
 * fences, callbacks delivered to the worker's inbox) until the next task arrives.
 *
 * Threads: any attached thread; the pool belongs to it (submissions and destroy happen there).
 * Returns the {@link FencePool}. Throws EINVAL (not an Arena; bad options: an unknown key — not one
 * of piscina's pool options nor the scheduler's —, a value of the wrong type or range, atomics
 * other than 'async'; an error piscina's constructor throws, as `cause`), ENOMEM; nothing is left
 * behind on a throw.
 */
export function createFencePool(arena: Arena, options: FencePoolOptions): FencePool {
  arenaArg(arena, 'createFencePool');
  checkPoolOptions(options);
  return FencePool.make(arena, options);
}

/**
 * Watches every worker of a piscina pool, present and future (Arena.watch): a worker that dies has
 * its slot reaped — the job it ran ends with -ENODEV, its references are put, its locks released.
 * {@link createFencePool} does this itself; use it for a plain piscina pool whose tasks use the arena.
 * A plain pool given an ES module as `filename` loads it with require() (require(esm)), which on
 * Node 20 aborts the process when a worker is terminated mid-load; a fence pool's workers import() it.
 * Threads: the thread that owns the pool. Throws EINVAL (not an Arena; a pool without a `threads`
 * array or an `on` method), before anything is watched.
 */
export function watchPool(arena: Arena, pool: PoolLike): void {
  arenaArg(arena, 'watchPool');
  const p = pool as Partial<PoolLike> | null;
  if (p === null || typeof p !== 'object' || !isLiveObject(p) || !isArrayArg(p.threads) || typeof p.on !== 'function')
    throw Errors.invalid(`watchPool: pool must be a piscina pool (threads and on('workerCreate')), got ${describeValue(pool)}`);
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

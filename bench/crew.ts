/**
 * A crew: worker threads started once and reused for every timed cell of a multi-thread suite
 * (contention, alloc). Starting a worker costs tens of ms on a loaded 2-core machine, more than a
 * --quick cell lasts, so a suite that started fresh workers per cell spent most of its time
 * starting them.
 *
 * A cell runs on the first `n` workers of the crew:
 *   1. the parent posts each of them its part of the cell (`{ gen, cell }`);
 *   2. each sets up and counts itself in READY (./crew-protocol.ts), then waits until START is `gen`;
 *   3. the parent stores `gen` into START, sleeps for the cell's time, stores `gen` into STOP;
 *   4. each worker stops at its next check of STOP and posts its result and when it finished
 *      (`{ gen, result, endNs }`).
 * The cell's time runs from START to the last worker's finish: work a worker does between STOP and
 * noticing it (a batch of lock acquisitions that a stalled lock makes long) is inside the window
 * its count is divided by. Times are `process.hrtime.bigint()`, one clock for every thread.
 * The others stay idle in their event loop. Every wait is bounded: a worker that fails, exits or
 * never gets ready fails the cell (and the suite) instead of hanging it.
 *
 * A cell run `together` adds a start barrier in shared memory: woken by START, each worker counts
 * itself in ARRIVED and spins until every worker of the cell has, so that they start within about
 * a microsecond of each other instead of one futex wake-up apart (tens of µs, more when the
 * machine is loaded) — a cell that measures what N workers do at once starts with all N working.
 * The spin is for cells of no more workers than cores: a worker spinning for one that has no core
 * holds the core it needs. (A worker that dies at the barrier leaves the others spinning until the
 * parent, with no result within its bound, fails the cell and terminates the crew.)
 *
 * The worker side is {@link serveCells}; a suite's worker module calls it with its cell handler.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Arena } from '../src/index.js';
import { CTL_ARRIVED, CTL_READY, CTL_START, CTL_STOP, CTL_TOGETHER, CTL_WORDS } from './crew-protocol.js';
import { startWorker, type StartedWorker } from './util.js';

/** Bound on a worker's set-up for a cell and on its result after STOP. */
const CELL_TIMEOUT_MS = 20_000;

/** What every crew worker gets as workerData, plus the suite's own `data`. */
export interface CrewData<D> {
  ctl: SharedArrayBuffer;
  index: number;
  data: D;
}

type Message<R> = { gen: number; result?: R; endNs?: number; error?: string };

export class Crew<C, R> {
  private readonly ctl: Int32Array;
  private gen = 0;
  private failure: Error | undefined;
  /** A cell failed part-way: some workers may still be inside it (waiting for a START that never comes). */
  private broken = false;
  /** Per worker: the result it posts for the running generation. */
  private readonly waiting = new Map<number, { resolve: (r: [R, number]) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly members: StartedWorker<Message<R>>[],
    ctl: SharedArrayBuffer,
  ) {
    this.ctl = new Int32Array(ctl);
    members.forEach((w, i) => {
      w.worker.on('message', (m: Message<R>) => {
        const wait = this.waiting.get(i);
        if (wait === undefined) return;
        this.waiting.delete(i);
        if (m.error !== undefined) wait.reject(new Error(`crew worker ${i}: ${m.error}`));
        else if (m.gen !== this.gen) wait.reject(new Error(`crew worker ${i} answered cell ${m.gen} during cell ${this.gen}`));
        else wait.resolve([m.result as R, m.endNs!]);
      });
      const fail = (e: Error) => {
        this.failure ??= e;
        for (const [, wait] of this.waiting) wait.reject(e);
        this.waiting.clear();
      };
      w.worker.on('error', (e) => fail(new Error(`crew worker ${i} failed: ${e.message}`)));
      w.exited.then((code) => fail(new Error(`crew worker ${i} exited with code ${code}`)));
    });
  }

  /**
   * Starts `size` workers on `url` (a module that calls {@link serveCells}), each given `data`, and
   * watched by `arena` (a worker that dies is reaped: its locks are released). Resolves once every
   * worker is online.
   */
  static async start<C, R, D>(url: URL, size: number, data: D, arena: Arena): Promise<Crew<C, R>> {
    const ctl = new SharedArrayBuffer(CTL_WORDS * 4);
    const members = Array.from({ length: size }, (_, index) => startWorker<Message<R>>(url, { ctl, index, data } satisfies CrewData<D>));
    for (const w of members) arena.watch(w.worker);
    await Promise.all(members.map((w) => w.online));
    return new Crew<C, R>(members, ctl);
  }

  get size(): number {
    return this.members.length;
  }

  /**
   * Runs one cell for `ms` on the first `parts.length` workers, worker i getting `parts[i]`;
   * `together`: behind the start barrier (see the header). Returns each worker's result and the
   * time from START to the last worker's finish. Throws when a worker fails, exits, or does not get
   * ready or answer within a bound.
   */
  async run(parts: C[], ms: number, together = false): Promise<{ results: R[]; elapsedMs: number }> {
    try {
      return await this.runCell(parts, ms, together);
    } catch (e) {
      this.broken = true;
      throw e;
    }
  }

  private async runCell(parts: C[], ms: number, together: boolean): Promise<{ results: R[]; elapsedMs: number }> {
    if (this.failure) throw this.failure;
    if (parts.length > this.members.length) throw new Error(`a cell of ${parts.length} workers in a crew of ${this.members.length}`);
    const gen = ++this.gen;
    const c = this.ctl;
    Atomics.store(c, CTL_READY, 0);
    Atomics.store(c, CTL_ARRIVED, 0);
    Atomics.store(c, CTL_TOGETHER, together ? parts.length : 0);
    const answers = parts.map((_, i) => new Promise<[R, number]>((resolve, reject) => this.waiting.set(i, { resolve, reject })));
    // A worker that failed rejects every answer; until they are awaited, no unhandled rejection.
    for (const a of answers) a.catch(() => {});
    parts.forEach((cell, i) => this.members[i].worker.postMessage({ gen, cell }));
    const readyBy = performance.now() + CELL_TIMEOUT_MS;
    while (Atomics.load(c, CTL_READY) < parts.length) {
      if (this.failure) throw this.failure;
      // A worker may post an error instead of getting ready: its answer is rejected by now.
      const early = await Promise.race([Promise.race(answers).then(() => undefined, (e: Error) => e), sleep(2).then(() => undefined)]);
      if (early) throw early;
      if (performance.now() > readyBy) throw new Error(`crew: ${parts.length} workers did not get ready within ${CELL_TIMEOUT_MS} ms`);
    }
    const startNs = Number(process.hrtime.bigint());
    Atomics.store(c, CTL_START, gen);
    Atomics.notify(c, CTL_START);
    await sleep(ms);
    Atomics.store(c, CTL_STOP, gen);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`crew: no result within ${CELL_TIMEOUT_MS} ms of STOP`)), CELL_TIMEOUT_MS);
    });
    try {
      const done = await Promise.race([Promise.all(answers), late]);
      return { results: done.map(([r]) => r), elapsedMs: (Math.max(...done.map(([, end]) => end)) - startNs) / 1e6 };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Asks every worker to exit and waits until they have; after a failed cell (workers may be stuck
   * inside it) terminates them instead.
   */
  async close(): Promise<void> {
    if (this.broken || this.failure) {
      await Promise.all(this.members.map((w) => w.worker.terminate()));
      return;
    }
    for (const w of this.members) w.worker.postMessage({ gen: -1 });
    await Promise.all(this.members.map((w) => w.exited));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A worker's handle on the running cell. */
export interface CellControl {
  /**
   * Counts this worker ready and blocks until the parent starts the cell (and, in a cell run
   * `together`, until every worker of the cell is past the start barrier).
   */
  ready(): void;
  /** True once the parent stopped the cell (an Atomics load: check it every few iterations). */
  stopped(): boolean;
}

/**
 * The worker side of a crew: runs `handler` for every cell posted to this worker and posts its
 * result (or its error). `handler` sets up, calls `ctl.ready()`, works until `ctl.stopped()`, and
 * returns its result; `onClose` runs when the parent closes the crew. Returns this worker's
 * {@link CrewData}.
 */
export function serveCells<C, R, D>(handler: (cell: C, ctl: CellControl, data: D) => R, onClose: () => void = () => {}): CrewData<D> {
  const wd = workerData as CrewData<D>;
  const c = new Int32Array(wd.ctl);
  parentPort!.on('message', ({ gen, cell }: { gen: number; cell: C }) => {
    if (gen < 0) {
      onClose();
      parentPort!.close();
      return;
    }
    const ctl: CellControl = {
      ready() {
        Atomics.add(c, CTL_READY, 1);
        for (;;) {
          const start = Atomics.load(c, CTL_START);
          if (start === gen) break;
          Atomics.wait(c, CTL_START, start, 1000);
        }
        // TOGETHER and ARRIVED were stored before START: this worker, past START, sees this cell's.
        const together = Atomics.load(c, CTL_TOGETHER);
        if (together === 0) return;
        Atomics.add(c, CTL_ARRIVED, 1);
        while (Atomics.load(c, CTL_ARRIVED) < together);
      },
      stopped: () => Atomics.load(c, CTL_STOP) === gen,
    };
    try {
      const result = handler(cell, ctl, wd.data);
      parentPort!.postMessage({ gen, result, endNs: Number(process.hrtime.bigint()) });
    } catch (e) {
      parentPort!.postMessage({ gen, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  });
  return wd;
}

/**
 * The parent's side of the engine: a crew of exporter and importer workers on one arena and one
 * board. It spawns workers (each watched by the arena, so a dead one is reaped whatever the cause),
 * recovers the board after every exit (see recovery.ts), kills and replaces workers on request,
 * and sweeps the ring at the end. The CLI's demo and stress and the thread suites all run on it.
 * Threads: the parent that owns the arena (one crew per arena and board; not shared between threads).
 */
import { Worker } from 'node:worker_threads';
import type { Arena, UseAfterFreeReport } from '../src/index.js';
import {
  C, CARRIER_FD, CARRIER_HANDLE, CARRIER_TOKEN, EX_CB_RAN, EX_DONE, EX_LEFT, EX_PUBLISHED, EXF_DRIVER, MAX_WORKERS, createBoard, guardUndo, ringChanged,
  type Board,
} from './board.js';
import { ENGINE_DEFAULTS, type EngineOptions, type EngineWorkerData, type Role } from './engine.js';
import { recoverExporter, recoverImporter, sweepRing } from './recovery.js';
import { RingExporter } from './ring.js';

export interface CrewOptions extends Partial<EngineOptions> {
  /** Seeds every worker's PRNG (with its index): a run replays from its seed. */
  seed: string;
  /**
   * How slots carry fences: hand-over tokens (default: `fence.share()` → `Fence.receive`, tracked
   * on both sides), parked references, or sync-file fds.
   */
  carrier?: 'handle' | 'fd' | 'token';
  /** Directory of the compiled exporter.js and importer.js (default: this module's). */
  workerDir?: URL;
}

/** One worker of the crew. */
export interface Member {
  readonly worker: Worker;
  readonly role: Role;
  /** Its index on the board. */
  readonly index: number;
  /** Its arena thread slot, once it said 'ready' (-1 before). */
  slot: number;
  /** Resolves with its arena thread slot once it attached. */
  readonly ready: Promise<number>;
  /** Resolves with its exit code once it exited and the board was recovered after it. */
  readonly exited: Promise<number>;
}

/** Decides a killed worker's replacement from the operations it finished (exporters): its options, or none. */
export type Replacement = (done: number) => Partial<EngineOptions> | undefined;

export class Crew {
  readonly arena: Arena;
  readonly board: Board;
  readonly options: EngineOptions;
  readonly running = new Set<Member>();
  /** Signal→wake latencies (µs) the importers measured, one array per importer. */
  readonly latencies: Float64Array[] = [];
  /** Unexpected errors of workers, as "role index: message". */
  readonly errors: string[] = [];
  /** Stale accesses the sanitizer stopped or counted in the workers (their first reports). */
  readonly uafReports: UseAfterFreeReport[] = [];
  kills = 0;
  exporterKills = 0;
  private readonly seed: string;
  private readonly workerDir: URL;
  private readonly boardBuffer: SharedArrayBuffer;
  private readonly guardBuffer: SharedArrayBuffer;
  private nextIndex = 1;
  /** Board indexes of exited workers, reused by later ones (after their recovery). */
  private readonly freeIndices: number[] = [];

  constructor(arena: Arena, options: CrewOptions) {
    const { seed, carrier, workerDir, ...engine } = options;
    this.arena = arena;
    this.seed = seed;
    this.workerDir = workerDir ?? new URL('./', import.meta.url);
    this.options = { ...ENGINE_DEFAULTS, ...engine };
    const { board, buffer, guard } = createBoard(arena.buffer.byteLength);
    this.board = board;
    this.boardBuffer = buffer;
    this.guardBuffer = guard;
    Atomics.store(board.i32, C.CARRIER, carrier === 'fd' ? CARRIER_FD : carrier === 'handle' ? CARRIER_HANDLE : CARRIER_TOKEN);
  }

  /** Counter or word `c` of the board. */
  count(c: number): number {
    return Atomics.load(this.board.i32, c);
  }

  /** Per-worker word: base (EX_DONE, EX_PUBLISHED, EX_CB_RAN, …) of worker `index`. */
  word(base: number, index: number): number {
    return Atomics.load(this.board.i32, base + index);
  }

  /** Asks every worker to stop (they finish the fence in hand, exporters their queued operations). */
  stop(): void {
    Atomics.store(this.board.i32, C.STOP, 1);
    ringChanged(this.board);
  }

  /**
   * While on, a worker inside a watched critical section stays there once its time is up (counted
   * in C.HELD): lets the caller act while an importer holds a lock, at a known point.
   */
  holdSections(on: boolean): void {
    Atomics.store(this.board.i32, C.HOLD, on ? 1 : 0);
    Atomics.notify(this.board.i32, C.HOLD);
  }

  /** Terminates every running worker and waits for their recovery (a test's clean-up). */
  async terminateAll(): Promise<void> {
    await Promise.all([...this.running].map((m) => m.worker.terminate()));
    await this.settled();
  }

  /** Starts a worker with the crew's options and `overrides`. Throws RangeError past MAX_WORKERS. */
  spawn(role: Role, overrides: Partial<EngineOptions> = {}): Member {
    const index = this.freeIndices.pop() ?? this.nextIndex++;
    if (index >= MAX_WORKERS) throw new RangeError(`more than ${MAX_WORKERS - 1} workers at once`);
    const b32 = this.board.i32;
    for (const base of [EX_DONE, EX_PUBLISHED, EX_CB_RAN, EX_LEFT]) b32[base + index] = 0;
    this.board.f64[EXF_DRIVER + index] = 0;
    if (role === 'exporter') Atomics.add(b32, C.EXPORTERS_LEFT, 1);
    const workerData: EngineWorkerData = {
      ...this.options, ...overrides, role, index, arena: this.arena.buffer, board: this.boardBuffer, guard: this.guardBuffer,
      seed: `${this.seed}:${index}`,
    };
    const worker = new Worker(new URL(`${role}.js`, this.workerDir), { workerData });
    // 'exit' listeners run in order: the guard of a worker that died inside a critical section is
    // undone before the reaper releases its locks (a waiter then enters an empty guard); the board
    // is recovered after the reap (its operations have ended by then).
    worker.once('exit', () => guardUndo(this.board, index));
    this.arena.watch(worker);
    let attached: (slot: number) => void = () => {};
    const m: Member = {
      worker, role, index, slot: -1,
      ready: new Promise((resolve) => (attached = resolve)),
      exited: new Promise((resolve) => {
        worker.once('exit', (code) => {
          try {
            if (role === 'importer') recoverImporter(this.arena, this.board, index);
            else recoverExporter(this.arena, this.board, index);
          } catch (e) {
            this.errors.push(`recovery after ${role} ${index}: ${e instanceof Error ? e.message : String(e)}`);
          }
          this.running.delete(m);
          this.freeIndices.push(index);
          resolve(code);
        });
      }),
    };
    worker.on('message', (msg: { type: string; slot?: number; latencies?: Float64Array; uafReports?: UseAfterFreeReport[]; message?: string }) => {
      if (msg.type === 'ready') {
        m.slot = msg.slot!;
        attached(m.slot);
      } else if (msg.type === 'done') {
        if (msg.latencies) this.latencies.push(msg.latencies);
        if (msg.uafReports) this.uafReports.push(...msg.uafReports);
      } else if (msg.type === 'error' || msg.type === 'undetached') {
        this.errors.push(`${role} ${index}: ${msg.type === 'undetached' ? 'could not detach: ' : ''}${msg.message}`);
      }
    });
    worker.on('error', (e) => this.errors.push(`${role} ${index}: ${e.message}`));
    this.running.add(m);
    return m;
  }

  /**
   * Terminates `m` (no code of it runs), waits for its exit and the recovery after it, then starts
   * the replacement `replace` asks for. Returns the replacement, if any.
   */
  async kill(m: Member, replace?: Replacement): Promise<Member | undefined> {
    const b32 = this.board.i32;
    // An exporter's replacement is counted in before the dead one goes out: importers stop at zero.
    const reserve = m.role === 'exporter' && replace !== undefined;
    if (reserve) Atomics.add(b32, C.EXPORTERS_LEFT, 1);
    await m.worker.terminate();
    await m.exited;
    this.kills++;
    if (m.role === 'exporter') this.exporterKills++;
    const done = m.role === 'exporter' ? b32[EX_DONE + m.index] : 0;
    const overrides = replace?.(done);
    const next = overrides ? this.spawn(m.role, overrides) : undefined;
    if (reserve) {
      Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
      ringChanged(this.board);
    }
    return next;
  }

  /** Waits until every worker has exited (and the board was recovered after each). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running].map((m) => m.exited));
  }

  /** Polls `done` every few ms until it holds; rejects after `timeoutMs` naming `what`. */
  async until(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const by = performance.now() + timeoutMs;
    while (!done()) {
      if (performance.now() > by) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /**
   * The parent as an exporter (board index 0): it hands fences to the importers itself through the
   * ring's own steps. Counted in EXPORTERS_LEFT until it calls `leave()`.
   */
  parentExporter(): RingExporter {
    this.board.i32[EX_LEFT] = 0;
    Atomics.add(this.board.i32, C.EXPORTERS_LEFT, 1);
    return new RingExporter(this.arena, this.board, 0);
  }

  /** Once every worker is gone: drops what the ring still carries. Returns the slots emptied. */
  sweep(): number {
    return sweepRing(this.arena, this.board);
  }
}

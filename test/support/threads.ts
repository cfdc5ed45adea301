/**
 * The engine's exporters × importers as the thread suites run them: one crew (workers/crew) of N
 * exporter workers, each on a driver the main thread created (so that its counters can be read
 * after the worker is gone), and M importer workers, handing fences over the board's ring.
 * The workers run compiled (dist/workers/), like every worker of the suites.
 */
import { Arena, Driver, type LockMode } from '../../src/index.js';
import { Crew, type Member } from '../../workers/crew.js';
import type { EngineOptions, WaitMode } from '../../workers/engine.js';

/** Where the compiled engine workers are. */
export const ENGINE_DIR = new URL('../../dist/workers/', import.meta.url);

export interface Scenario {
  arena: Arena;
  crew: Crew;
  drivers: Driver[];
  exporters: Member[];
  importers: Member[];
}

export interface ScenarioOptions {
  /** Exporters, importers, operations per exporter. */
  n: number;
  m: number;
  k: number;
  seed: string;
  carrier?: 'handle' | 'fd' | 'token';
  lockMode?: LockMode;
  /** Options of every worker (over the defaults below). */
  engine?: Partial<EngineOptions>;
  /** Options of exporter `e` only. */
  exporter?: (e: number) => Partial<EngineOptions>;
}

const WAIT_MODES: WaitMode[] = ['sync', 'async', 'mixed'];

/**
 * Starts everything. Defaults: every exporter pipelines 6 operations of 0–300 µs, executes each once
 * an importer took its fence (so that commands meet operations not yet run, however the threads
 * are scheduled) and adds its own callback to each out-fence; every importer adds a callback to each fence, removes 20 % again,
 * cancels or deletes 30 % of the operations, holds each fence up to 3 ms; importers wait sync,
 * async and mixed in turn.
 */
export function startScenario(o: ScenarioOptions): Scenario {
  const arena = Arena.create({ bytes: 16 << 20, maxThreads: 32 });
  const drivers = Array.from({ length: o.n }, () => Driver.create(arena, { lockMode: o.lockMode ?? 'inline', ringSize: 64 }));
  const crew = new Crew(arena, {
    seed: o.seed,
    carrier: o.carrier ?? 'fd',
    workerDir: ENGINE_DIR,
    depth: 6,
    awaitTake: true,
    workUs: 150,
    jitter: 1,
    exporterCallbacks: true,
    callbackRate: 1,
    removeRate: 0.2,
    commandRate: 0.3,
    holdMaxMs: 3,
    waitTimeoutMs: 20_000,
    lockTimeoutMs: 5000,
    ...o.engine,
  });
  const exporters = drivers.map((d, e) => crew.spawn('exporter', { driver: d.handle, ops: o.k, ...o.exporter?.(e) }));
  const importers = Array.from({ length: o.m }, (_, j) => crew.spawn('importer', { waitMode: WAIT_MODES[j % 3] }));
  return { arena, crew, drivers, exporters, importers };
}

/** Terminates whatever still runs (after a failed test). */
export async function stopScenario(s: Scenario | undefined): Promise<void> {
  if (s) await s.crew.terminateAll();
}

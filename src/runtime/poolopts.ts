/**
 * A fence pool's options (createFencePool in pool.ts): checked before anything is created — the
 * scheduler's own, the ones it forwards to piscina (types, ranges, unknown keys against piscina's
 * documented pool options) — and piscina's construction, whose errors come back as FenceErrors.
 */
import { createRequire } from 'node:module';
import { Errors, describeValue, optionsArg, isArrayArg } from '../errors.js';

/**
 * {@link createFencePool}'s options: piscina's pool options (maxThreads, minThreads, idleTimeout,
 * workerData, resourceLimits, … passed through as they are), less `atomics` (always `'async'`),
 * plus the scheduler's.
 */
export interface FencePoolOptions {
  /** piscina's other pool options, passed through. */
  [option: string]: unknown;
  /**
   * The task module (compiled JS: a path or file: URL) whose exports are `fenceTask(...)` functions.
   * The workers load it with import(): they run with require(esm) off (see `execArgv`).
   */
  filename: string;
  /**
   * Node options of the workers (piscina's option; default this process's), to which the pool adds
   * `--no-experimental-require-module`: piscina's require() of an ES module task module aborts the
   * process on Node 20 when a worker is terminated while it loads, so the module is import()ed
   * instead. Code in the pool's workers cannot require() ES modules (it import()s them).
   */
  execArgv?: string[];
  /** Always `'async'`; anything else is refused (EINVAL). */
  atomics?: 'async';
  /**
   * How long (µs) a pull loop whose queue ran dry spins before it sleeps (default 50). A job queued
   * within that time starts in well under a microsecond instead of after a futex wake-up; the price
   * is that much spinning per lull. A loop whose jobs keep coming soon after it slept spins longer,
   * 1.5× that interval, up to 16 × lingerUs (0 stays 0).
   */
  lingerUs?: number;
  /**
   * How long (ms) a pull loop sleeps without work before it ends (default 250). While it sleeps, a
   * queued job wakes it through shared memory; once it ended, the next job needs a message from the
   * main thread (piscina's) to start a loop again. A sleeping loop is a running piscina task: it
   * keeps the process alive until it ends or the pool is destroyed.
   */
  idleMs?: number;
}

/** Loads piscina (an optional peer dependency) on first use; throws EINVAL naming the fix when absent. */
function loadPiscina(): new (options: Record<string, unknown>) => unknown {
  try {
    return (createRequire(import.meta.url)('piscina') as { Piscina: new (options: Record<string, unknown>) => unknown }).Piscina;
  } catch {
    throw Errors.invalid('createFencePool needs piscina, an optional peer dependency of fencelab: npm install piscina');
  }
}

const NO_REQUIRE_ESM = '--no-experimental-require-module';

/**
 * The pool workers' Node options: the caller's (piscina's default: this process's), with
 * require(esm) off, so that the task module is loaded one way only, with import().
 *
 * Why: piscina loads its `filename` with require() first and import() only when that throws. On
 * Node 20.19+ require() of an ES module (require(esm)) links and instantiates the whole graph
 * synchronously, and a worker terminated inside that instantiation (pool.destroy() while a worker
 * still loads, piscina replacing a worker) aborts the whole process on Node 20:
 * ModuleWrap::InstantiateSync then asks V8 whether the graph is async, of a module whose
 * instantiation the termination cut short — "FATAL ERROR: v8::Module::IsGraphAsync … must be used
 * on an instantiated module" (seen in test runs; reproduced in 5 of 6 runs of 100–150 pools
 * destroyed at random while their workers loaded). With require(esm) off, piscina's require()
 * throws ERR_REQUIRE_ESM before it compiles anything and piscina import()s the module, whose
 * asynchronous instantiation a termination ends cleanly (no abort in 10 such runs); named tasks
 * (task.ts) import() the same URL. It also rules out require(esm) racing an import() of the same
 * graph (nodejs/node#57126). The price: code in the pool's workers cannot require() an ES module
 * (ERR_REQUIRE_ESM: import() it). A Node that no longer knows the flag gets the options as they are.
 */
function workerExecArgv(execArgv: string[] | undefined): string[] {
  const base = execArgv ?? process.execArgv;
  return process.allowedNodeEnvironmentFlags.has(NO_REQUIRE_ESM) ? [...base, NO_REQUIRE_ESM] : [...base];
}

/** piscina's pool options (piscina 5's `Options`), passed through as they are. */
const PISCINA_OPTIONS = [
  'name', 'minThreads', 'maxThreads', 'idleTimeout', 'maxQueue', 'concurrentTasksPerWorker', 'resourceLimits', 'argv', 'env',
  'workerData', 'taskQueue', 'niceIncrement', 'trackUnmanagedFds', 'closeTimeout', 'recordTiming', 'stricterFIFO', 'loadBalancer',
  'workerHistogram',
] as const;
const KNOWN = ['filename', 'execArgv', 'atomics', 'lingerUs', 'idleMs', ...PISCINA_OPTIONS];

/** EINVAL naming option `key` of createFencePool, which must be `what`, with the value it got. */
function bad(key: string, what: string, value: unknown): Error {
  return Errors.invalid(`createFencePool: ${key} must be ${what}, got ${describeValue(value)}`);
}

/** Throws EINVAL unless `o[key]` is undefined or an integer ≥ `min`. */
function checkInt(o: Record<string, unknown>, key: string, min: number): void {
  const v = o[key];
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min)) throw bad(key, `an integer ≥ ${min}`, v);
}

/** Throws EINVAL unless `o[key]` is undefined or a number ≥ 0 (`Infinity` too when `infinite`). */
function checkMs(o: Record<string, unknown>, key: string, infinite: boolean): void {
  const v = o[key];
  if (v === undefined) return;
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0 || (!infinite && !Number.isFinite(v)))
    throw bad(key, infinite ? 'a number ≥ 0' : 'a finite number ≥ 0', v);
}

/**
 * Checks createFencePool's `options` (before anything is created): an object with the task module
 * as `filename`, no key but the scheduler's and piscina's, and the ones fencelab reads or that
 * piscina would refuse with its own untyped errors of the right type and range. Returns them.
 * Threads: any. Throws EINVAL naming the option.
 */
export function checkPoolOptions(options: FencePoolOptions): FencePoolOptions {
  if (options === undefined) throw Errors.invalid('createFencePool needs options with the task module as filename');
  const o = optionsArg(options as Record<string, unknown>, 'createFencePool', KNOWN);
  if (typeof o.filename !== 'string' || o.filename === '') throw bad('filename', 'the task module (a path or file: URL)', o.filename);
  if (o.atomics !== undefined && o.atomics !== 'async') throw bad('atomics', "'async' (a fence pool's tasks await in their workers)", o.atomics);
  checkMs(o, 'lingerUs', false);
  checkMs(o, 'idleMs', false);
  const execArgv = o.execArgv;
  if (execArgv !== undefined && (!isArrayArg(execArgv) || execArgv.some((a) => typeof a !== 'string'))) throw bad('execArgv', 'an array of strings', execArgv);
  checkInt(o, 'minThreads', 0);
  checkInt(o, 'maxThreads', 1);
  checkInt(o, 'concurrentTasksPerWorker', 1);
  if (typeof o.minThreads === 'number' && typeof o.maxThreads === 'number' && o.minThreads > o.maxThreads)
    throw Errors.invalid(`createFencePool: minThreads (${o.minThreads}) exceeds maxThreads (${o.maxThreads})`);
  checkMs(o, 'idleTimeout', true);
  checkMs(o, 'closeTimeout', true);
  if (o.maxQueue !== undefined && o.maxQueue !== 'auto') checkMs(o, 'maxQueue', true);
  if (o.name !== undefined && typeof o.name !== 'string') throw bad('name', 'a string', o.name);
  return options;
}

/**
 * The piscina pool of checked `options` (with atomics 'async' and the workers' Node options of
 * {@link workerExecArgv}). Threads: the pool's. Throws EINVAL: piscina missing, or what piscina's
 * constructor threw (a TypeError, a RangeError, a DataCloneError of workerData) as its `cause`.
 */
export function startPiscina(options: FencePoolOptions): unknown {
  const Piscina = loadPiscina();
  const { lingerUs: _l, idleMs: _i, execArgv, ...rest } = options;
  try {
    return new Piscina({ ...rest, atomics: 'async', execArgv: workerExecArgv(execArgv) });
  } catch (e) {
    const err = Errors.invalid(`createFencePool: piscina refused the options: ${e instanceof Error ? e.message : describeValue(e)}`);
    Object.defineProperty(err, 'cause', { value: e, configurable: true, writable: true });
    throw err;
  }
}

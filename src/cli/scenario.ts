/**
 * Runs the seed scenario in real workers and measures it: the engine behind `fencelab demo` and
 * `fencelab stress`. The main thread owns the arena and the board, spawns exporters and importers,
 * optionally kills importers at random (seeded) and recovers after them, and at the end checks
 * every invariant and the arena.
 */
import { Worker } from 'node:worker_threads';
import seedrandom from 'seedrandom';
// Through the package entry: it also registers the runtime's reap hooks (inbox, ledger, fds).
import { Arena, Fence } from '../index.js';
import { C, bump, DONE, EMPTY, HANDLES_F64, PUBLISHED, RING, RING_SLOTS, S_STATE, S_STRIDE, takenBy, WORKER_WORDS, BOARD_BYTES, MAX_WORKERS, boardOf, ringChanged } from './board.js';
import type { LockKind } from '../arena/layout.js';
import type { LockMode } from './options.js';

export interface ScenarioConfig {
  lockMode: LockMode;
  sanitize: boolean;
  lockKind: LockKind;
  exporters: number;
  importers: number;
  /** Operations per exporter (0: run for durationMs). */
  opsPerExporter: number;
  durationMs: number;
  workUs: number;
  csUs: number;
  jitter: number;
  cancelRate: number;
  callbackRate: number;
  /** Importer kills per second (seeded Poisson-ish schedule); killed importers are replaced. */
  killRate: number;
  seed: string;
  arenaBytes: number;
  waitTimeoutMs: number;
  lockTimeoutMs: number;
  /** Fences published but not yet consumed, across exporters (1–256). */
  maxInflight: number;
  /** Ask workers to stop after this long (default: generous, from the run's size). */
  maxRunMs?: number;
  /** Stop the run as soon as a violation counter moves (stress). */
  stopOnViolation?: boolean;
  onProgress?: (p: { ops: number; elapsedMs: number; kills: number }) => void;
}

export interface ScenarioResult {
  config: Omit<ScenarioConfig, 'onProgress'>;
  ops: number;
  fences: number;
  signaled: number;
  cancelled: number;
  staleAccesses: number;
  uafCaught: number;
  meViolations: number;
  hangs: number;
  lockErrors: number;
  ownerDied: number;
  callbacks: { added: number; ran: number; removed: number; late: number; double: number };
  /** Waits that began before the signal (the latency samples). */
  wakes: number;
  doubleSignals: number;
  statusMismatches: number;
  workerErrors: string[];
  kills: number;
  leakedBytes: number;
  checkProblems: string[];
  elapsedMs: number;
  opsPerSec: number;
  wakeP50Us: number | undefined;
  wakeP99Us: number | undefined;
  /** Invariant violations in plain words (empty when clean). */
  violations: string[];
}

/** How long workers get to finish after the stop flag before they count as hung. */
const STOP_GRACE_MS = 5000;

const WORKER_URL = new URL('../../workers/seed.js', import.meta.url);

function percentile(sorted: Float64Array, p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

interface Running {
  worker: Worker;
  role: 'exporter' | 'importer';
  index: number;
  slot: number;
  exited: Promise<number>;
}

export async function runScenario(cfg: ScenarioConfig): Promise<ScenarioResult> {
  const { onProgress, ...config } = cfg;
  const arena = Arena.create({ bytes: cfg.arenaBytes, sanitize: cfg.sanitize ? 'count' : false, lockKind: cfg.lockKind, maxThreads: 64 });
  const boardBuf = new SharedArrayBuffer(BOARD_BYTES);
  const guardBuf = new SharedArrayBuffer(arena.buffer.byteLength);
  const board = boardOf(boardBuf, guardBuf);
  const b32 = board.i32;
  const rng = seedrandom(`${cfg.seed}:main`);
  const latencies: Float64Array[] = [];
  const workerErrors: string[] = [];
  const running = new Set<Running>();
  let nextIndex = 1;
  const freeIndices: number[] = []; // worker words of exited workers, reused by replacements
  let kills = 0;

  const spawn = (role: 'exporter' | 'importer'): Running => {
    const index = freeIndices.pop() ?? nextIndex++;
    if (index >= MAX_WORKERS) throw new RangeError(`more than ${MAX_WORKERS - 1} workers at once`);
    const worker = new Worker(WORKER_URL, {
      workerData: {
        role, index, arena: arena.buffer, board: boardBuf, guard: guardBuf, lockMode: cfg.lockMode,
        ops: cfg.opsPerExporter, workUs: cfg.workUs, csUs: cfg.csUs,
        jitter: cfg.jitter, cancelRate: cfg.cancelRate, callbackRate: cfg.callbackRate, waitTimeoutMs: cfg.waitTimeoutMs,
        lockTimeoutMs: cfg.lockTimeoutMs, maxInflight: cfg.maxInflight, seed: `${cfg.seed}:${index}`,
      },
    });
    const r: Running = { worker, role, index, slot: -1, exited: Promise.resolve(0) };
    r.exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.on('message', (m: { type: string; slot?: number; latencies?: Float64Array; message?: string }) => {
      if (m.type === 'ready') r.slot = m.slot!;
      else if (m.type === 'done' && m.latencies) latencies.push(m.latencies);
      else if (m.type === 'error') workerErrors.push(`${role} ${index}: ${m.message}`);
    });
    worker.on('error', (e) => workerErrors.push(`${role} ${index}: ${e.message}`));
    running.add(r);
    // The kill path recovers (reads the worker's word) before it spawns the replacement.
    void r.exited.then(() => {
      running.delete(r);
      freeIndices.push(index);
    });
    return r;
  };

  /** After an importer was killed: undo its guard, release what it held, hand its fences back. */
  const recover = (r: Running): void => {
    const inGuard = Atomics.exchange(b32, WORKER_WORDS + r.index, 0);
    if (inGuard) Atomics.sub(board.guard, inGuard, 1);
    if (r.slot >= 0) {
      arena.reapSlot(r.slot); // locks it held: released and marked owner-died
      for (let i = 0; i < RING_SLOTS; i++) {
        const base = RING + i * S_STRIDE;
        if (Atomics.load(b32, base + S_STATE) === takenBy(r.slot + 1)) {
          // Its reference dies with it: drop it on its behalf, like the kernel closing a dead process's fds.
          Fence.fromHandle(arena, board.f64[HANDLES_F64 + i]).put();
          Atomics.store(b32, base + S_STATE, EMPTY);
          Atomics.sub(b32, C.INFLIGHT, 1);
        }
      }
      ringChanged(board);
    }
  };

  Atomics.store(b32, C.EXPORTERS_LEFT, cfg.exporters);
  const started = performance.now();
  for (let i = 0; i < cfg.exporters; i++) spawn('exporter');
  for (let i = 0; i < cfg.importers; i++) spawn('importer');

  const timed = cfg.opsPerExporter === 0;
  // Bounds: the whole run, and the grace workers get to finish once asked to stop. A worker still
  // running past either is hung (a lock that never comes free) and is terminated.
  const hardLimit = cfg.maxRunMs ?? (timed ? cfg.durationMs : 0) + 60_000 + cfg.opsPerExporter * cfg.exporters * 2;
  let stopSeenAt = Infinity;
  let nextKill = cfg.killRate > 0 ? started + (-Math.log(1 - rng()) / cfg.killRate) * 1000 : Infinity;
  while (Atomics.load(b32, C.EXPORTERS_LEFT) > 0 || [...running].some((r) => r.role === 'importer')) {
    await new Promise((res) => setTimeout(res, 20));
    const now = performance.now();
    const elapsed = now - started;
    onProgress?.({ ops: Atomics.load(b32, C.OPS), elapsedMs: elapsed, kills });
    if (timed && elapsed >= cfg.durationMs) Atomics.store(b32, C.STOP, 1);
    if (cfg.stopOnViolation && Atomics.load(b32, C.STOP) === 0 && violationCounters(b32, arena) > 0) {
      workerErrors.push(`violation seen after ${Math.round(elapsed)} ms, ${Atomics.load(b32, C.OPS)} operations: run stopped`);
      Atomics.store(b32, C.STOP, 1);
    }
    if (Atomics.load(b32, C.STOP) !== 0 && stopSeenAt === Infinity) stopSeenAt = elapsed;
    if (elapsed > hardLimit && Atomics.load(b32, C.STOP) === 0) {
      workerErrors.push(`run exceeded its ${Math.round(hardLimit)} ms bound: asked to stop`);
      Atomics.store(b32, C.STOP, 1);
    }
    if (elapsed > stopSeenAt + STOP_GRACE_MS) {
      workerErrors.push(`${running.size} worker(s) still running ${STOP_GRACE_MS} ms after the stop: terminated (hang)`);
      for (const r of running) {
        await r.worker.terminate();
        await r.exited;
        if (r.role === 'importer') recover(r);
        else if (r.slot >= 0) arena.reapSlot(r.slot);
      }
      bump(board, C.HANGS);
      break;
    }
    if (now >= nextKill && Atomics.load(b32, C.STOP) === 0) {
      nextKill = now + (-Math.log(1 - rng()) / cfg.killRate) * 1000;
      const victims = [...running].filter((r) => r.role === 'importer' && r.slot >= 0);
      if (victims.length > 0 && Atomics.load(b32, C.EXPORTERS_LEFT) > 0) {
        const v = victims[Math.floor(rng() * victims.length)];
        await v.worker.terminate();
        await v.exited;
        recover(v);
        kills++;
        spawn('importer');
      }
    }
  }
  await Promise.all([...running].map((r) => r.exited));
  const elapsedMs = performance.now() - started;

  // Fences never taken (no importer left) or handed back: drop the importer's reference they carry.
  for (let i = 0; i < RING_SLOTS; i++) {
    const base = RING + i * S_STRIDE;
    const state = Atomics.load(b32, base + S_STATE);
    if (state === PUBLISHED || state === DONE) {
      Fence.fromHandle(arena, board.f64[HANDLES_F64 + i]).put();
      Atomics.store(b32, base + S_STATE, EMPTY);
      if (state === PUBLISHED) Atomics.sub(b32, C.INFLIGHT, 1);
    }
  }
  const report = arena.check();
  const all = new Float64Array(latencies.reduce((n, l) => n + l.length, 0));
  let at = 0;
  for (const l of latencies) {
    all.set(l, at);
    at += l.length;
  }
  all.sort();
  const get = (c: number) => Atomics.load(b32, c);
  const result: ScenarioResult = {
    config,
    ops: get(C.OPS),
    fences: get(C.FENCES),
    signaled: get(C.SIGNALS),
    cancelled: get(C.CANCELLED),
    staleAccesses: get(C.STALE),
    uafCaught: arena.uafCount,
    meViolations: get(C.ME_VIOLATIONS),
    hangs: get(C.HANGS),
    lockErrors: get(C.LOCK_ERRORS),
    ownerDied: get(C.OWNER_DIED),
    callbacks: { added: get(C.CB_ADDED), ran: get(C.CB_RAN), removed: get(C.CB_REMOVED), late: get(C.CB_LATE), double: get(C.CB_DOUBLE) },
    wakes: get(C.WAKES),
    doubleSignals: get(C.DOUBLE_SIGNALS),
    statusMismatches: get(C.STATUS_MISMATCH),
    workerErrors,
    kills,
    leakedBytes: report.leakedBytes,
    checkProblems: report.problems,
    elapsedMs,
    opsPerSec: (get(C.OPS) * 1000) / elapsedMs,
    wakeP50Us: percentile(all, 0.5),
    wakeP99Us: percentile(all, 0.99),
    violations: [],
  };
  result.violations = violationsOf(result);
  arena.detach();
  return result;
}

/** Sum of the counters that may never move in a clean run. */
function violationCounters(b32: Int32Array, arena: Arena): number {
  return (
    Atomics.load(b32, C.DOUBLE_SIGNALS) + Atomics.load(b32, C.ME_VIOLATIONS) + Atomics.load(b32, C.CB_DOUBLE) +
    Atomics.load(b32, C.STATUS_MISMATCH) + Atomics.load(b32, C.ERRORS) + Atomics.load(b32, C.LOCK_ERRORS) +
    Atomics.load(b32, C.HANGS) + arena.uafCount
  );
}

/** Every invariant of a run, in plain words; empty when the run is clean. */
export function violationsOf(r: ScenarioResult): string[] {
  const v: string[] = [];
  if (r.signaled !== r.fences) v.push(`${r.fences} fences created but ${r.signaled} signaled`);
  if (r.doubleSignals) v.push(`${r.doubleSignals} fences signaled twice`);
  if (r.statusMismatches) v.push(`${r.statusMismatches} fences reported a status their exporter did not set`);
  if (r.uafCaught) v.push(`${r.uafCaught} use-after-free accesses caught by the sanitizer`);
  if (r.meViolations) v.push(`${r.meViolations} critical sections broke mutual exclusion`);
  if (r.hangs) v.push(`${r.hangs} lock or wait timeouts (hangs)`);
  if (r.lockErrors) v.push(`${r.lockErrors} unlocks of a lock word that had been overwritten`);
  if (r.callbacks.added !== r.callbacks.ran + r.callbacks.removed + r.callbacks.late && r.kills === 0)
    v.push(`${r.callbacks.added} callbacks added but ${r.callbacks.ran} ran, ${r.callbacks.removed} removed, ${r.callbacks.late} refused`);
  if (r.callbacks.double) v.push(`${r.callbacks.double} callbacks ran more than once (or after removal)`);
  if (r.leakedBytes) v.push(`${r.leakedBytes} bytes leaked in the arena`);
  if (r.checkProblems.length) v.push(`arena check: ${r.checkProblems.slice(0, 3).join('; ')}`);
  for (const e of r.workerErrors) v.push(`worker error: ${e}`);
  return v;
}

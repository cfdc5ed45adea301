/**
 * Runs the exporter/importer scenario in real workers and measures it: the engine behind `fencelab demo` and
 * `fencelab stress`. The main thread owns the arena and the board, spawns exporters and importers,
 * optionally kills importers at random (seeded) and recovers after them, and at the end checks
 * every invariant and the arena.
 */
import { Worker } from 'node:worker_threads';
import seedrandom from 'seedrandom';
// Through the package entry: it also registers the runtime's reap hooks (inbox, ledger, fds).
import { Arena, Fence } from '../index.js';
import {
  C, bump, DONE, EMPTY, EX_DONE, EX_SLOT, EX_STAGE, FILLING_BASE, HANDLES_F64, PUBLISHED, RING, RING_SLOTS, S_EXPECT_ALT, S_FREED, S_OWNER,
  S_STATE, S_STRIDE, STAGE_CLAIMED, STAGE_COUNTED, STAGE_ENDED, STAGE_IDLE, STAGE_INFLIGHT, STAGE_PUBLISHED, TAKEN_BASE, takenBy,
  WORKER_WORDS, BOARD_BYTES, MAX_WORKERS, boardOf, ringChanged,
} from './board.js';
import { Errno } from '../errors.js';
import type { LockKind } from '../locks/layout.js';
import type { LockMode } from './options.js';

export type KillTarget = 'importers' | 'exporters' | 'both';

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
  /** Worker kills per second (seeded Poisson-ish schedule); killed workers are replaced. */
  killRate: number;
  /** Which workers the kills pick from (default importers). */
  killTarget?: KillTarget;
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
  /** Of those, exporters (their operations end with -ENODEV, their drivers are destroyed). */
  exporterKills: number;
  leakedBytes: number;
  /** The first leaked blocks, as "type (bytes B, allocated by thread n)". */
  leaks: string[];
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

  let exporterKills = 0;

  const spawn = (role: 'exporter' | 'importer', ops = cfg.opsPerExporter): Running => {
    const index = freeIndices.pop() ?? nextIndex++;
    if (index >= MAX_WORKERS) throw new RangeError(`more than ${MAX_WORKERS - 1} workers at once`);
    b32[EX_STAGE + index] = STAGE_IDLE;
    b32[EX_DONE + index] = 0;
    const worker = new Worker(WORKER_URL, {
      workerData: {
        role, index, arena: arena.buffer, board: boardBuf, guard: guardBuf, lockMode: cfg.lockMode,
        ops, workUs: cfg.workUs, csUs: cfg.csUs,
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
          board.f64[HANDLES_F64 + i] = 0;
          Atomics.store(b32, base + S_STATE, EMPTY);
          Atomics.sub(b32, C.INFLIGHT, 1);
        }
      }
      ringChanged(board);
    }
  };

  /**
   * After an exporter was killed: undo its guard, then from what its stage says it had done (see
   * board.ts) give back the slot it was filling, expect -ENODEV where the reaper will end its
   * published operation, reap it (operations end, driver destroyed) and count the end it did not.
   * Returns the operations it finished.
   */
  const recoverExporter = (r: Running): number => {
    const inGuard = Atomics.exchange(b32, WORKER_WORDS + r.index, 0);
    if (inGuard) Atomics.sub(board.guard, inGuard, 1);
    const stage = b32[EX_STAGE + r.index];
    const base = RING + b32[EX_SLOT + r.index] * S_STRIDE;
    const h = HANDLES_F64 + b32[EX_SLOT + r.index];
    if (stage >= STAGE_CLAIMED && stage <= STAGE_INFLIGHT) {
      // Still FILLING: a handle there is a reference it holds (the importer's, or its export).
      if (board.f64[h] !== 0) Fence.fromHandle(arena, board.f64[h]).put();
      board.f64[h] = 0;
      if (stage === STAGE_INFLIGHT) Atomics.sub(b32, C.INFLIGHT, 1);
      Atomics.store(b32, base + S_STATE, EMPTY);
    } else if (stage === STAGE_PUBLISHED) {
      const st = Atomics.load(b32, base + S_STATE);
      const ours = b32[base + S_OWNER] === r.index && (st === PUBLISHED || (st >= TAKEN_BASE && st < FILLING_BASE));
      // The reaper ends it with -ENODEV, or with the exporter's own status if it was ending it.
      if (ours && !Fence.fromHandle(arena, board.f64[h]).testSignaledFlag()) Atomics.store(b32, base + S_EXPECT_ALT, Errno.ENODEV);
    }
    if (r.slot >= 0) arena.reapSlot(r.slot);
    // Counted as a fence, never counted as signaled: it was, by the exporter or by the reaper.
    if (stage >= STAGE_COUNTED && stage <= STAGE_PUBLISHED) bump(board, C.SIGNALS);
    if (stage === STAGE_PUBLISHED || stage === STAGE_ENDED) Atomics.store(b32, base + S_FREED, 1);
    let done = b32[EX_DONE + r.index];
    if (stage === STAGE_ENDED) {
      bump(board, C.OPS);
      done++;
    }
    Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
    ringChanged(board);
    return done;
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
        else recoverExporter(r);
      }
      bump(board, C.HANGS);
      break;
    }
    if (now >= nextKill && Atomics.load(b32, C.STOP) === 0) {
      nextKill = now + (-Math.log(1 - rng()) / cfg.killRate) * 1000;
      const target = cfg.killTarget ?? 'importers';
      const victims = [...running].filter((r) => r.slot >= 0 && (target === 'both' || `${r.role}s` === target));
      if (victims.length > 0 && Atomics.load(b32, C.EXPORTERS_LEFT) > 0) {
        const v = victims[Math.floor(rng() * victims.length)];
        await v.worker.terminate();
        await v.exited;
        kills++;
        if (v.role === 'importer') {
          recover(v);
          spawn('importer');
        } else {
          exporterKills++;
          // Count its replacement in before the dead one goes out: importers stop at zero.
          Atomics.add(b32, C.EXPORTERS_LEFT, 1);
          const done = recoverExporter(v);
          const left = cfg.opsPerExporter - done;
          // Its replacement runs what it had left (the rest of the run, when timed).
          if (cfg.opsPerExporter === 0 || left > 0) spawn('exporter', left > 0 ? left : 0);
          else Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
        }
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
      board.f64[HANDLES_F64 + i] = 0;
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
    exporterKills,
    leakedBytes: report.leakedBytes,
    leaks: report.leaks.slice(0, 5).map((l) => `${l.type} (${l.bytes} B, allocated by thread ${l.allocatedBy})`),
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
  if (r.leakedBytes) v.push(`${r.leakedBytes} bytes leaked in the arena: ${r.leaks.join(', ')}${r.leaks.length < 5 ? '' : ', …'}`);
  if (r.checkProblems.length) v.push(`arena check: ${r.checkProblems.slice(0, 3).join('; ')}`);
  for (const e of r.workerErrors) v.push(`worker error: ${e}`);
  return v;
}

/**
 * Runs the engine's exporters and importers (workers/) as a scenario and measures it: what
 * `fencelab demo` and `fencelab stress` run. The main thread owns the arena and the crew; a run is
 * a few steps — start the workers, watch them (progress, stop conditions, the kill schedule), let
 * them drain, then check every invariant and the arena.
 */
import seedrandom from 'seedrandom';
import { Arena, type LockKind } from '../index.js';
import { C, bump } from '../../workers/board.js';
import { Crew, type Member, type Replacement } from '../../workers/crew.js';
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
/** How often the main thread looks at the run. */
const TICK_MS = 20;

function percentile(sorted: Float64Array, p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export function runScenario(cfg: ScenarioConfig): Promise<ScenarioResult> {
  return new ScenarioRun(cfg).run();
}

/** One run: its arena, its crew of workers, and the main thread's view of the clock. */
class ScenarioRun {
  private readonly cfg: ScenarioConfig;
  private readonly arena: Arena;
  private readonly crew: Crew;
  /** The kill schedule's randomness (the workers have their own). */
  private readonly rng: () => number;
  private readonly timed: boolean;
  /** Bound of the whole run: past it, workers are asked to stop. */
  private readonly hardLimit: number;
  private started = 0;
  private stopSeenAt = Infinity;
  private nextKill = Infinity;

  constructor(cfg: ScenarioConfig) {
    this.cfg = cfg;
    this.arena = Arena.create({ bytes: cfg.arenaBytes, sanitize: cfg.sanitize ? 'count' : false, lockKind: cfg.lockKind, maxThreads: 64 });
    this.crew = new Crew(this.arena, {
      seed: cfg.seed,
      lockMode: cfg.lockMode,
      ops: cfg.opsPerExporter,
      workUs: cfg.workUs,
      csUs: cfg.csUs,
      jitter: cfg.jitter,
      cancelRate: cfg.cancelRate,
      callbackRate: cfg.callbackRate,
      waitTimeoutMs: cfg.waitTimeoutMs,
      lockTimeoutMs: cfg.lockTimeoutMs,
      maxInflight: cfg.maxInflight,
    });
    this.rng = seedrandom(`${cfg.seed}:main`);
    this.timed = cfg.opsPerExporter === 0;
    this.hardLimit = cfg.maxRunMs ?? (this.timed ? cfg.durationMs : 0) + 60_000 + cfg.opsPerExporter * cfg.exporters * 2;
  }

  async run(): Promise<ScenarioResult> {
    this.start();
    await this.watch();
    await this.crew.settled();
    const elapsedMs = performance.now() - this.started;
    // Fences never taken (no importer left) or handed back: drop what the ring still carries.
    this.crew.sweep();
    const result = this.results(elapsedMs);
    this.arena.detach();
    return result;
  }

  private start(): void {
    this.started = performance.now();
    for (let i = 0; i < this.cfg.exporters; i++) this.crew.spawn('exporter');
    for (let i = 0; i < this.cfg.importers; i++) this.crew.spawn('importer');
    this.scheduleKill(this.started);
  }

  private stopped(): boolean {
    return this.crew.count(C.STOP) !== 0;
  }

  /** Until no exporter is left and every importer exited: progress, stop conditions, kills. */
  private async watch(): Promise<void> {
    const crew = this.crew;
    while (crew.count(C.EXPORTERS_LEFT) > 0 || [...crew.running].some((m) => m.role === 'importer')) {
      await new Promise((res) => setTimeout(res, TICK_MS));
      const now = performance.now();
      const elapsed = now - this.started;
      this.cfg.onProgress?.({ ops: crew.count(C.OPS), elapsedMs: elapsed, kills: crew.kills });
      this.checkStop(elapsed);
      if (elapsed > this.stopSeenAt + STOP_GRACE_MS) {
        await this.terminateHung();
        return;
      }
      if (now >= this.nextKill && !this.stopped()) {
        this.scheduleKill(now);
        await this.killOne();
      }
    }
  }

  /** Asks the workers to stop: the duration is over, a violation showed, or the run is past its bound. */
  private checkStop(elapsed: number): void {
    const crew = this.crew;
    if (this.timed && elapsed >= this.cfg.durationMs) crew.stop();
    if (this.cfg.stopOnViolation && !this.stopped() && violationCounters(crew, this.arena) > 0) {
      crew.errors.push(`violation seen after ${Math.round(elapsed)} ms, ${crew.count(C.OPS)} operations: run stopped`);
      crew.stop();
    }
    if (elapsed > this.hardLimit && !this.stopped()) {
      crew.errors.push(`run exceeded its ${Math.round(this.hardLimit)} ms bound: asked to stop`);
      crew.stop();
    }
    if (this.stopped() && this.stopSeenAt === Infinity) this.stopSeenAt = elapsed;
  }

  /** Workers still running long after the stop are hung (a lock that never comes free): terminated. */
  private async terminateHung(): Promise<void> {
    const crew = this.crew;
    crew.errors.push(`${crew.running.size} worker(s) still running ${STOP_GRACE_MS} ms after the stop: terminated (hang)`);
    await Promise.all([...crew.running].map((m) => m.worker.terminate()));
    await crew.settled(); // the crew recovers the board after each
    bump(crew.board, C.HANGS);
  }

  /** Next kill time: a seeded exponential gap (kills per second = killRate). */
  private scheduleKill(now: number): void {
    this.nextKill = this.cfg.killRate > 0 ? now + (-Math.log(1 - this.rng()) / this.cfg.killRate) * 1000 : Infinity;
  }

  /** Terminates one worker of the kill target (seeded choice) and starts its replacement. */
  private async killOne(): Promise<void> {
    const crew = this.crew;
    const target = this.cfg.killTarget ?? 'importers';
    const victims = [...crew.running].filter((m) => m.slot >= 0 && (target === 'both' || `${m.role}s` === target));
    if (victims.length === 0 || crew.count(C.EXPORTERS_LEFT) === 0) return;
    const victim: Member = victims[Math.floor(this.rng() * victims.length)];
    const ops = this.cfg.opsPerExporter;
    // An exporter's replacement runs what it had left (the rest of the run, when timed).
    const replace: Replacement = (done) => {
      if (victim.role === 'importer') return {};
      const left = ops - done;
      return ops === 0 || left > 0 ? { ops: left > 0 ? left : 0 } : undefined;
    };
    await crew.kill(victim, replace);
  }

  private latencies(): Float64Array {
    const parts = this.crew.latencies;
    const all = new Float64Array(parts.reduce((n, l) => n + l.length, 0));
    let at = 0;
    for (const l of parts) {
      all.set(l, at);
      at += l.length;
    }
    return all.sort();
  }

  private results(elapsedMs: number): ScenarioResult {
    const { onProgress: _progress, ...config } = this.cfg;
    const crew = this.crew;
    const get = (c: number) => crew.count(c);
    const report = this.arena.check();
    const all = this.latencies();
    const result: ScenarioResult = {
      config,
      ops: get(C.OPS),
      fences: get(C.FENCES),
      signaled: get(C.SIGNALS),
      cancelled: get(C.CANCELLED),
      staleAccesses: get(C.STALE),
      uafCaught: this.arena.uafCount,
      meViolations: get(C.ME_VIOLATIONS),
      hangs: get(C.HANGS),
      lockErrors: get(C.LOCK_ERRORS),
      ownerDied: get(C.OWNER_DIED),
      callbacks: { added: get(C.CB_ADDED), ran: get(C.CB_RAN), removed: get(C.CB_REMOVED), late: get(C.CB_LATE), double: get(C.CB_DOUBLE) },
      wakes: get(C.WAKES),
      doubleSignals: get(C.DOUBLE_SIGNALS),
      statusMismatches: get(C.STATUS_MISMATCH),
      workerErrors: crew.errors,
      kills: crew.kills,
      exporterKills: crew.exporterKills,
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
    return result;
  }
}

/** Sum of the counters that may never move in a clean run. */
function violationCounters(crew: Crew, arena: Arena): number {
  return (
    crew.count(C.DOUBLE_SIGNALS) + crew.count(C.ME_VIOLATIONS) + crew.count(C.CB_DOUBLE) + crew.count(C.STATUS_MISMATCH) +
    crew.count(C.ERRORS) + crew.count(C.LOCK_ERRORS) + crew.count(C.HANGS) + arena.uafCount
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

/**
 * Runs the engine's exporters and importers (workers/) as a scenario and measures it: what
 * `fencelab demo` and `fencelab stress` run. The main thread owns the arena and the crew; a run is
 * a few steps — start the workers, watch them (progress, stop conditions, the kill schedule), let
 * them drain, then check every invariant and the arena.
 */
import seedrandom from 'seedrandom';
import { Arena, type LockKind, type Tracer } from '../index.js';
import { C, bump } from '../../workers/board.js';
import { Crew, type Member, type Replacement } from '../../workers/crew.js';
import { ringBlockBytes } from '../trace/ring.js';
import { analyzeHang } from '../trace/dump.js';
import { HangWatch, serveInspect } from './inspect.js';
import type { LockMode } from './options.js';
import { LibraryWarnings } from './warnings.js';

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
  /**
   * Exactly this many kills instead of a rate (timed runs only): kill i is due at
   * i/(kills+1) of the duration and happens once a worker it may pick is up and an operation ended
   * since the last kill; the run is not asked to stop before the last one (its hard bound still holds). With `killTarget` 'both' they
   * alternate, importer first: ⌊kills/2⌋ exporters. The count is then exact, whatever the scheduling.
   */
  kills?: number;
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
  /** Record a trace of the run (every category); `collect` gets the tracer once the workers are done. */
  trace?: { eventsPerThread: number; collect: (tracer: Tracer) => void };
  /** Dump the arena to `file` when the operations count stands still for `afterMs` (a hang). */
  hangDump?: { afterMs: number; file: string };
  /** Answer `fencelab inspect` (SIGUSR2) with the arena's dump while the run lasts. */
  inspect?: boolean;
  onProgress?: (p: { ops: number; elapsedMs: number; kills: number }) => void;
}

/** What the hang watch saw: the dump file and what stands in the way. */
export interface HangReport {
  file: string;
  reason: string;
  analysis: string[];
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
  /**
   * Warnings the library emitted in the main thread (where the killed workers are reaped) during
   * the run, e.g. a reaper's release of a fence whose ops are not registered: each is a violation.
   */
  libraryWarnings: string[];
  /** Invariant violations in plain words (empty when clean). */
  violations: string[];
  /** Set when the hang watch dumped the arena. */
  hang?: HangReport;
}

/** Rings a traced run makes room for besides its workers': the main thread's, and replacements' when it kills. */
function spareRings(cfg: ScenarioConfig): number {
  return 1 + (cfg.killRate > 0 || (cfg.kills ?? 0) > 0 ? 8 : 0);
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
  /** Operations count at the last kill (a fixed-count kill waits for one more to end). */
  private opsAtKill = 0;
  private readonly hangWatch: HangWatch | null;
  private unserve: (() => void) | null = null;
  /** What {@link ScenarioResult.libraryWarnings} reports. */
  private readonly warnings = new LibraryWarnings();

  constructor(cfg: ScenarioConfig) {
    this.cfg = cfg;
    // A traced run's arena has room for one ring per thread on top of what the run needs.
    const rings = cfg.trace ? ringBlockBytes(cfg.trace.eventsPerThread) * (cfg.exporters + cfg.importers + spareRings(cfg)) : 0;
    this.arena = Arena.create({ bytes: cfg.arenaBytes + rings, sanitize: cfg.sanitize ? 'count' : false, lockKind: cfg.lockKind, maxThreads: 64 });
    if (cfg.trace) this.arena.trace.start({ eventsPerThread: cfg.trace.eventsPerThread, categories: 'all' });
    this.hangWatch = cfg.hangDump ? new HangWatch(this.arena, cfg.hangDump.afterMs, cfg.hangDump.file) : null;
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
    if (cfg.kills !== undefined && !this.timed) throw new RangeError('a fixed number of kills needs a timed run (durationMs)');
    this.hardLimit = cfg.maxRunMs ?? (this.timed ? cfg.durationMs : 0) + 60_000 + cfg.opsPerExporter * cfg.exporters * 2;
  }

  async run(): Promise<ScenarioResult> {
    this.warnings.listen();
    try {
      this.start();
      await this.watch();
      await this.crew.settled();
    } finally {
      this.unserve?.();
      this.warnings.close();
    }
    const elapsedMs = performance.now() - this.started;
    // Fences never taken (no importer left) or handed back: drop what the ring still carries.
    this.crew.sweep();
    const result = this.results(elapsedMs);
    if (this.cfg.trace) {
      this.arena.trace.stop();
      this.cfg.trace.collect(this.arena.trace);
      this.arena.trace.dispose();
    }
    this.arena.detach();
    return result;
  }

  private start(): void {
    if (this.cfg.inspect) this.unserve = serveInspect(() => this.arena);
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
      // The hang watch looks from the first finished operation to the stop (with --ops, the last):
      // the workers' start and shutdown stand still by design, and the run's bounds watch them.
      const done = crew.count(C.OPS);
      const ops = this.cfg.opsPerExporter;
      if (!this.stopped() && done > 0 && (ops === 0 || done < ops * this.cfg.exporters)) this.hangWatch?.tick(done, now);
      this.checkStop(elapsed);
      if (elapsed > this.stopSeenAt + STOP_GRACE_MS) {
        await this.terminateHung();
        return;
      }
      if (!this.stopped() && this.killDue(now)) await this.killOne();
    }
  }

  /** Asks the workers to stop: the duration is over, a violation showed, or the run is past its bound. */
  private checkStop(elapsed: number): void {
    const crew = this.crew;
    // A fixed number of kills holds the stop back until the last one is done (the hard limit does not wait).
    if (this.timed && elapsed >= this.cfg.durationMs && this.killsLeft() === 0) crew.stop();
    if (this.cfg.stopOnViolation && !this.stopped() && violationCounters(crew, this.arena) + this.warnings.seen.length > 0) {
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
    // The moment to look: the hung workers are still where they stopped.
    this.hangWatch?.take(`hang: ${crew.running.size} worker(s) still running ${STOP_GRACE_MS / 1000} s after the stop`);
    crew.errors.push(`${crew.running.size} worker(s) still running ${STOP_GRACE_MS} ms after the stop: terminated (hang)`);
    await Promise.all([...crew.running].map((m) => m.worker.terminate()));
    await crew.settled(); // the crew recovers the board after each
    bump(crew.board, C.HANGS);
  }

  /** Kills of a fixed count still to do (0 with a kill rate). */
  private killsLeft(): number {
    return this.cfg.kills === undefined ? 0 : this.cfg.kills - this.crew.kills;
  }

  /** Next kill time of a kill rate: a seeded exponential gap (kills per second = killRate). */
  private scheduleKill(now: number): void {
    this.nextKill = this.cfg.killRate > 0 ? now + (-Math.log(1 - this.rng()) / this.cfg.killRate) * 1000 : Infinity;
  }

  /**
   * Whether to kill now. A kill rate's kills are due at their scheduled times; a fixed count's
   * kill i at i/(kills+1) of the duration (from the start, so a late kill does not push the others
   * back), once it is ready.
   */
  private killDue(now: number): boolean {
    const { kills, durationMs } = this.cfg;
    if (kills !== undefined) return this.killsLeft() > 0 && now >= this.started + ((this.crew.kills + 1) * durationMs) / (kills + 1) && this.killReady();
    if (now < this.nextKill) return false;
    this.scheduleKill(now);
    return true;
  }

  /**
   * A fixed-count kill waits until it lands on a run in progress: an operation ended since the
   * last kill, and a worker of the role it targets is up (a replacement still starting is no
   * victim yet).
   */
  private killReady(): boolean {
    const ops = this.crew.count(C.OPS);
    if (ops <= this.opsAtKill || this.victims().length === 0) return false;
    this.opsAtKill = ops;
    return true;
  }

  /** Workers the next kill may pick: attached, of the role it targets. */
  private victims(): Member[] {
    const crew = this.crew;
    let target = this.cfg.killTarget ?? 'importers';
    // A fixed count alternates between the roles, importer first: the split is exact too.
    if (target === 'both' && this.cfg.kills !== undefined) target = crew.kills % 2 === 0 ? 'importers' : 'exporters';
    return [...crew.running].filter((m) => m.slot >= 0 && (target === 'both' || `${m.role}s` === target));
  }

  /** Terminates one worker of the kill target (seeded choice) and starts its replacement. */
  private async killOne(): Promise<void> {
    const crew = this.crew;
    const victims = this.victims();
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
      libraryWarnings: [...this.warnings.seen],
      violations: [],
    };
    result.violations = violationsOf(result);
    const dump = this.hangWatch?.dump;
    if (dump && this.cfg.hangDump) result.hang = { file: this.cfg.hangDump.file, reason: dump.reason ?? 'hang', analysis: analyzeHang(dump) };
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
    v.push(`${r.callbacks.added} callbacks added but ${r.callbacks.ran} ran, ${r.callbacks.removed} removed, ${r.callbacks.late} not added (already signaled)`);
  if (r.callbacks.double) v.push(`${r.callbacks.double} callbacks ran more than once (or after removal)`);
  if (r.leakedBytes) v.push(`${r.leakedBytes} bytes leaked in the arena: ${r.leaks.join(', ')}${r.leaks.length < 5 ? '' : ', …'}`);
  if (r.checkProblems.length) v.push(`arena check: ${r.checkProblems.slice(0, 3).join('; ')}`);
  // A fixed count of kills is part of what the run promised (it stops early only when stopped).
  if (r.config.kills !== undefined && r.kills !== r.config.kills) v.push(`${r.config.kills} kills asked for but ${r.kills} done before the run was stopped`);
  for (const e of r.workerErrors) v.push(`worker error: ${e}`);
  for (const w of r.libraryWarnings) v.push(`library warning: ${w}`);
  return v;
}

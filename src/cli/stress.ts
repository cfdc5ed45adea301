/**
 * `fencelab stress`: the exporter/importer scenario as a concurrency stress test — seeded, time- or
 * count-bounded, with cancels, callbacks and worker kills, stopping at the first violation.
 */
import { basename, isAbsolute, relative } from 'node:path';
import type { LockKind } from '../locks/layout.js';
import { MAX_WORKERS } from '../../workers/board.js';
import type { ChromeTrace } from '../trace/chrome.js';
import type { LockMode } from './options.js';
import type { Progress } from './progress.js';
import { runScenario, type KillTarget, type ScenarioResult } from './scenario.js';
import { fmtMicros, renderTable } from './table.js';

export interface StressOptions {
  duration: number;
  ops?: number;
  exporters: number;
  importers: number;
  lockMode: LockMode;
  lock: LockKind;
  sanitizer: boolean;
  cancelRate: number;
  killRate: number;
  /** Exactly this many kills, spread over a timed run, instead of `killRate` (see ScenarioConfig.kills). */
  kills?: number;
  kill: KillTarget;
  callbackRate: number;
  jitter: number;
  workUs: number;
  csUs: number;
  seed: string;
  json: boolean;
  /** Record a trace of the run. */
  trace?: boolean;
  /** Events each thread's ring holds when tracing (the newest are kept). */
  traceEvents?: number;
  /** A hang: the operations count stands still this long (ms); the arena is then dumped to `hangDump`. */
  hangAfter: number;
  hangDump: string;
}

export const STRESS_DEFAULTS = {
  durationMs: 10_000,
  exporters: 2,
  importers: 2,
  cancelRate: 0.05,
  killRate: 0.5,
  kill: 'importers',
  callbackRate: 0.5,
  jitter: 0.5,
  workUs: 0,
  csUs: 0,
} as const;

export interface StressReport extends ScenarioResult {
  seed: string;
  /** Fence lifecycles completed: created, signaled and released. */
  fenceLifecycles: number;
  replay: string;
  /** The run's trace, when asked for. */
  trace?: ChromeTrace;
}

/** Events each thread's ring holds in a traced stress run unless told otherwise: what fills 1 MiB. */
export const STRESS_TRACE_EVENTS = 32_000;

/** Workers a stress run may start at once: the board's worker words, minus room for replacements. */
export const MAX_STRESS_WORKERS = MAX_WORKERS - 16;

export async function runStress(o: StressOptions, progress: Progress): Promise<StressReport> {
  if (o.exporters + o.importers > MAX_STRESS_WORKERS)
    throw new RangeError(`too many workers: ${o.exporters + o.importers} (at most ${MAX_STRESS_WORKERS})`);
  const counted = o.ops !== undefined;
  let trace: ChromeTrace | undefined;
  const result = await runScenario({
    lockMode: o.lockMode,
    sanitize: o.sanitizer,
    lockKind: o.lock,
    exporters: o.exporters,
    importers: o.importers,
    opsPerExporter: counted ? o.ops! : 0,
    durationMs: counted ? 0 : o.duration,
    workUs: o.workUs,
    csUs: o.csUs,
    jitter: o.jitter,
    cancelRate: o.cancelRate,
    callbackRate: o.callbackRate,
    killRate: o.killRate,
    killTarget: o.kill,
    ...(o.kills !== undefined ? { kills: o.kills } : {}),
    seed: o.seed,
    arenaBytes: 32 << 20,
    waitTimeoutMs: 5000,
    lockTimeoutMs: 1000,
    maxInflight: 256,
    stopOnViolation: true,
    ...(o.trace ? { trace: { eventsPerThread: o.traceEvents ?? STRESS_TRACE_EVENTS, collect: (tracer) => (trace = tracer.export()) } } : {}),
    hangDump: { afterMs: o.hangAfter, file: o.hangDump },
    inspect: true,
    onProgress: (p) => progress.update(counted ? p.ops : p.elapsedMs, { ops: p.ops, kills: p.kills }),
  });
  progress.stop();
  const flags = [
    counted ? `--ops ${o.ops}` : `--duration ${o.duration}ms`,
    `--exporters ${o.exporters} --importers ${o.importers} --lock-mode ${o.lockMode} --lock ${o.lock}`,
    `--sanitizer ${o.sanitizer ? 'on' : 'off'} --cancel-rate ${o.cancelRate} ${o.kills !== undefined ? `--kills ${o.kills}` : `--kill-rate ${o.killRate}`} --kill ${o.kill}`,
    `--callback-rate ${o.callbackRate} --jitter ${o.jitter} --work-us ${o.workUs} --cs-us ${o.csUs} --seed ${o.seed}`,
  ];
  return { ...result, seed: o.seed, fenceLifecycles: result.signaled, replay: `${invocation()} stress ${flags.join(' ')}`, ...(trace ? { trace } : {}) };
}

/**
 * How to run fencelab again where this run was started: `npx fencelab` under npm or npx (a clone's
 * scripts), `fencelab` when it ran as the installed command, else `node` and this file (relative to
 * the working directory when it is below it) — a clone has no `fencelab` on PATH.
 */
export function invocation(): string {
  if (process.env.npm_command !== undefined || process.env.npm_lifecycle_event !== undefined) return 'npx fencelab';
  const main = process.argv[1];
  if (main === undefined || basename(main) === 'fencelab') return 'fencelab';
  const rel = relative(process.cwd(), main);
  const file = rel.startsWith('..') || isAbsolute(rel) ? main : rel;
  return `node ${/^[\w./@+-]+$/.test(file) ? file : `'${file.replace(/'/g, `'\\''`)}'`}`;
}

/** What the callbacks row's third figure is (in `stress --help` and the README): nothing went wrong. */
export const CALLBACKS_NOT_ADDED =
  'callbacks "not added" are addCallback calls that found the fence already signaled: addCallback returned null (the kernel\'s -ENOENT), ' +
  'nothing to run ' +
  '(the signal won the race; in a fast run most calls do), not an error. JSON: callbacks.late.';

/** The verdict of a run in which no fence completed its lifecycle: it checked nothing, so it does not pass (exit 1). */
const NOTHING_RAN =
  'NOTHING CHECKED: no fence completed its lifecycle, so no invariant was tested (workers take tens of ms to start): give a longer --duration or more --ops.';

export function renderStress(r: StressReport): string {
  const rows: [string, string | number][] = [
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(1)} s`],
    ['fence lifecycles (create→signal→release)', r.fenceLifecycles],
    ['operations / s', Math.round(r.opsPerSec)],
    ['cancelled (-ECANCELED)', r.cancelled],
    ['callbacks ran / removed / not added (already signaled)', `${r.callbacks.ran} / ${r.callbacks.removed} / ${r.callbacks.late}`],
    ['workers killed (importers / exporters)', `${r.kills - r.exporterKills} / ${r.exporterKills}`],
    ['locks taken over from a dead holder', r.ownerDied],
    ['use-after-free caught', r.config.sanitize ? r.uafCaught : 'off'],
    ['broken mutual exclusion', r.meViolations],
    ['hangs (timeouts)', r.hangs],
    ['leaked bytes', r.leakedBytes],
    ['signal→wake p50 / p99', `${fmtMicros(r.wakeP50Us)} / ${fmtMicros(r.wakeP99Us)}`],
  ];
  const out = [`\nfencelab stress — seed ${r.seed}`, renderTable(['metric', 'value'], rows)];
  if (r.violations.length === 0 && r.fenceLifecycles === 0) out.push(`\n${NOTHING_RAN}`);
  else if (r.violations.length === 0) out.push('\nOK: every invariant held (each fence signaled once, each callback at most once and exactly once unless removed, every reference dropped, no leak, no hang).');
  else out.push(`\nVIOLATIONS (${r.violations.length}):`, ...r.violations.map((v) => `- ${v}`), `\nreplay: ${r.replay}`);
  if (r.hang) {
    // A stall the run got over (every invariant held) is reported, not failed: a loaded machine can
    // stop every worker for seconds. One that did not end is a hang, and a violation (timeouts).
    const what = r.violations.length ? 'HANG' : 'STALL (the run went on afterwards: not a failure)';
    out.push(`\n${what} (${r.hang.reason}): the arena was dumped to ${r.hang.file} (read it with: ${invocation()} inspect ${r.hang.file})`);
    out.push(...r.hang.analysis.map((l) => `- ${l}`));
  }
  return out.join('\n');
}

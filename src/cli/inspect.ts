/**
 * `fencelab inspect`: the arena dump of a running `fencelab stress` (or of a dump file one wrote),
 * printed sync_debug style with the hang analysis.
 *
 * A running stress announces itself with a file `fencelab-<pid>.inspect` in the temp directory and
 * answers SIGUSR2 by writing its dump to `fencelab-<pid>.dump.json` there; `inspect` signals only
 * processes that announced themselves (SIGUSR2 ends a process that does not handle it). The file
 * carries the process's start time (Linux /proc/<pid>/stat), so a stale file whose pid now belongs
 * to another process is not taken for a stress: that process is never signalled.
 * The same module writes the dump a stress run takes when it detects a hang.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Arena } from '../arena/arena.js';
import { analyzeHang, assertDump, renderDump, type ArenaDump } from '../trace/dump.js';

const ANNOUNCE = /^fencelab-(\d+)\.inspect$/;

/** The file a running stress announces itself with. */
export function announcePath(pid: number, dir = tmpdir()): string {
  return join(dir, `fencelab-${pid}.inspect`);
}

/** Where a running stress writes its dump when asked. */
export function dumpPath(pid: number, dir = tmpdir()): string {
  return join(dir, `fencelab-${pid}.dump.json`);
}

/** Writes `dump` to `file` whole (a reader never sees half of it): a temporary file, then a rename. */
export function writeDump(dump: ArenaDump, file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(dump, null, 1));
  renameSync(tmp, file);
}

/** Reads a dump file. Throws an Error naming the file when it is unreadable or not a dump. */
export function readDump(file: string): ArenaDump {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    assertDump(data);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return data;
}

/**
 * Makes this process answer `fencelab inspect`: announces it and writes `arena()`'s dump on
 * SIGUSR2 (nothing while `arena()` is null). Returns the function that undoes both; an interrupt
 * (SIGINT, SIGTERM) undoes them too before it ends the process as it would have.
 */
export function serveInspect(arena: () => Arena | null, dir = tmpdir()): () => void {
  const announce = announcePath(process.pid, dir);
  const onRequest = () => {
    const a = arena();
    if (a === null || a.isDetached) return;
    writeDump(a.describe('fencelab inspect'), dumpPath(process.pid, dir));
  };
  const undo = () => {
    process.off('SIGUSR2', onRequest);
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    rmSync(announce, { force: true });
    rmSync(dumpPath(process.pid, dir), { force: true });
  };
  function onInterrupt(signal: NodeJS.Signals): void {
    undo();
    process.kill(process.pid, signal); // no listener left: the default action ends the process
  }
  process.on('SIGUSR2', onRequest);
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  const start = processStartTime(process.pid);
  writeFileSync(announce, `${process.argv.slice(1).join(' ')}\n${start !== undefined ? `start-time ${start}\n` : ''}`);
  return undo;
}

/**
 * The start time of process `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot), or
 * undefined when it cannot be read (no such process, or no procfs). With the pid it names one
 * process for good: a pid reused later has another start time.
 */
function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/**
 * Whether `pid` is the running process that wrote its announcement in `dir`: the start time in
 * the file matches the process's. Without procfs (not Linux) a live process with the file is taken
 * at its word.
 */
function announcedBy(pid: number, dir = tmpdir()): boolean {
  let text: string;
  try {
    text = readFileSync(announcePath(pid, dir), 'utf8');
  } catch {
    return false;
  }
  if (processStartTime(process.pid) === undefined) return isRunning(pid);
  const start = processStartTime(pid);
  return start !== undefined && /^start-time (\d+)$/m.exec(text)?.[1] === start;
}

/** Whether a process `pid` exists (signal 0: nothing is sent). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Running processes that announced themselves (stale announcements are skipped: of processes that
 * ended, and of pids another process has since — see {@link announcedBy}).
 */
export function announcedProcesses(dir = tmpdir()): number[] {
  const out: number[] = [];
  for (const name of readdirSync(dir)) {
    const m = ANNOUNCE.exec(name);
    if (m && announcedBy(Number(m[1]), dir)) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/**
 * Asks the announced process `pid` for its dump and waits for it (at most `timeoutMs`).
 * Throws an Error when the process did not announce itself (or its announcement is stale: the pid is
 * another process's now, which is then not signalled) or did not answer in time.
 */
export async function inspectProcess(pid: number, timeoutMs = 5000, dir = tmpdir()): Promise<ArenaDump> {
  if (!existsSync(announcePath(pid, dir))) throw new Error(`process ${pid} is not a running fencelab stress (no ${announcePath(pid, dir)})`);
  if (!announcedBy(pid, dir))
    throw new Error(`process ${pid} is not the fencelab stress that wrote ${announcePath(pid, dir)} (a stale file: that run ended; not signalling ${pid})`);
  const file = dumpPath(pid, dir);
  const before = existsSync(file) ? statSync(file).mtimeMs : -1;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file) && statSync(file).mtimeMs !== before) return readDump(file);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`process ${pid} did not write its dump within ${timeoutMs} ms`);
}

/** The dump as `inspect` prints it: the hang analysis first, then every section. */
export function renderInspect(dump: ArenaDump): string {
  const analysis = analyzeHang(dump);
  const head = analysis.length ? ['what stands in the way:', ...analysis.map((l) => `  - ${l}`), ''] : [];
  return [...head, renderDump(dump)].join('\n');
}

/**
 * Watches a run's progress and dumps the arena once it stops moving for `afterMs` (a hang): the
 * dump file names the fences, threads and locks that stand still. One dump per run.
 */
export class HangWatch {
  private last = -1;
  private since = 0;
  /** The dump taken, once a hang was seen. */
  dump: ArenaDump | null = null;

  constructor(
    private readonly arena: Arena,
    private readonly afterMs: number,
    private readonly file: string,
  ) {}

  /**
   * Call with the run's progress counter and the time (ms); returns the dump the first time the
   * counter has not moved for `afterMs`, else null.
   */
  tick(progress: number, nowMs: number): ArenaDump | null {
    if (progress !== this.last) {
      this.last = progress;
      this.since = nowMs;
      return null;
    }
    if (this.dump !== null || nowMs - this.since < this.afterMs) return null;
    const ms = nowMs - this.since;
    return this.take(`hang: no progress for ${ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`}`);
  }

  /** Dumps the arena now (once per run: a second call returns the first dump). */
  take(reason: string): ArenaDump {
    if (this.dump === null) {
      this.dump = this.arena.describe(reason);
      writeDump(this.dump, this.file);
    }
    return this.dump;
  }
}

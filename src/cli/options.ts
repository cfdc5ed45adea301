/**
 * Option parsing shared by the fencelab commands. Bad options are a `UsageError` (exit code 2) with
 * a message that names the option and what it accepts.
 */
import { InvalidArgumentError } from 'commander';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LOCK_KINDS, type LockKind } from '../locks/layout.js';
import { SUITES, readRun, type BenchRun, type Suite } from '../report/schema.js';

/** Parses `60s`, `500ms`, `2m`, `1.5h` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(`"${text}" is not a duration (e.g. 10s, 500ms, 2m)`);
  const n = Number(m[1]);
  if (n < 0) throw new InvalidArgumentError(`duration must not be negative, got ${text}`);
  const unit = m[2] ?? 's';
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
  if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) throw new InvalidArgumentError(`duration ${text} is too large (at most 24h)`);
  if (ms === 0) throw new InvalidArgumentError('duration must be more than 0');
  return ms;
}

/** The longest run a duration option accepts (a soak of a day; anything longer is a typo). */
export const MAX_DURATION_MS = 24 * 3_600_000;

/**
 * Parses a seed: 1–64 characters of letters, digits and `_ . : -`, so that the replay line a run
 * prints (`--seed <seed>`) can be pasted back into a shell as it is.
 */
export function seedOption(text: string): string {
  if (!/^[\w.:-]{1,64}$/.test(text)) throw new InvalidArgumentError(`--seed must be 1-64 characters of letters, digits, _ . : or -, got "${text}"`);
  return text;
}

/** Parses a non-negative integer option, bounded by `max`. */
export function intOption(name: string, min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${text}"`);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in ${min}..${max}, got ${n}`);
    return n;
  };
}

/** Parses a rate in [0, 1] (a probability per operation). */
export function rateOption(name: string): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} must be a number in 0..1, got "${text}"`);
    return n;
  };
}

export type LockMode = 'borrowed' | 'inline';
export const LOCK_MODES: readonly LockMode[] = ['borrowed', 'inline'];

export function lockModeOption(text: string): LockMode {
  if (!LOCK_MODES.includes(text as LockMode)) throw new InvalidArgumentError(`unknown lock mode "${text}" (borrowed or inline)`);
  return text as LockMode;
}

export function lockKindOption(text: string): LockKind {
  if (!LOCK_KINDS.includes(text as LockKind)) throw new InvalidArgumentError(`unknown lock algorithm "${text}" (one of ${LOCK_KINDS.join(', ')})`);
  return text as LockKind;
}

export function sanitizeOption(text: string): boolean {
  if (['on', 'true', '1', 'yes'].includes(text)) return true;
  if (['off', 'false', '0', 'no'].includes(text)) return false;
  throw new InvalidArgumentError(`sanitizer must be on or off, got "${text}"`);
}

/** Parses a number in [0, max] (e.g. a rate per second). */
export function numberOption(name: string, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`${name} must be a number in 0..${max}, got "${text}"`);
    return n;
  };
}

/** `--suite`: repeatable, each a comma-separated list of suites or `all`; accumulates into `previous`. */
export function suitesOption(text: string, previous: Suite[] | undefined): Suite[] {
  const out = [...(previous ?? [])];
  for (const name of text.split(',').map((x) => x.trim())) {
    if (name === 'all') out.push(...SUITES);
    else if ((SUITES as readonly string[]).includes(name)) out.push(name as Suite);
    else throw new InvalidArgumentError(`unknown suite "${name}". Allowed choices are ${[...SUITES, 'all'].join(', ')}.`);
  }
  return out;
}

/**
 * A file to write: resolved to an absolute path. Refused before anything runs: an existing directory
 * there, or a directory to put it in that does not exist or cannot be written (a run must not end
 * in an error about where its output goes).
 */
/** A directory option's parser: refuses an empty path (what it means is said when the directory is read). */
export function dirOption(name: string): (text: string) => string {
  return (text) => {
    if (text.trim() === '') throw new InvalidArgumentError(`${name} needs a directory, got an empty string`);
    return text;
  };
}

export function fileOption(name: string): (text: string) => string {
  return (text) => {
    if (text.trim() === '') throw new InvalidArgumentError(`${name} needs a file name`);
    const file = resolve(text);
    if (existsSync(file) && statSync(file).isDirectory()) throw new InvalidArgumentError(`${name} ${text} is a directory, not a file`);
    const dir = dirname(file);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InvalidArgumentError(`${name} ${text}: directory ${dir} does not exist`);
    try {
      accessSync(dir, constants.W_OK);
      if (existsSync(file)) accessSync(file, constants.W_OK);
    } catch {
      throw new InvalidArgumentError(`${name} ${text}: cannot be written here (no permission)`);
    }
    return file;
  };
}

/** `--baseline`: an earlier run file, read and checked now, so a bad one is refused before anything runs. */
export function baselineOption(text: string): { file: string; run: BenchRun } {
  // An empty name would resolve to the current directory ("cannot be read (EISDIR)").
  if (text.trim() === '') throw new InvalidArgumentError('--baseline needs a file name');
  const file = resolve(text);
  try {
    return { file, run: readRun(file) };
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
}

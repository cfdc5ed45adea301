/**
 * The files a command is about to write, checked before it runs: each may be created, or replace
 * a file fencelab wrote before (a previous run's trace, report, run file or dump), but never an
 * unrelated file that happens to have the name — `--html README.md` or, run as root,
 * `--trace /etc/passwd` — unless the user says so with `--force`. Also checked: the files written
 * next to the one named (a trace's timeline page, a report's traced sample) can be written.
 */
import { accessSync, closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { GENERATOR_META } from '../trace/viewer.js';

/** How much of a file's start and end is read to recognise it (every marker below sits there). */
const PEEK_BYTES = 4096;

/**
 * What marks a file fencelab wrote: the `format` of a run file or dump and the `producer` of a
 * Chrome trace (at the end of the file: `otherData` follows the events), the `generator` meta
 * element of an HTML page, and the titles of pages written before that element existed.
 */
const MARKERS: readonly RegExp[] = [
  /"format":\s*"fencelab-(?:bench-run|dump)"/,
  /"producer":\s*"fencelab"/,
  new RegExp(GENERATOR_META),
  /<title>fencelab (?:benchmarks|trace|demo — |stress — seed )/,
];

/** True when `file` is empty or carries one of fencelab's markers in its first or last PEEK_BYTES. */
export function wroteByFencelab(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return true;
    const head = Buffer.alloc(Math.min(size, PEEK_BYTES));
    readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(size, PEEK_BYTES));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    const text = `${head.toString('utf8')}\n${tail.toString('utf8')}`;
    return MARKERS.some((m) => m.test(text));
  } finally {
    closeSync(fd);
  }
}

/** One file a command will write: the option that named it (for the message) and its absolute path. */
export interface PlannedOutput {
  option: string;
  file: string;
}

/**
 * Why writing `outputs` must not start, or null when it may: an existing file that cannot be
 * written, is a directory, or (without `force`) was not written by fencelab. Never throws.
 */
export function outputsRefusal(outputs: readonly PlannedOutput[], force: boolean): string | null {
  for (const { option, file } of outputs) {
    if (!existsSync(file)) continue;
    try {
      if (statSync(file).isDirectory()) return `${option}: ${file} is a directory, not a file`;
      accessSync(file, constants.W_OK);
    } catch {
      return `${option}: ${file} cannot be written here (no permission)`;
    }
    let ours: boolean;
    try {
      ours = wroteByFencelab(file);
    } catch {
      return `${option}: ${file} exists and cannot be read to check what it is`;
    }
    if (!ours && !force) return `${option}: ${file} exists and was not written by fencelab; name another file, or pass --force to overwrite it`;
  }
  return null;
}

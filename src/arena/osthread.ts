/**
 * The operating-system identity of a thread, so that another thread can tell synchronously that it
 * is gone. Node tells a parent that its worker died only through the worker's 'exit' event, on the
 * parent's event loop; a parent blocked in a wait on something the dead worker held never sees that
 * event. The kernel knows at once: a terminated worker's thread leaves `/proc/self/task` within
 * milliseconds (measured: ~20 ms after `terminate()`, while the parent's loop is blocked).
 *
 * Linux only (where fencelab's model comes from); elsewhere the identity is unknown (0) and a
 * thread is never taken for gone. A thread id the kernel reused for a new thread is told apart by
 * the thread's start time (`/proc/…/stat` field 22, clock ticks since boot).
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** This thread's [kernel thread id, start time (low 31 bits)], or [0, 0] when unknown. */
let own: [number, number] | undefined;

/** The start time field of a `/proc/…/stat` line (low 31 bits), or -1 when the task has exited or the line is unreadable. */
function startTime(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (the state): Z and X are a thread that has exited.
  if (rest.length < 20 || rest[0] === 'Z' || rest[0] === 'X') return -1;
  const t = Number(rest[19]);
  return Number.isSafeInteger(t) ? t % 0x7fffffff : -1;
}

/**
 * The calling thread's [kernel thread id, start time], read once per thread; [0, 0] where the
 * kernel does not tell (not Linux, no /proc).
 */
export function ownOsThread(): [number, number] {
  if (own) return own;
  own = [0, 0];
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/')[2]);
    const start = startTime(readFileSync(`/proc/thread-self/stat`, 'utf8'));
    // Only an identity that the lookup other threads make finds again: were they to miss it, they
    // would take this live thread for a dead one.
    if (Number.isSafeInteger(tid) && tid > 0 && tid <= 0x7fffffff && start >= 0 && !osThreadGone(tid, start)) own = [tid, start];
  } catch {
    // No /proc: the identity stays unknown and nothing is ever taken for gone.
  }
  return own;
}

/**
 * True when the thread recorded as (`tid`, `start`) by {@link ownOsThread} no longer exists in this
 * process: its task is gone, has exited, or its id now names a thread started at another time.
 * False when unknown (`tid` 0) or when /proc cannot be read for another reason.
 * Costs a file read (~20 µs): callers ask after waiting a while, not per spin.
 */
export function osThreadGone(tid: number, start: number): boolean {
  if (!(tid > 0)) return false;
  try {
    const now = startTime(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'));
    return now !== start;
  } catch (e) {
    return (e as { code?: string }).code === 'ENOENT';
  }
}

/**
 * The workers this thread watches (`arena.watch`, src/arena/threads.ts), by Node threadId. A
 * watched worker's reap runs on this thread's event loop, at the worker's 'exit' event, so a wait
 * of this thread on what such a worker held holds that reap back itself: only such a waiter acts
 * before the event (src/locks/owners.ts, reapGoneThreads) — any other is released by the reap.
 * A module of its own: the lock layer asks it, and the arena's own modules sit below that layer.
 */

/** Node threadId → how many watches (one per arena watching it). */
const watching = new Map<number, number>();

/** Notes one more watch of the worker of Node threadId `tid`. */
export function noteWatch(tid: number): void {
  watching.set(tid, (watching.get(tid) ?? 0) + 1);
}

/** Drops one watch of `tid` (its 'exit' came). */
export function forgetWatch(tid: number): void {
  const n = (watching.get(tid) ?? 1) - 1;
  if (n > 0) watching.set(tid, n);
  else watching.delete(tid);
}

/** True when this thread watches the worker of Node threadId `tid`. */
export function watches(tid: number): boolean {
  return watching.has(tid);
}

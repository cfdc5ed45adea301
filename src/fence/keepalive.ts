/**
 * A pending Atomics.waitAsync does not keep Node alive. While this thread has async waits (or
 * callbacks awaiting delivery) pending, one timer is ref'd; it is unref'd when the count drops to 0.
 *
 * The timer is created once per thread and then only ref'd / unref'd: creating and clearing an
 * interval on every wait cost ~0.3–0.6 µs on the wake path of `waitAsync` (releaseAlive runs
 * before the waiter's continuation), ref/unref costs a few tens of ns. An unref'd timer holds
 * nothing open and is not reported by process.getActiveResourcesInfo().
 */
let pending = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** Threads: any (per-thread state). Takes one hold; the first one refs the keepalive timer. */
export function holdAlive(): void {
  if (pending++ !== 0) return;
  if (timer === undefined) timer = setInterval(() => {}, 1 << 30);
  else timer.ref();
}

/** Drops one hold (no-op at 0); the last one unrefs the timer, so it holds the process no more. */
export function releaseAlive(): void {
  if (pending === 0) return;
  if (--pending === 0 && timer !== undefined) timer.unref();
}

/** Number of holds (tests use it to prove nothing is left pending). */
export function aliveHolds(): number {
  return pending;
}

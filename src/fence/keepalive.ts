/**
 * A pending Atomics.waitAsync does not keep Node alive. While this thread has async waits (or
 * callbacks awaiting delivery) pending, we hold one ref'd timer; it goes when the count drops to 0.
 */
let pending = 0;
let timer: ReturnType<typeof setInterval> | undefined;

export function holdAlive(): void {
  if (pending++ === 0) timer = setInterval(() => {}, 1 << 30);
}

export function releaseAlive(): void {
  if (pending === 0) return;
  if (--pending === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}

/** Number of holds (tests use it to prove nothing is left pending). */
export function aliveHolds(): number {
  return pending;
}

/**
 * Running code under a lock: the one try/finally that every `withLock` is (the SpinLock's and the
 * Fence view's), so the unlock-on-throw rule is written once.
 */

/**
 * Runs `fn` between `l.lock()` and `l.unlock()`; rethrows `fn`'s error after unlocking.
 * Locking: takes and releases `l` (whatever its own lock() and unlock() do: not re-entrant for the
 * locks of this package). Threads: any that may take `l`. Returns what `fn` returns.
 *
 * Small so that V8 inlines it into each caller: the Fence view's `withLock` keeps its one-CAS fast
 * paths (the bench's `fence withLock(fn) inline` row measures it against a raw TAS pair).
 */
export function withHeld<T>(l: { lock(): unknown; unlock(): void }, fn: () => T): T {
  l.lock();
  try {
    return fn();
  } finally {
    l.unlock();
  }
}

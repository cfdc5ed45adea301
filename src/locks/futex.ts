/**
 * The owner-recording futex word (Drepper's "mutex 2" with the holder's thread slot in the word).
 * The arena's internal locks (size-class free lists, stub creation) use it, and so does the
 * `futex` lock kind in `src/locks/`: one implementation serves both.
 *
 * Word: 0 free; otherwise `owner | LOCK_WAITERS? | LOCK_DIED?` with `owner` = thread slot + 1.
 */
import { LOCK_DIED, LOCK_OWNER_MASK, LOCK_WAITERS } from './layout.js';
import { watchOwner } from './owners.js';

/**
 * Looks at the word before sleeping. With the backoff between them (below) they span about 0.25 µs:
 * a short critical section already running on another core ends within that. A word still held
 * after it is being retaken back to back, or its holder was preempted, and then sleeping serves
 * both threads better: the holder goes on at one thread's speed from its own cache instead of
 * handing the line over at every acquisition.
 * Measured in the contention bench's setting (2 workers, not pinned; the fence's inline lock ÷ a
 * bare test-and-set, interleaved rounds in one process, median of 10), looks / backoff cap:
 * 12 / 256 (~2.5 µs, the old setting) 0.98–1.10×, and 0.65–1.10× from one full bench run to the
 * next; 40 / 32 0.74–0.87×; 20 / 32 0.90×; 12 / 64 1.31×; 12 / 32 1.52–1.91×; 6 / 64 2.09–2.51×;
 * 4 / 64 2.31×; 2 / 256 2.75×. The shorter the spin, the more often a waiter sleeps: at 6 / 64 the
 * two workers used 1.3–1.6 of the 2 cores, at 12 / 256 1.9–2.0. Shares stayed even over a 200 ms
 * cell (Jain index ≥ 0.96). No shorter: every sleep costs the sleeper 13–120 µs before it runs again.
 */
export const FUTEX_SPINS = 6;
/**
 * Busy wait between two looks, in iterations of a multiply-add that touches no memory: it doubles
 * from SPIN_BACKOFF_MIN (a few ns) to SPIN_BACKOFF_MAX (~80 ns). Every look at a held word takes
 * a copy of its cache line, and the holder's next compare-exchange on it (its unlock, then its next
 * lock) has to take the line back first: a waiter that looks back to back makes every release a
 * hand-over, and with two threads the lock changed hands at every acquisition (measured: one
 * acquisition per hand-over), each costing several cross-core line transfers. Looking less often
 * lets the holder release and retake the word from its own cache now and then.
 */
const SPIN_BACKOFF_MIN = 4;
const SPIN_BACKOFF_MAX = 64;
/** Where the backoff's busy work goes, so that the compiler cannot drop the loop. */
let backoffSink = 0;

/** `n` dependent multiply-adds on `x` (~1.3 ns each), no memory traffic: the spin's backoff. */
function backoff(n: number, x: number): number {
  for (let k = 0; k < n; k++) x = (Math.imul(x, 1103515245) + 12345) | 0;
  return x;
}

/** A sleep without deadline wakes this often to look at the holder (see owners.ts). */
const WAIT_SLICE_MS = 50;

/** Result of an acquisition: 0 timed out, 1 acquired, 2 acquired from a holder that died. */
export const ACQ_TIMEOUT = 0;
export const ACQ_OK = 1;
export const ACQ_OWNER_DIED = 2;

/**
 * The spin phase of an acquisition: looks at the word FUTEX_SPINS times with the backoff between
 * the looks, and takes it when it sees it free. `old`: the word the caller last saw (non-zero).
 * Small and flat on purpose: a caller on a hot path (the fence lock) calls it directly, so that V8
 * compiles it into the caller's optimised code. Inside futexLock, reached through acquireInlineSeen,
 * acquireContended and acquireSlow, the spin stayed in V8's baseline tier in the contention bench's
 * workers (%GetOptimizationStatus after 400 ms of contention): every look and compare-exchange a
 * call into a builtin.
 * Returns ACQ_OK or ACQ_OWNER_DIED when it took the word, ACQ_TIMEOUT when it gave up (still held).
 */
export function futexSpin(i32: Int32Array, idx: number, me: number, old: number): number {
  let wait = SPIN_BACKOFF_MIN;
  let x = old;
  for (let spin = 0; spin < FUTEX_SPINS; spin++) {
    if ((old & LOCK_OWNER_MASK) === 0) {
      // Keep LOCK_WAITERS if it is set: sleepers may still be queued behind us.
      const seen = Atomics.compareExchange(i32, idx, old, me | (old & LOCK_WAITERS));
      if (seen === old) {
        backoffSink = x;
        return old & LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
      }
    }
    // Held (or taken under us): wait without touching the line, then look again.
    x = backoff(wait, x);
    if (wait < SPIN_BACKOFF_MAX) wait <<= 1;
    old = Atomics.load(i32, idx);
  }
  backoffSink = x;
  return ACQ_TIMEOUT;
}

/**
 * Acquires the futex word at `idx` for owner `me` (slot + 1). `seen`: the word a failed
 * compare-exchange of the caller's just returned (non-zero), so that this one starts spinning
 * instead of trying another: each compare-exchange on a held word takes its cache line away from
 * the holder, who needs it back to unlock. `spun`: the caller already ran {@link futexSpin} and it
 * gave up; straight to sleeping.
 * Threads: any; on Node's main thread a contended wait blocks the event loop.
 * Returns ACQ_OK, ACQ_OWNER_DIED, or ACQ_TIMEOUT once `deadline` (performance.now() ms) passes.
 * Throws ENOTRECOVERABLE, without a deadline only, when the word names a holder that cannot exist.
 */
export function futexLock(i32: Int32Array, idx: number, me: number, deadline: number, seen?: number, spun = false): number {
  let old = seen ?? Atomics.compareExchange(i32, idx, 0, me);
  if (old === 0) return ACQ_OK;
  if (!spun) {
    const r = futexSpin(i32, idx, me, old);
    if (r !== ACQ_TIMEOUT) return r;
  }
  let since = -1;
  for (;;) {
    old = Atomics.load(i32, idx);
    if ((old & LOCK_OWNER_MASK) === 0) {
      // Taking it after a sleep: we cannot know whether others sleep, so leave the waiters bit set.
      const seen = Atomics.compareExchange(i32, idx, old, me | LOCK_WAITERS);
      if (seen === old) return old & LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
      continue;
    }
    if ((old & LOCK_OWNER_MASK) === me) return ACQ_TIMEOUT; // caller checks recursion before us
    if ((old & LOCK_WAITERS) === 0) {
      // Publish that we sleep before sleeping: the holder's unlock reads this bit to decide on notify.
      if (Atomics.compareExchange(i32, idx, old, old | LOCK_WAITERS) !== old) continue;
      old |= LOCK_WAITERS;
    }
    const now = performance.now();
    const left = deadline - now;
    if (left <= 0) return ACQ_TIMEOUT;
    if (left === Infinity) since = watchOwner(i32, idx, old, now, since);
    Atomics.wait(i32, idx, old, left === Infinity ? WAIT_SLICE_MS : left);
  }
}

/** Try once: ACQ_OK / ACQ_OWNER_DIED, or ACQ_TIMEOUT when held. */
export function futexTryLock(i32: Int32Array, idx: number, me: number): number {
  const old = Atomics.load(i32, idx);
  if ((old & LOCK_OWNER_MASK) !== 0) return ACQ_TIMEOUT;
  if (Atomics.compareExchange(i32, idx, old, me | (old & LOCK_WAITERS)) !== old) return ACQ_TIMEOUT;
  return old & LOCK_DIED ? ACQ_OWNER_DIED : ACQ_OK;
}

/** Releases a futex word the caller holds (ownership checked by the caller). Wakes one sleeper. */
export function futexUnlock(i32: Int32Array, idx: number): void {
  const old = Atomics.exchange(i32, idx, 0);
  if (old & LOCK_WAITERS) Atomics.notify(i32, idx, 1);
}

/**
 * Releases a word held by a dead owner `dead` (slot + 1) and marks it LOCK_DIED so the next
 * locker is told. Returns true when the word was held by `dead`.
 */
export function futexReleaseDead(i32: Int32Array, idx: number, dead: number): boolean {
  for (;;) {
    const old = Atomics.load(i32, idx);
    if ((old & LOCK_OWNER_MASK) !== dead) return false;
    const next = (old & ~LOCK_OWNER_MASK) | LOCK_DIED;
    if (Atomics.compareExchange(i32, idx, old, next) === old) {
      Atomics.notify(i32, idx);
      return true;
    }
  }
}

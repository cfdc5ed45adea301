/**
 * Worker fixture: hammers one SpinLock, or one fence's lock. Each of `iterations` rounds takes the
 * lock (lock() with a bounded timeout, or a tryLock() spin every 8th round; a fence mostly with
 * lock() and no timeout, its fast path), increments a NON-atomic counter with a read–pause–write
 * sequence (lost updates show when mutual exclusion breaks) and checks that it is alone in the
 * critical section.
 *
 * workerData: { buffer, ref, iterations, shared, fence? } — `fence`: a fence handle to hammer the
 * lock of instead of the SpinLock `ref`; `shared` is an Int32Array SAB:
 * [0] counter (plain reads/writes), [1] threads inside the critical section, [2] start barrier.
 * Posts { type: 'done', rounds, violations, timeouts } after detaching.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, SpinLock } from '../src/index.js';

const COUNTER = 0;
const INSIDE = 1;
const START = 2;

const { buffer, ref, iterations, shared, fence } = workerData as {
  buffer: SharedArrayBuffer;
  ref: number;
  fence?: number;
  iterations: number;
  shared: SharedArrayBuffer;
};

try {
  const arena = Arena.attach(buffer);
  const lock = fence === undefined ? SpinLock.fromRef(arena, ref) : fenceLock(Fence.fromHandle(arena, fence));
  const s = new Int32Array(shared);
  let violations = 0;
  let timeouts = 0;
  let rounds = 0;
  // Start together: both workers arrive, the second one releases the first.
  if (Atomics.add(s, START, 1) === 0) Atomics.wait(s, START, 1, 5_000);
  else Atomics.notify(s, START);
  let sink = 0;
  for (let i = 0; i < iterations; i++) {
    if ((i & 7) === 7) {
      const deadline = Date.now() + 10_000;
      while (!lock.tryLock()) {
        if (Date.now() > deadline) break;
      }
      if (lock.owner !== arena.slot) {
        timeouts++;
        continue;
      }
    } else if (!lock.lock(10_000)) {
      timeouts++;
      continue;
    }
    if (Atomics.add(s, INSIDE, 1) !== 0) violations++;
    const c = s[COUNTER];
    for (let k = 0; k < (i & 15); k++) sink += k; // widen the race window a little
    s[COUNTER] = c + 1;
    Atomics.sub(s, INSIDE, 1);
    lock.unlock();
    rounds++;
  }
  arena.detach();
  parentPort!.postMessage({ type: 'done', rounds, violations, timeouts, sink: sink & 1 });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e), code: (e as { code?: string }).code });
}

/** The fence's lock with the SpinLock calls the loop makes; 7 of 8 rounds take the fast path. */
function fenceLock(f: Fence): Pick<SpinLock, 'lock' | 'tryLock' | 'unlock' | 'owner'> {
  let n = 0;
  return {
    lock: (timeoutMs?: number) => ((++n & 7) === 3 ? f.lock(timeoutMs) : f.lock()),
    tryLock: () => f.lock(0),
    unlock: () => f.unlock(),
    get owner() {
      try {
        f.assertHeld();
        return f.arena.slot;
      } catch {
        return -1; // held by another thread or free: all the loop asks is "is it mine?"
      }
    },
  };
}

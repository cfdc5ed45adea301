/**
 * Worker fixture: hammers one lock until it is terminated (or told to stop), so that the test can
 * kill it at a random point — waiting, taking a ticket, holding, releasing — and check what its
 * death leaves. One of a few lanes; a killed lane's replacement continues its counts.
 *
 * Each round takes the lock in one of three ways — lock() without timeout, lock(t) with a short
 * timeout (a ticket waiter then leaves the queue: another kind of "stopped waiter"), or tryLock()
 * — and runs a critical section that
 *  - marks the lane inside (IN + lane) and counts a violation if another lane is marked inside;
 *  - reads the counter, pauses (a loop: terminate() can land here), then writes counter + 1 and
 *    DONE + lane in one run of plain writes (terminate() cannot land between them), so that
 *    COUNTER === the sum of DONE over the lanes, exactly, whatever the kills;
 *  - clears its mark and unlocks.
 *
 * workerData: { buffer, shared, lane, lanes, seed, gate?, ref?, fence? } — `fence`: hammer that
 * fence's lock instead of the SpinLock `ref`; `shared`: the cells of lock-kill-cells.ts; `gate`: a
 * replacement posts { type: 'ready' } once attached and starts when GO + lane holds `gate` (it
 * boots while its predecessor still runs). Between rounds a lane sleeps while PAUSE is set (a
 * worker boots slowly next to lanes spinning on both cores).
 * Posts { type: 'stopped', rounds, timeouts } after detaching once STOP is set.
 */
import { parentPort, workerData } from 'node:worker_threads';
// The three modules it uses, not the package entry: the test boots hundreds of these, and a lane
// neither reaps nor checks (the layers' hooks it skips are the test thread's, which loads them all).
import { Arena } from '../src/arena/arena.js';
import { Fence } from '../src/fence/fence.js';
import { SpinLock } from '../src/locks/spinlock.js';
import { COUNTER, DONE, GO, IN, PAUSE, ROUNDS, STOP, VIOLATIONS } from './lock-kill-cells.js';
import { seededInt } from './seeded.js';

const { buffer, shared, lane, lanes, seed, gate, ref, fence } = workerData as {
  buffer: SharedArrayBuffer;
  gate?: number;
  shared: SharedArrayBuffer;
  lane: number;
  lanes: number;
  seed: string;
  ref?: number;
  fence?: number;
};

interface Lockable {
  lock(timeoutMs?: number): boolean;
  tryLock(): boolean;
  unlock(): void;
}

try {
  const arena = Arena.attach(buffer);
  const s = new Int32Array(shared);
  let lockable: Lockable;
  if (fence === undefined) {
    lockable = SpinLock.fromRef(arena, ref!);
  } else {
    const f = Fence.fromHandle(arena, fence);
    lockable = { lock: (t) => f.lock(t), tryLock: () => f.lock(0), unlock: () => f.unlock() };
  }
  let rounds = 0;
  let timeouts = 0;
  let sink = 0;
  const rand = seededInt(seed);
  if (gate !== undefined) {
    parentPort!.postMessage({ type: 'ready' });
    for (let v; (v = Atomics.load(s, GO + lane)) !== gate && Atomics.load(s, STOP) === 0; ) Atomics.wait(s, GO + lane, v, 1000);
  }
  while (Atomics.load(s, STOP) === 0) {
    if (Atomics.load(s, PAUSE) !== 0) {
      Atomics.wait(s, PAUSE, 1, 100);
      continue;
    }
    const how = rand(8);
    const got = how < 5 ? lockable.lock() : how < 7 ? lockable.lock(rand(3)) : lockable.tryLock();
    if (!got) {
      timeouts++;
      continue;
    }
    Atomics.store(s, IN + lane, 1);
    for (let o = 0; o < lanes; o++) if (o !== lane && Atomics.load(s, IN + o) !== 0) Atomics.add(s, VIOLATIONS, 1);
    const c = s[COUNTER];
    for (let k = 0, n = rand(32); k < n; k++) sink += k;
    s[COUNTER] = c + 1;
    s[DONE + lane] = s[DONE + lane] + 1;
    Atomics.store(s, IN + lane, 0);
    lockable.unlock();
    rounds++;
    Atomics.add(s, ROUNDS, 1);
  }
  arena.detach();
  parentPort!.postMessage({ type: 'stopped', rounds, timeouts, sink: sink & 1 });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e), code: (e as { code?: string }).code });
}

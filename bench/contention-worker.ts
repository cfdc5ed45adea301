/**
 * Contention bench worker: takes one lock as often as it can until told to stop, incrementing a
 * plain counter that sits next to the lock word (same cache line), and counts its acquisitions.
 * kind 'raw' is the baseline: a bare Atomics.exchange/store test-and-set on a plain SAB word.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, SpinLock, type LockKind } from '../src/index.js';
import { CTL_READY, CTL_START, CTL_STOP } from './contention-protocol.js';

const { buffer, ref, kind, ctl, raw } = workerData as {
  buffer: SharedArrayBuffer;
  ref: number;
  kind: LockKind | 'raw';
  ctl: SharedArrayBuffer;
  raw: SharedArrayBuffer;
};

const c = new Int32Array(ctl);
const arena = Arena.attach(buffer);
Atomics.add(c, CTL_READY, 1);
Atomics.notify(c, CTL_READY);
while (Atomics.load(c, CTL_START) === 0) Atomics.wait(c, CTL_START, 0, 1000);

let n = 0;
if (kind === 'raw') {
  const w = new Int32Array(raw);
  while (Atomics.load(c, CTL_STOP) === 0) {
    for (let k = 0; k < 64; k++) {
      while (Atomics.exchange(w, 0, 1) !== 0);
      w[1]++;
      Atomics.store(w, 0, 0);
    }
    n += 64;
  }
} else {
  // The counter is the word after the lock word, in the same block (one cache line).
  const lock = SpinLock.at(arena, ref, 0, kind);
  const i32 = arena.i32;
  const counter = lock.index + 1;
  while (Atomics.load(c, CTL_STOP) === 0) {
    for (let k = 0; k < 64; k++) {
      lock.lock();
      i32[counter]++;
      lock.unlock();
    }
    n += 64;
  }
}
arena.detach();
parentPort!.postMessage(n);

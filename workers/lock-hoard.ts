/**
 * Worker fixture: takes many locks of a shared arena, releases some of them out of order, and then
 * holds the rest until it is terminated — so that the test can check that the reaper gives back
 * every word a dead thread held, whatever order its robust list was left in.
 *
 * workerData: { buffer, refs, release } — `refs`: SpinLock handles to lock in that order;
 * `release`: indexes into `refs` to unlock afterwards, in that order. Posts { type: 'held', slot }
 * and then blocks (bounded, 60 s) until terminated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, SpinLock } from '../src/index.js';

const { buffer, refs, release } = workerData as { buffer: SharedArrayBuffer; refs: number[]; release: number[] };

try {
  const arena = Arena.attach(buffer);
  const locks = refs.map((r) => SpinLock.fromRef(arena, r));
  for (const l of locks) if (!l.lock(10_000)) throw new Error('lock-hoard could not take a lock');
  for (const i of release) locks[i].unlock();
  parentPort!.postMessage({ type: 'held', slot: arena.slot });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e), code: (e as { code?: string }).code });
}

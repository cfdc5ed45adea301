/**
 * piscina task module for the runtime suite: payload { spinUs?, fail?, index? } — spins `spinUs`,
 * records its completion order in tally[index] (an Atomics counter at tally[0] hands out
 * positions; the tally is the pool's workerData, since payloads travel through the arena and a
 * SharedArrayBuffer cannot), throws when `fail`.
 */
import { workerData } from 'node:worker_threads';
import { fenceTask } from '../src/index.js';

interface Payload {
  spinUs?: number;
  fail?: boolean;
  index?: number;
}

const tally = (workerData as { tally?: SharedArrayBuffer } | undefined)?.tally;

export default fenceTask(async (p) => {
  const payload = (p ?? {}) as Payload;
  const end = performance.now() + (payload.spinUs ?? 0) / 1000;
  while (performance.now() < end);
  if (payload.fail) throw new Error('task failed on purpose');
  if (tally && payload.index !== undefined) {
    const t = new Int32Array(tally);
    t[payload.index] = Atomics.add(t, 0, 1) + 1;
  }
  return payload.index ?? 0;
});

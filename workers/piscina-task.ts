/**
 * piscina task module for the runtime suite and the CLI: payload { spinUs?, fail?, tallyBuffer?,
 * index?, order? } — spins `spinUs`, records its completion order in tally[index] (an Atomics
 * counter at tally[0] hands out positions), throws when `fail`.
 */
import { fenceTask } from '../src/index.js';

interface Payload {
  spinUs?: number;
  fail?: boolean;
  tally?: SharedArrayBuffer;
  index?: number;
}

export default fenceTask(async (p) => {
  const payload = p as Payload;
  const end = performance.now() + (payload.spinUs ?? 0) / 1000;
  while (performance.now() < end);
  if (payload.fail) throw new Error('task failed on purpose');
  if (payload.tally && payload.index !== undefined) {
    const t = new Int32Array(payload.tally);
    t[payload.index] = Atomics.add(t, 0, 1) + 1;
  }
  return payload.index ?? 0;
});

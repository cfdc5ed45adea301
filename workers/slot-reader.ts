/**
 * Worker fixture for the kernel-parity suite: reads a FenceSlot that the main thread keeps
 * replacing, the way a kernel reader uses dma_fence_get_rcu_safe on a pointer others update.
 *
 * workerData: { buffer, slot (FenceSlot handle), rounds, tally: SharedArrayBuffer }.
 * tally[0] is set to 1 when the worker starts reading, and bumped to 2 when it is done; tally[1]
 * counts reads that returned a fence, tally[2] reads of a fence that was not live (must stay 0).
 * Posts 'done' { got, bad } and exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, FenceSlot } from '../src/index.js';

const wd = workerData as { buffer: SharedArrayBuffer; slot: number; rounds: number; tally: SharedArrayBuffer };
const arena = Arena.attach(wd.buffer);
const tally = new Int32Array(wd.tally);
const slot = FenceSlot.fromHandle(arena, wd.slot);
Atomics.store(tally, 0, 1);
let got = 0;
let bad = 0;
for (let i = 0; i < wd.rounds; i++) {
  const f = slot.get();
  if (f === null) continue;
  got++;
  // A reference we hold: the fence is live, its count is ours at least, its seqno is one we published.
  if (f.refcount < 1 || f.seqno < 1) bad++;
  f.put();
}
Atomics.store(tally, 1, got);
Atomics.store(tally, 2, bad);
Atomics.store(tally, 0, 2);
arena.detach();
parentPort!.postMessage({ type: 'done', got, bad });

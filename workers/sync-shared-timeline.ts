/**
 * Fixture for the sync selftest "two threads on a shared timeline" (kernel
 * sync_stress_parallelism.c): thread `id` waits for point `i * 2 + id`, checks and bumps a plain
 * (non-atomic) counter, then advances the timeline by one to hand over to the other thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, SwTimeline, SyncFile } from '../src/index.js';

interface Data {
  buffer: SharedArrayBuffer;
  timeline: number;
  id: number;
  iterations: number;
  counter: SharedArrayBuffer;
  timeoutMs: number;
}
const { buffer, timeline, id, iterations, counter, timeoutMs } = workerData as Data;
const arena = Arena.attach(buffer);
const tl = SwTimeline.fromHandle(arena, timeline);
const count = new Int32Array(counter);

try {
  for (let i = 0; i < iterations; i++) {
    const fd = tl.createFence(i * 2 + id, 'fence');
    if (!SyncFile.wait(arena, fd, timeoutMs)) throw new Error(`thread ${id}: point ${i * 2 + id} not signaled within ${timeoutMs} ms`);
    // Plain read and write on purpose: the fence hand-over is what orders the two threads.
    if (count[0] !== i * 2 + id) throw new Error(`thread ${id}: counter ${count[0]} at step ${i}, expected ${i * 2 + id}`);
    count[0]++;
    tl.inc(1);
    SyncFile.close(arena, fd);
  }
  tl.close();
  arena.detach();
  parentPort!.postMessage({ type: 'done', id });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
}

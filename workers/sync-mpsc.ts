/**
 * Fixture for the sync selftest "multi-producer, single-consumer" (kernel sync_stress_consumer.c).
 * Producer `id`: wait for the consumer's point `i`, bump the shared counter under a lock, advance
 * its own timeline. Consumer: merge one point `it` of every producer timeline, wait for it, check
 * the counter is `n * it`, advance the consumer timeline. Waits alternate, like the kernel's,
 * between a sleeping wait and polling the fences' status through SyncFile.info.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, SpinLock, SwTimeline, SyncFile } from '../src/index.js';

interface Data {
  buffer: SharedArrayBuffer;
  role: 'producer' | 'consumer';
  id: number;
  consumer: number;
  producers: number[];
  lock: number;
  iterations: number;
  counter: SharedArrayBuffer;
  timeoutMs: number;
}
const d = workerData as Data;
const arena = Arena.attach(d.buffer);
const count = new Int32Array(d.counter);
const lock = SpinLock.fromRef(arena, d.lock);
const consumer = SwTimeline.fromHandle(arena, d.consumer);
const producers = d.producers.map((h) => SwTimeline.fromHandle(arena, h));
let polls = 0;

/** Kernel busy_wait_on_fence: poll the fences' status until none is active; an error fails. */
function busyWait(fd: number): void {
  const deadline = performance.now() + d.timeoutMs;
  for (;;) {
    const info = SyncFile.info(arena, fd);
    if (info.fences.some((f) => f.status < 0)) throw new Error(`error on fence: ${JSON.stringify(info, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    if (!info.fences.some((f) => f.status === 0)) return;
    polls++;
    if (performance.now() > deadline) throw new Error(`busy wait: still active after ${d.timeoutMs} ms`);
    // Two cores for six threads: give the thread that will signal a chance to run.
    if (polls % 8 === 0) Atomics.wait(count, 1, 0, 0.02);
  }
}

function sleepWait(fd: number, what: string): void {
  if (!SyncFile.wait(arena, fd, d.timeoutMs)) throw new Error(`${what} not signaled within ${d.timeoutMs} ms`);
}

function producer(id: number): void {
  for (let i = 0; i < d.iterations; i++) {
    const fd = consumer.createFence(i, 'fence');
    if ((d.iterations + id) % 8 !== 0) sleepWait(fd, `consumer point ${i}`);
    else busyWait(fd);
    lock.withLock(() => {
      count[0]++;
    });
    producers[id].inc(1);
    SyncFile.close(arena, fd);
  }
}

function consume(): void {
  const n = producers.length;
  for (let it = 1; it <= d.iterations; it++) {
    let fd = producers[0].createFence(it, 'name');
    for (let i = 1; i < n; i++) {
      const tmp = producers[i].createFence(it, 'name');
      const merged = SyncFile.merge(arena, tmp, fd, 'name');
      SyncFile.close(arena, tmp);
      SyncFile.close(arena, fd);
      fd = merged;
    }
    if (d.iterations % 8 !== 0) sleepWait(fd, `producers' points ${it}`);
    else busyWait(fd);
    const seen = lock.withLock(() => count[0]);
    if (seen !== n * it) throw new Error(`counter ${seen} at iteration ${it}, expected ${n * it}`);
    consumer.inc(1);
    SyncFile.close(arena, fd);
  }
}

try {
  if (d.role === 'consumer') consume();
  else producer(d.id);
  consumer.close();
  for (const p of producers) p.close();
  arena.detach();
  parentPort!.postMessage({ type: 'done', role: d.role, id: d.id, polls });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
}

/**
 * Example: a worker is killed (worker.terminate()) while it holds a fence lock and a SpinLock;
 * the thread that watches it reaps its slot, and the next lockers get both locks.
 *
 * Shows: arena.watch(worker) — on the worker's 'exit', whatever the cause, the locks it held are
 * released and marked owner-died, and the references it recorded are dropped. A SpinLock reports
 * the take-over through lock.ownerDied, the sign that the data it guards may be half-updated.
 * Run: npm run build && node dist/examples/dead-worker.js
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, SpinLock } from 'fencelab';

if (isMainThread) {
  const arena = Arena.create({ bytes: 1 << 20 });
  const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  const lock = SpinLock.create(arena);
  const worker = new Worker(new URL(import.meta.url), { workerData: { buffer: arena.buffer, fence: fence.handle, lock: lock.ref } });
  arena.watch(worker); // before anything can make it exit
  const exited = new Promise((resolve) => worker.once('exit', resolve));

  await new Promise((resolve) => worker.once('message', resolve)); // it holds both locks now
  console.log(`main: fence lock free? ${fence.lock(10)}`); // false: 10 ms timeout, the worker holds it
  await worker.terminate(); // runs none of the worker's code: nothing unlocks
  await exited; // the watch reaped the worker's slot in its 'exit' listener

  console.log(`main: fence lock taken: ${fence.lock(1000)}`);
  fence.unlock();
  const took = lock.lock(1000);
  const died = lock.ownerDied; // true: repair what the lock guards before going on
  console.log(`main: spin lock taken: ${took}, ownerDied: ${died}`);
  lock.unlock();
  fence.signal();
  fence.put();
  lock.free();
  process.exitCode = took && died && arena.check().ok ? 0 : 1;
} else {
  const arena = Arena.attach(workerData.buffer);
  const fence = Fence.fromHandle(arena, workerData.fence);
  const lock = SpinLock.fromRef(arena, workerData.lock);
  fence.lock();
  lock.lock();
  parentPort!.postMessage('locked');
  for (;;); // stuck in the critical section until killed
}

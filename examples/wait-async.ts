/**
 * Example: the main thread awaits a fence that a worker signals, without blocking its event loop.
 *
 * Shows: Arena.create / Arena.attach, Fence.create, handing a reference to a worker (fence.share() →
 * Fence.receive: tracked on both sides, nothing leaks if either dies), fence.waitAsync() on the main
 * thread, fence.signal() in the worker.
 * Run: npm run build && node dist/examples/wait-async.js
 * (outside this repository: import from 'fencelab', compile with tsc, run the .js — a worker
 * entry must be JavaScript on Node 20).
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { Arena, Fence } from 'fencelab';

if (isMainThread) {
  // One arena for the whole program; every thread attaches to its buffer.
  const arena = Arena.create({ bytes: 1 << 20 });
  const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });

  // A reference for the worker, in this thread's ledger until the worker receives it (if the worker
  // dies first, it stays there until Fence.withdraw or this thread's detach or reap; once received,
  // the worker's reaper drops it).
  const token = fence.share();
  // This same file is the worker's entry point (the other branch below).
  const worker = new Worker(new URL(import.meta.url), { workerData: { buffer: arena.buffer, token } });
  arena.watch(worker); // if the worker dies, its slot (locks, references) is reaped
  const exited = new Promise((resolve) => worker.once('exit', resolve)); // listen before anything can exit

  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10); // proof that the event loop keeps running
  const signaled = await fence.waitAsync(5000); // false on timeout
  clearInterval(ticker);
  console.log(`main: ${ticks} timer ticks ran while waiting`);
  console.log(`main: fence ${signaled ? 'signaled' : 'timed out'}, status ${fence.status()}`);
  fence.put();
  await exited;
  console.log(`main: arena clean: ${arena.check().ok}`);
  process.exitCode = signaled ? 0 : 1;
} else {
  const { buffer, token } = workerData as { buffer: SharedArrayBuffer; token: number };
  const arena = Arena.attach(buffer);
  const fence = Fence.receive(arena, token); // our reference, recorded in our ledger in the claim
  await new Promise((resolve) => setTimeout(resolve, 100)); // "work"
  console.log('worker: signaling');
  fence.signal();
  fence.putTracked();
  arena.detach(); // leave the arena cleanly (a reap would do the same after an exit)
}

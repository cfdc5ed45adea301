/**
 * Example: a callback added by one worker runs in that worker when another worker signals.
 *
 * Shows: callbacks belong to the thread that added them; a signal in any other thread queues them
 * to the owner's inbox and the owner's dispatcher runs them (its pending callback keeps it alive).
 * Each worker gets its reference as a share token (fence.share() → Fence.receive → putTracked): the
 * reference is always in exactly one thread's ledger, so a worker that dies drops it; the signaler's
 * share also hands it the duty of signaling (a signaler that dies signals the fence -EOWNERDEAD).
 * Run: npm run build && node dist/examples/worker-callbacks.js
 */
import { Worker, isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { Arena, Fence } from 'fencelab';

type Role = 'owner' | 'signaler';

if (isMainThread) {
  const arena = Arena.create({ bytes: 1 << 20 });
  const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  const start = (role: Role) => {
    // One reference for each worker, in this thread's ledger until the worker receives it.
    const token = fence.share({ signaling: role === 'signaler' });
    const w = new Worker(new URL(import.meta.url), { workerData: { role, buffer: arena.buffer, token } });
    arena.watch(w);
    return { w, exited: new Promise((resolve) => w.once('exit', resolve)) };
  };
  const owner = start('owner');
  // Start the signaler only once the owner's callback is in place.
  await new Promise((resolve) => owner.w.once('message', resolve));
  const signaler = start('signaler');
  await Promise.all([owner.exited, signaler.exited]);
  console.log(`main: done, fence status ${fence.status()}`);
  fence.put();
  process.exitCode = arena.check().ok ? 0 : 1;
} else {
  const { role, buffer, token } = workerData as { role: Role; buffer: SharedArrayBuffer; token: number };
  const arena = Arena.attach(buffer);
  const fence = Fence.receive(arena, token); // now in this worker's ledger
  if (role === 'owner') {
    const ran = new Promise<void>((resolve) => {
      const cb = fence.addCallback((f) => {
        console.log(`owner (thread ${threadId}): callback ran here, status ${f.status()}`);
        resolve();
      });
      if (cb === null) resolve(); // null: already signaled, the callback will never run
    });
    console.log(`owner (thread ${threadId}): callback added`);
    parentPort!.postMessage('added');
    await ran;
  } else {
    console.log(`signaler (thread ${threadId}): signaling`);
    fence.signal(); // the owner's callback is queued to the owner, not run here
  }
  fence.putTracked();
  arena.detach();
}

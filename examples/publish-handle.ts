/**
 * Example: publishing a fence to another thread through shared memory instead of a message.
 *
 * Shows: a handle is a safe integer wider than 32 bits, so it goes in a Float64Array word (exact
 * for every safe integer), never an Int32Array, which would cut it. Atomics does not work on a
 * Float64Array, so an Int32 state word publishes it: write the handle, then Atomics.store the state;
 * the reader loads the handle only after it saw the state. The sender takes the receiver's reference
 * before publishing: between the publish and the receiver's Fence.fromHandle, the fence must not
 * be released by anyone.
 * Run: npm run build && node dist/examples/publish-handle.js
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { Arena, Fence } from 'fencelab';

const EMPTY = 0;
const PUBLISHED = 1;
// One shared "mailbox": an Int32 state word at byte 0, the Float64 handle word at byte 8.
const views = (box: SharedArrayBuffer) => ({ state: new Int32Array(box, 0, 1), handle: new Float64Array(box, 8, 1) });

if (isMainThread) {
  const arena = Arena.create({ bytes: 1 << 20 });
  const box = new SharedArrayBuffer(16);
  const { state, handle } = views(box);
  const worker = new Worker(new URL(import.meta.url), { workerData: { buffer: arena.buffer, box } });
  arena.watch(worker);
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));

  const context = Fence.contextAlloc(arena);
  // Freed blocks are reused, and each reuse bumps the block's generation, kept in the handle's high
  // bits: a little churn, and handles no longer fit in 32 bits.
  for (let seqno = 1; seqno <= 10; seqno++) Fence.create(arena, { context, seqno }).put();
  const fence = Fence.create(arena, { context, seqno: 11 });
  fence.get(); // the receiver's reference, taken before the handle becomes visible
  handle[0] = fence.handle;
  Atomics.store(state, 0, PUBLISHED); // publishes the handle written above
  Atomics.notify(state, 0);
  const cut = new Int32Array([fence.handle])[0];
  console.log(`main: published handle ${fence.handle} (${Math.ceil(Math.log2(fence.handle + 1))} bits; an Int32Array would hold ${cut})`);

  await new Promise((resolve) => setTimeout(resolve, 50));
  fence.signal();
  fence.put();
  process.exitCode = (await exited) === 0 && arena.check().ok ? 0 : 1;
} else {
  const { buffer, box } = workerData as { buffer: SharedArrayBuffer; box: SharedArrayBuffer };
  const arena = Arena.attach(buffer);
  const { state, handle } = views(box);
  Atomics.wait(state, 0, EMPTY, 5000); // a worker may block; returns at once if already published
  if (Atomics.load(state, 0) !== PUBLISHED) throw new Error('nothing published');
  const fence = Fence.fromHandle(arena, handle[0]); // owns the reference the sender took
  const signaled = fence.wait(5000);
  console.log(`worker: received handle ${fence.handle}, ${signaled ? 'signaled' : 'timed out'}, status ${fence.status()}`);
  fence.put();
  arena.detach();
  if (!signaled) process.exitCode = 1;
}

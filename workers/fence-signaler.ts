/**
 * Worker fixture: signals one fence from another thread after a delay (blocking waiters, async
 * waiters and waitAny in the main thread need a signaler that is not themselves).
 *
 * workerData: { buffer, handle, delayMs, error? } — the sender took a reference for us; we put it.
 * Posts { type: 'signaled', slot } after signaling, putting and detaching.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence } from '../src/index.js';

const { buffer, handle, delayMs, error } = workerData as { buffer: SharedArrayBuffer; handle: number; delayMs: number; error?: number };
try {
  const arena = Arena.attach(buffer);
  const fence = Fence.fromHandle(arena, handle);
  if (delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delayMs);
  if (error !== undefined) fence.setError(error);
  fence.signal();
  fence.put();
  const slot = arena.slot;
  arena.detach();
  parentPort!.postMessage({ type: 'signaled', slot });
} catch (e) {
  parentPort!.postMessage({ type: 'error', code: (e as { code?: string }).code, message: String((e as Error)?.stack ?? e) });
}

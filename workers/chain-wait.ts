/**
 * Worker fixture for the chain wait tests (kernel st-dma-fence-chain.c __wait_fence_chains): arms
 * the chain, says so, then blocks in wait() until the parent has signaled every fence.
 *
 * workerData: { buffer, handle, timeoutMs } — the parent took a reference for us; we put it.
 * Posts { type: 'armed' }, then { type: 'waited', ok, signaled }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence } from '../src/index.js';

const { buffer, handle, timeoutMs } = workerData as { buffer: SharedArrayBuffer; handle: number; timeoutMs: number };
try {
  const arena = Arena.attach(buffer);
  const chain = Fence.fromHandle(arena, handle);
  chain.enableSignaling();
  parentPort!.postMessage({ type: 'armed' });
  const ok = chain.wait(timeoutMs);
  const signaled = chain.testSignaledFlag();
  chain.put();
  arena.detach();
  parentPort!.postMessage({ type: 'waited', ok, signaled });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e) });
}

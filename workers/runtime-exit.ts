/**
 * Worker fixture for process-liveness rules: it never listens for messages, so only the runtime
 * decides whether it stays alive.
 *
 * workerData: { buffer, mode, handle?, tally? }.
 *  - mode 'idle': attach, start the dispatcher, return. Must exit on its own (an idle dispatcher
 *    holds nothing open).
 *  - mode 'pending': attach, add a callback on fence `handle` (the sender took a reference for us)
 *    and return. Must stay alive until another thread signals it, run the callback here (bumping
 *    tally[0], storing our threadId in tally[1]), then exit on its own.
 * Posts 'ready' after setting up, 'ran' from the callback.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { Arena, Fence, startDispatcher } from '../src/index.js';

const { buffer, mode, handle, tally } = workerData as { buffer: SharedArrayBuffer; mode: string; handle?: number; tally?: SharedArrayBuffer };
const arena = Arena.attach(buffer);
if (mode === 'idle') {
  startDispatcher(arena);
  parentPort!.postMessage({ type: 'ready', slot: arena.slot });
} else {
  const t = new Int32Array(tally!);
  const f = Fence.fromHandle(arena, handle!);
  const cb = f.addCallback(() => {
    Atomics.add(t, 0, 1);
    Atomics.store(t, 1, threadId);
    f.put();
    parentPort!.postMessage({ type: 'ran' });
    // Leave cleanly: the main thread checks the arena once we are gone.
    setImmediate(() => arena.detach());
  });
  parentPort!.postMessage({ type: 'ready', slot: arena.slot, added: cb !== null, threadId });
}

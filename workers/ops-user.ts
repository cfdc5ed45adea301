/**
 * Worker fixture for the kernel-parity suite: uses a fence whose ops it may or may not have
 * registered, to show that an op is never skipped without a word.
 *
 * workerData: { buffer, handle (the sender took a reference for us), define: boolean, tally }.
 * With `define`, registers 'test:parity-ops' (enableSignaling bumps tally[0], release tally[1]).
 * Then enables signaling and puts its reference; posts 'done' { enable, put } where each is 'ok' or
 * the FenceError code it got, and exits. A refused put leaves the reference with the sender.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceError, defineFenceOps } from '../src/index.js';

const wd = workerData as { buffer: SharedArrayBuffer; handle: number; define: boolean; tally: SharedArrayBuffer };
const arena = Arena.attach(wd.buffer);
const tally = new Int32Array(wd.tally);
if (wd.define) {
  defineFenceOps('test:parity-ops', {
    getDriverName: () => 'parity',
    getTimelineName: () => 'worker',
    enableSignaling: () => {
      Atomics.add(tally, 0, 1);
      return true;
    },
    release: () => void Atomics.add(tally, 1, 1),
  });
}

function outcome(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof FenceError) return e.code;
    throw e;
  }
}

const f = Fence.fromHandle(arena, wd.handle);
const enable = outcome(() => f.enableSignaling());
const put = outcome(() => f.put());
arena.detach();
parentPort!.postMessage({ type: 'done', enable, put });

/**
 * Worker fixture: signals its share of a chain's fences in the given order while walking the chain
 * (findSeqno of a random seqno between signals), racing other signalers and the chain's re-arming
 * callbacks, which run in whichever thread signals the armed fence.
 *
 * workerData: { buffer, tail, fences: number[] (to signal, in order), chainLength, seed } — handles;
 * the parent holds the references. Posts { type: 'done', finds } or { type: 'error', message }.
 */
import { seededInt } from './seeded.js';
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceChain } from '../src/index.js';

const { buffer, tail, fences, chainLength, seed } = workerData as {
  buffer: SharedArrayBuffer;
  tail: number;
  fences: number[];
  chainLength: number;
  seed: number;
};

const rand = seededInt(seed);

try {
  const arena = Arena.attach(buffer);
  const chain = Fence.fromHandle(arena, tail);
  let finds = 0;
  for (const h of fences) {
    Fence.fromHandle(arena, h).signal();
    const f = FenceChain.findSeqno(chain, rand(chainLength) + 1);
    if (f) {
      finds++;
      f.put();
    }
  }
  arena.detach();
  parentPort!.postMessage({ type: 'done', finds });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e) });
}

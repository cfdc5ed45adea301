/**
 * Worker fixture for the chain find_race test (kernel st-dma-fence-chain.c __find_race): until the
 * deadline, find a random seqno on the shared chain (checking what it found), then signal a random
 * fence of the chain, while other workers do the same.
 *
 * workerData: { buffer, tail, fences: number[], durationMs, seed } — handles; the parent holds the
 * references for the whole run. Posts { type: 'done', cycles, found, nulls, selfFinds } or
 * { type: 'error', message }.
 */
import { seededInt } from './seeded.js';
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceChain } from '../src/index.js';

const { buffer, tail, fences, durationMs, seed } = workerData as {
  buffer: SharedArrayBuffer;
  tail: number;
  fences: number[];
  durationMs: number;
  seed: number;
};

const rand = seededInt(seed);

try {
  const arena = Arena.attach(buffer);
  const chain = Fence.fromHandle(arena, tail);
  const leaves = fences.map((h) => Fence.fromHandle(arena, h));
  const n = leaves.length;
  const deadline = performance.now() + durationMs;
  let cycles = 0;
  let found = 0;
  let nulls = 0;
  let selfFinds = 0;
  while (performance.now() < deadline) {
    const seqno = rand(n) + 1;
    const f = FenceChain.findSeqno(chain, seqno);
    if (f === null) {
      // Nothing left to wait for: every fence up to seqno must have signaled.
      nulls++;
      for (let k = 1; k <= seqno; k++)
        if (!leaves[k - 1].testSignaledFlag()) throw new Error(`findSeqno(${seqno}) = null but fence ${k} is unsignaled`);
    } else {
      found++;
      const got = f.seqno;
      if (!FenceChain.isChain(f) || f.context !== chain.context) throw new Error(`findSeqno(${seqno}) left the chain`);
      // Links skipped between the one found and seqno were collected: their fences signaled.
      for (let k = got + 1; k <= seqno; k++)
        if (!leaves[k - 1].testSignaledFlag()) throw new Error(`findSeqno(${seqno}) = link ${got} skipped unsignaled fence ${k}`);
      if (got === seqno) {
        // We can only find ourselves if we are on the fence we were looking for.
        const self = FenceChain.findSeqno(f, seqno);
        if (self === null || self.handle !== f.handle) throw new Error(`find-self(${seqno}) returned another fence`);
        self.put();
        selfFinds++;
      }
      f.put();
    }
    leaves[rand(n - 1)].signal();
    cycles++;
  }
  arena.detach();
  parentPort!.postMessage({ type: 'done', cycles, found, nulls, selfFinds });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e) });
}

/**
 * Worker fixture: the reported "more than 32 locks" program, in a thread of its own so that the
 * test can see whether the thread exits by itself. In an arena of its own it locks `n` SpinLocks
 * (a lock refused with a FenceError is recorded, not fatal), unlocks the ones it got in the same
 * order (FIFO, the worst order for a stack-shaped list), then signals a fence under a FenceChain
 * that has a callback — a chain defers its work while the thread holds a lock, so a held-lock
 * count stuck above 0 used to keep this thread busy forever — and detaches.
 *
 * workerData: { n }. Posts { type: 'done', locked, refused, heldAfter, callbackRan } after
 * detaching, then returns: the thread must exit on its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceChain, FenceError, LOCK_KINDS, SpinLock } from '../src/index.js';
import { heldLockCount } from '../src/locks/lockword.js';

const { n } = workerData as { n: number };

async function main(): Promise<void> {
  const arena = Arena.create({ bytes: 1 << 20, maxThreads: 4, maxFds: 16 });
  const locks = Array.from({ length: n }, (_, i) => SpinLock.create(arena, LOCK_KINDS[i % LOCK_KINDS.length]));
  const got: SpinLock[] = [];
  const refused: string[] = [];
  for (const l of locks) {
    try {
      if (l.lock()) got.push(l);
    } catch (e) {
      if (!(e instanceof FenceError)) throw e;
      refused.push(e.code);
    }
  }
  for (const l of got) l.unlock();
  const heldAfter = heldLockCount(arena);
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  const chain = FenceChain.create(arena, null, f.get(), 1);
  let callbackRan = 0;
  const ran = new Promise<void>((resolve) => {
    chain.addCallback(() => {
      callbackRan++;
      resolve();
    });
  });
  f.signal();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ran, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
  clearTimeout(timer);
  f.put();
  chain.put();
  for (const l of locks) l.free();
  arena.detach();
  parentPort!.postMessage({ type: 'done', locked: got.length, refused, heldAfter, callbackRan });
}

main().catch((e) => {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e), code: (e as { code?: string }).code });
});

/**
 * Fence chain: mirrors the kernel's st-dma-fence-chain.c (sanitycheck, find_seqno, find_signaled,
 * find_out_of_order, find_gap, find_race with real workers, signal forward/backward, wait
 * forward/backward/random over 4,096 links), plus creation rules, cross-thread re-arming, deferral
 * under locks and the iterative release of a 100,000-link chain. Every test ends with a clean arena.
 */
import { describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceChain, SpinLock, defineFenceOps, drainInbox } from '../src/index.js';
import { deferredCount } from '../src/containers/common.js';
import { expectClean, rejects, TestWorker } from './support/core.js';

const CHAIN_SZ = 4 << 10;

const mockOps = defineFenceOps('test:chain-mock', {
  getDriverName: () => 'mock',
  getTimelineName: () => 'mock',
});

/** Kernel mock_fence: context 0, seqno 0, own lock. */
function mockFence(arena: Arena): Fence {
  return Fence.create(arena, { ops: mockOps, context: 0, seqno: 0 });
}

interface FenceChains {
  fences: Fence[];
  chains: Fence[];
  tail: Fence | null;
}

/** Kernel fence_chains_init: one link per fence; we keep a reference on every fence and link. */
function chainsInit(arena: Arena, count: number, seqnoFn: (i: number) => number): FenceChains {
  const fc: FenceChains = { fences: [], chains: [], tail: null };
  for (let i = 0; i < count; i++) {
    const f = mockFence(arena);
    fc.fences.push(f);
    const link = FenceChain.create(arena, fc.tail ? fc.tail.get() : null, f.get(), seqnoFn(i));
    fc.chains.push(link);
    fc.tail = link;
  }
  return fc;
}

/** Kernel fence_chains_fini: signal and put every fence, put every link. */
function chainsFini(fc: FenceChains): void {
  for (const f of fc.fences) {
    f.signal();
    f.put();
  }
  for (const c of fc.chains) c.put();
}

const seqnoInc = (i: number): number => i + 1;
const seqnoInc2 = (i: number): number => 2 * i + 2;

/** Seeded Fisher–Yates (kernel randomise_fences). */
function shuffle<T>(a: T[], seed: number): T[] {
  let s = seed | 0 || 1;
  for (let count = a.length - 1; count > 0; count--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const swp = (s >>> 0) % (count + 1);
    [a[count], a[swp]] = [a[swp], a[count]];
  }
  return a;
}

describe('FenceChain (kernel st-dma-fence-chain)', () => {
  it('sanitycheck: a one-link chain over a fence, signaled and put', () => {
    const arena = Arena.create();
    const f = mockFence(arena);
    const chain = FenceChain.create(arena, null, f.get(), 1);
    expect(FenceChain.isChain(chain)).toBe(true);
    expect(chain.driverName).toBe('dma_fence_chain');
    expect(chain.timelineName).toBe('unbound');
    expect(chain.seqno64).toBe(true);
    expect(chain.usesInlineLock).toBe(true);
    f.signal();
    f.put();
    expect(chain.isSignaled()).toBe(true);
    chain.put();
    expectClean(arena);
  });

  it('find_seqno: every link by its seqno, itself, not the future, the previous one', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 64, seqnoInc);
    const tail = fc.tail!;
    const zero = FenceChain.findSeqno(tail, 0);
    expect(zero?.handle).toBe(tail.handle);
    zero!.put();
    for (let i = 0; i < fc.chains.length; i++) {
      const fence = FenceChain.findSeqno(tail, i + 1);
      expect(fence?.handle, `find_seqno(${i + 1})`).toBe(fc.chains[i].handle);
      const self = FenceChain.findSeqno(fence!, i + 1);
      expect(self?.handle, 'finding self').toBe(fc.chains[i].handle);
      self!.put();
      rejects(arena, () => FenceChain.findSeqno(fence!, i + 2), 'EINVAL');
      const previous = FenceChain.findSeqno(fence!, i);
      expect(previous?.handle, `find_seqno(${i})`).toBe(i > 0 ? fc.chains[i - 1].handle : fence!.handle);
      previous!.put();
      fence!.put();
    }
    chainsFini(fc);
    expectClean(arena);
  });

  it('find_signaled: a completed seqno finds nothing (or its own link)', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 2, seqnoInc);
    fc.fences[0].signal();
    const fence = FenceChain.findSeqno(fc.tail!, 1);
    if (fence !== null) {
      expect(fence.handle).toBe(fc.chains[0].handle);
      fence.put();
    }
    // The walk collected link 1: nothing is left to wait for.
    expect(fence).toBeNull();
    chainsFini(fc);
    expectClean(arena);
  });

  it('find_out_of_order: signaling the middle link leaves the first one to wait for', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 3, seqnoInc);
    fc.fences[1].signal();
    const fence = FenceChain.findSeqno(fc.tail!, 2);
    // Fence 1 is unsignaled: that is what seqno 2 still waits on (link 2 was garbage-collected).
    expect(fence?.handle).toBe(fc.chains[0].handle);
    fence!.put();
    chainsFini(fc);
    expectClean(arena);
  });

  it('find_gap: seqnos 2, 4, 6…: an odd seqno finds the link above it', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 64, seqnoInc2);
    for (let i = 0; i < fc.chains.length; i++) {
      const fence = FenceChain.findSeqno(fc.tail!, 2 * i + 1);
      expect(fence?.handle, `find_seqno(${2 * i + 1})`).toBe(fc.chains[i].handle);
      const self = FenceChain.findSeqno(fence!, 2 * i + 2);
      expect(self?.handle, 'finding self').toBe(fc.chains[i].handle);
      self!.put();
      fence!.put();
    }
    chainsFini(fc);
    expectClean(arena);
  });

  it.each([false, true])('find_race: workers find and signal on one 4,096-link chain at the same time (sanitize %s)', async (sanitize) => {
    const arena = Arena.create({ bytes: 64 << 20, sanitize });
    const fc = chainsInit(arena, CHAIN_SZ, seqnoInc);
    const nworkers = 3;
    const workers: TestWorker[] = [];
    for (let w = 0; w < nworkers; w++) {
      workers.push(
        new TestWorker('chain-race', {
          buffer: arena.buffer,
          tail: fc.tail!.handle,
          fences: fc.fences.map((f) => f.handle),
          durationMs: 1500,
          seed: 0x9e3779b9 + w * 7919,
        }),
      );
    }
    // Keep walking the chain from this thread too while the workers race.
    let mainFinds = 0;
    const until = performance.now() + 300;
    while (performance.now() < until) {
      const f = FenceChain.findSeqno(fc.tail!, 1 + (mainFinds % CHAIN_SZ));
      f?.put();
      mainFinds++;
    }
    const results = await Promise.all(workers.map((w) => w.next('done', 120_000)));
    for (const w of workers) expect(await w.exited()).toBe(0);
    let cycles = 0;
    let found = 0;
    let selfFinds = 0;
    for (const r of results) {
      expect(r.cycles as number).toBeGreaterThan(0);
      expect((r.found as number) + (r.nulls as number)).toBe(r.cycles);
      cycles += r.cycles as number;
      found += r.found as number;
      selfFinds += r.selfFinds as number;
    }
    if (process.env.FENCELAB_VERBOSE) console.log({ results, mainFinds });
    expect(found).toBeGreaterThan(0);
    expect(selfFinds).toBeGreaterThan(0);
    const signaled = fc.fences.filter((f) => f.testSignaledFlag()).length;
    expect(signaled).toBeGreaterThan(0);
    expect(cycles).toBeGreaterThanOrEqual(signaled);
    chainsFini(fc);
    expectClean(arena);
  });

  it('signal_forward: each link signals exactly when its fence does', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 64, seqnoInc);
    for (let i = 0; i < fc.chains.length; i++) {
      fc.fences[i].signal();
      expect(fc.chains[i].isSignaled(), `chain[${i}] signaled`).toBe(true);
      if (i + 1 < fc.chains.length) expect(fc.chains[i + 1].isSignaled(), `chain[${i + 1}] not signaled`).toBe(false);
    }
    chainsFini(fc);
    expectClean(arena);
  });

  it('signal_backward: no link signals before the first fence does', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 64, seqnoInc);
    for (let i = fc.chains.length - 1; i >= 0; i--) {
      fc.fences[i].signal();
      if (i > 0) expect(fc.chains[i].isSignaled(), `chain[${i}] not signaled`).toBe(false);
    }
    for (let i = 0; i < fc.chains.length; i++) expect(fc.chains[i].isSignaled(), `chain[${i}] signaled`).toBe(true);
    chainsFini(fc);
    expectClean(arena);
  });

  for (const order of ['forward', 'backward', 'random'] as const) {
    it(`wait_${order}: a worker waits on the tail of 4,096 links while this thread signals`, async () => {
      const arena = Arena.create({ bytes: 64 << 20 });
      const fc = chainsInit(arena, CHAIN_SZ, seqnoInc);
      const tail = fc.tail!;
      const w = new TestWorker('chain-wait', { buffer: arena.buffer, handle: tail.get().handle, timeoutMs: 60_000 });
      await w.next('armed');
      // The worker armed the chain: callbacks it added run here, in the signaling thread.
      expect(tail.testSignaledFlag()).toBe(false);
      const order_ =
        order === 'forward' ? fc.fences.slice() : order === 'backward' ? fc.fences.slice().reverse() : shuffle(fc.fences.slice(), 0x5eed);
      for (let i = 0; i < order_.length; i++) {
        order_[i].signal();
        if (i < order_.length - 1) expect(tail.testSignaledFlag()).toBe(false);
      }
      // The last signal re-armed nothing: the chain signaled from inside it, in this thread.
      expect(tail.testSignaledFlag()).toBe(true);
      const r = await w.next('waited', 60_000);
      expect(r.ok).toBe(true);
      expect(r.signaled).toBe(true);
      expect(await w.exited()).toBe(0);
      chainsFini(fc);
      expectClean(arena);
    });
  }
});

describe('FenceChain armed while workers signal and walk', () => {
  it('an armed 4,096-link chain signaled by racing workers in random order signals exactly once', async () => {
    const arena = Arena.create({ bytes: 64 << 20, sanitize: true });
    const fc = chainsInit(arena, CHAIN_SZ, seqnoInc);
    const tail = fc.tail!;
    // Every link armed: each link's own waiters re-arm independently as the fences fall.
    const waits = fc.chains.filter((_, i) => i % 512 === 511).map((c) => c.waitAsync(60_000));
    let ran = 0;
    expect(tail.addCallback(() => ran++)).not.toBeNull();
    const order = shuffle(fc.fences.slice(), 0xc0ffee);
    const nworkers = 3;
    const workers: TestWorker[] = [];
    for (let w = 0; w < nworkers; w++) {
      workers.push(
        new TestWorker('chain-signal', {
          buffer: arena.buffer,
          tail: tail.handle,
          fences: order.filter((_, i) => i % nworkers === w).map((f) => f.handle),
          chainLength: CHAIN_SZ,
          seed: 17 + w,
        }),
      );
    }
    const results = await Promise.all(workers.map((w) => w.next('done', 30_000)));
    for (const w of workers) expect(await w.exited()).toBe(0);
    expect(results.every((r) => typeof r.finds === 'number')).toBe(true);
    expect(await Promise.all(waits)).toEqual(waits.map(() => true));
    drainInbox(arena); // the tail was signaled in a worker: our callback was queued to this thread
    expect(ran).toBe(1);
    // The armed links signaled themselves; the others (never enabled) report it when asked.
    expect(waits.length).toBe(CHAIN_SZ / 512);
    expect(fc.chains.filter((_, i) => i % 512 === 511).every((c) => c.testSignaledFlag())).toBe(true);
    expect(fc.chains.every((c) => c.isSignaled())).toBe(true);
    expect(tail.status()).toBe(1);
    // Every armed callback ran and dropped its chain reference: only the test's remain.
    expect(fc.chains.map((c) => c.refcount).filter((r) => r > 3)).toEqual([]);
    chainsFini(fc);
    expectClean(arena);
  });
});

describe('FenceChain creation', () => {
  it('reuses the context of a chain prev when the seqno is later, else a new one with max seqno', () => {
    const arena = Arena.create();
    const a = FenceChain.create(arena, null, mockFence(arena), 5);
    const b = FenceChain.create(arena, a.get(), mockFence(arena), 7);
    expect(b.context).toBe(a.context);
    expect(b.seqno).toBe(7);
    // Not later: a new context, and the seqno never goes behind the chain.
    const c = FenceChain.create(arena, b.get(), mockFence(arena), 3);
    expect(c.context).not.toBe(b.context);
    expect(c.seqno).toBe(7);
    // A plain fence as prev: a new context, the seqno as given.
    const plain = mockFence(arena);
    const d = FenceChain.create(arena, plain.get(), mockFence(arena), 2);
    expect(d.context).not.toBe(plain.context);
    expect(d.seqno).toBe(2);
    // 64-bit seqnos.
    const big = 2 ** 40 + 3;
    const e = FenceChain.create(arena, c.get(), mockFence(arena), big);
    expect(e.seqno).toBe(big);
    expect(e.context).toBe(c.context);
    expect(Fence.isLater(e, c)).toBe(true);
    const found = FenceChain.findSeqno(e, 2 ** 40);
    expect(found?.handle).toBe(e.handle);
    found!.put();
    for (const f of [a, b, c, d, e, plain]) f.put();
    // Unsignaled fences without callbacks are simply freed with their links.
    expectClean(arena);
  });

  it('refuses bad input without taking references', () => {
    const arena = Arena.create();
    const f = mockFence(arena);
    const chain = FenceChain.create(arena, null, mockFence(arena), 1);
    rejects(arena, () => FenceChain.create(arena, null, chain, 2), 'EINVAL');
    rejects(arena, () => FenceChain.create(arena, null, f, -1), 'EINVAL');
    rejects(arena, () => FenceChain.create(arena, null, f, 1.5), 'EINVAL');
    rejects(arena, () => FenceChain.create(arena, null, {} as Fence, 1), 'EINVAL');
    const other = Arena.create({ bytes: 1 << 20 });
    const foreign = Fence.create(other, { context: 1, seqno: 1 });
    rejects(arena, () => FenceChain.create(arena, null, foreign, 1), 'EINVAL');
    foreign.put();
    expectClean(other);
    rejects(arena, () => FenceChain.findSeqno(f, 1), 'EINVAL'); // not a chain
    rejects(arena, () => FenceChain.findSeqno(chain, 2), 'EINVAL'); // not reached yet
    rejects(arena, () => FenceChain.findSeqno(chain, -1), 'EINVAL');
    const notChain = FenceChain.findSeqno(f, 0); // seqno 0: unchanged, even for a plain fence
    expect(notChain?.handle).toBe(f.handle);
    notChain!.put();
    expect(f.refcount).toBe(1);
    expect(chain.refcount).toBe(1);
    const dead = mockFence(arena);
    dead.put();
    rejects(arena, () => FenceChain.create(arena, null, dead, 1), 'EBADF');
    f.put();
    chain.put();
    expectClean(arena);
  });

  it('walk and contained: iterate links (garbage-collecting signaled ones)', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 5, seqnoInc);
    fc.fences[1].signal();
    fc.fences[2].signal();
    const seen: number[] = [];
    for (let f: Fence | null = fc.tail!.get(); f; f = FenceChain.walk(f)) seen.push(FenceChain.contained(f).handle);
    expect(seen).toEqual([fc.fences[4], fc.fences[3], fc.fences[0]].map((f) => f.handle));
    // Link 4 now points at link 1: link 3 is held by the test alone, link 2 by the test and link 3,
    // link 1 by the test, link 2 and link 4.
    expect(fc.chains[2].refcount).toBe(1);
    expect(fc.chains[1].refcount).toBe(2);
    expect(fc.chains[0].refcount).toBe(3);
    const next = FenceChain.walk(fc.chains[3].get());
    expect(next?.handle).toBe(fc.chains[0].handle);
    next!.put();
    chainsFini(fc);
    expectClean(arena);
  });
});

describe('FenceChain signaling across threads and locks', () => {
  it('a leaf signaled under its (shared, borrowed) lock re-arms the chain once the lock is dropped', async () => {
    const arena = Arena.create();
    // Two fences borrowing one lock, like sw_sync points of one timeline.
    const lock = SpinLock.create(arena);
    const f1 = Fence.create(arena, { ops: mockOps, context: 9, seqno: 1, lock });
    const f2 = Fence.create(arena, { ops: mockOps, context: 9, seqno: 2, lock });
    const c1 = FenceChain.create(arena, null, f1.get(), 1);
    const c2 = FenceChain.create(arena, c1.get(), f2.get(), 2);
    let ran = 0;
    expect(c2.addCallback(() => ran++)).not.toBeNull(); // arms on f2
    // Re-arming inline would take f1's lock — the very lock held here: it is deferred instead.
    f2.withLock(() => f2.signalLocked());
    expect(deferredCount()).toBe(1);
    await Promise.resolve(); // the microtask drains it (kernel: irq_work)
    expect(deferredCount()).toBe(0);
    expect(c2.testSignaledFlag()).toBe(false);
    f1.signal(); // armed on f1 by the deferred re-arm
    expect(c2.testSignaledFlag()).toBe(true);
    expect(ran).toBe(1);
    for (const f of [f1, f2, c1, c2]) f.put();
    lock.free();
    expectClean(arena);
  });

  it('a deferred re-arm also runs at the next chain entry point of the thread', () => {
    const arena = Arena.create();
    const lock = SpinLock.create(arena);
    const f1 = Fence.create(arena, { ops: mockOps, context: 9, seqno: 1, lock });
    const f2 = Fence.create(arena, { ops: mockOps, context: 9, seqno: 2, lock });
    const c2 = FenceChain.create(arena, FenceChain.create(arena, null, f1.get(), 1), f2.get(), 2);
    c2.enableSignaling();
    f2.withLock(() => f2.signalLocked());
    expect(deferredCount()).toBe(1);
    expect(c2.isSignaled()).toBe(false); // ops.signaled flushes the queue first
    expect(deferredCount()).toBe(0);
    f1.signal();
    expect(c2.testSignaledFlag()).toBe(true);
    for (const f of [f1, f2, c2]) f.put();
    lock.free();
    expectClean(arena);
  });

  it('an error on a link fence does not stop the chain; release with pending callbacks', () => {
    const arena = Arena.create();
    const fc = chainsInit(arena, 3, seqnoInc);
    fc.tail!.enableSignaling();
    fc.fences[0].setError(Errno.EIO);
    for (const f of fc.fences) f.signal();
    expect(fc.tail!.status()).toBe(1);
    chainsFini(fc);
    expectClean(arena);
  });
});

describe('FenceChain release', () => {
  it('a 100,000-link chain is released iteratively (no stack overflow)', () => {
    const arena = Arena.create({ bytes: 64 << 20 });
    let tail: Fence | null = null;
    for (let i = 0; i < 100_000; i++) tail = FenceChain.create(arena, tail, mockFence(arena), i + 1);
    expect(tail!.seqno).toBe(100_000);
    tail!.put();
    expectClean(arena);
  });

  it('a 100,000-link signaled chain is walked and collected iteratively', () => {
    const arena = Arena.create({ bytes: 64 << 20 });
    let tail: Fence | null = null;
    const leaves: Fence[] = [];
    for (let i = 0; i < 100_000; i++) {
      const f = mockFence(arena);
      leaves.push(f);
      tail = FenceChain.create(arena, tail, f.get(), i + 1);
    }
    for (const f of leaves) f.signal();
    expect(tail!.isSignaled()).toBe(true); // walks all links, collecting them
    for (const f of leaves) f.put();
    tail!.put();
    expectClean(arena);
  });
});

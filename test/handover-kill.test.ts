/**
 * The kill-safe hand-over (`fence.share()` → `Fence.receive`, src/fence/handover.ts) with real
 * workers terminated at seeded random points mid-protocol, 50 times per side:
 *  - a sending worker (shares the parent's fence and fences it creates tracked, withdraws some)
 *    while the parent receives;
 *  - a receiving worker (receives, holds, signals what it was made responsible for, puts) while
 *    the parent shares and withdraws.
 * After every reap: each reference was dropped exactly once (the parent's long-lived fence is back
 * to the references the parent holds; every fence created by one side holds exactly the other
 * side's reference), no waiter hangs (a dead responsible thread's fences are signaled), tokens left
 * behind are typed errors, the arena's bytes in use are back to the baseline, `arena.check()` is
 * clean. Plus the repro and the bad-token errors.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, FenceArray, FenceChain, FenceError, ledgerCompact } from '../src/index.js';
import { CELL_EMPTY, CELL_FULL, CELL_TAKEN, CELL_WITHDRAWING, cellViews, makeCells } from './fixtures/handover-cells.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean, fixture, rejects, WORKER_WAIT_MS } from './support/core.js';

const KILLS = 50;

/** Starts the fixture, watched by the arena; resolves once it loops. */
async function start(arena: Arena, data: Record<string, unknown>): Promise<{ w: Worker; exited: Promise<void> }> {
  const w = new Worker(fixture('handover-loop'), { workerData: { buffer: arena.buffer, ...data } });
  // Attached before watch(): our listener runs first, the reap right after it, before the await resumes.
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  arena.watch(w);
  const msg = await new Promise<{ type: string; message?: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no looping message')), WORKER_WAIT_MS);
    w.once('message', (m) => {
      clearTimeout(t);
      resolve(m);
    });
    w.once('error', reject);
  });
  expect(msg.type, String(msg.message)).toBe('looping');
  return { w, exited };
}

/** The parent's fences made by the other side: signaled by whoever is responsible, then put. */
function settle(arena: Arena, fences: Fence[]): void {
  for (const f of fences) {
    if (f.signaler === arena.slot) f.signal();
    // Bounded: a fence whose responsible thread died was signaled -EOWNERDEAD by its reaper.
    expect(f.wait(WORKER_WAIT_MS), 'a waiter hangs').toBe(true);
    f.putTracked();
  }
}

describe('hand-over under kills (50 per side)', () => {
  it('the sender is killed mid-protocol: what it had shared and not handed over is dropped once', async () => {
    const arena = Arena.create({ bytes: 8 << 20 });
    const rand = seededInt(process.env.FENCELAB_SEED ?? 'handover-send-1');
    const base = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 }); // ours, untracked: our ledger empties
    const baseline = arena.stats().used;
    let received = 0;
    let staleAfterDeath = 0;
    for (let k = 0; k < KILLS; k++) {
      const cells = makeCells();
      const { state, token, n } = cellViews(cells);
      const { w, exited } = await start(arena, { cells, seed: `send:${k}`, mode: 'send', fence: base.handle });
      const onBase: Fence[] = [];
      const made: Fence[] = [];
      const end = performance.now() + rand(30);
      do {
        for (let i = 0; i < n; i++) {
          if (Atomics.compareExchange(state, i, CELL_FULL, CELL_TAKEN) !== CELL_FULL) continue;
          const f = Fence.receive(arena, token[i]); // ours to take: the sender withdraws only FULL cells
          (f.handle === base.handle ? onBase : made).push(f);
          received++;
          Atomics.store(state, i, CELL_EMPTY);
        }
        while (onBase.length > 4) onBase.pop()!.putTracked();
      } while (performance.now() < end);
      await w.terminate();
      await exited;
      // Left behind: tokens its reaper withdrew (EBADF), or a cell it was withdrawing.
      for (let i = 0; i < n; i++) {
        const st = state[i];
        if (st !== CELL_FULL && st !== CELL_WITHDRAWING) continue;
        expect(() => Fence.receive(arena, token[i])).toThrow(FenceError);
        staleAfterDeath++;
      }
      expect(base.refcount, `kill ${k}: the parent's fence holds exactly the parent's references`).toBe(1 + onBase.length);
      for (const f of made) expect(f.refcount, `kill ${k}: a dead sender's fence holds only our reference`).toBe(1);
      for (const f of onBase) f.putTracked();
      settle(arena, made);
      expect(ledgerCompact(arena)).toBe(0); // and frees our ledger
      expect(arena.stats().used, `kill ${k}`).toBe(baseline);
      expect(arena.check().problems).toEqual([]);
    }
    expect(received).toBeGreaterThan(KILLS);
    expect(staleAfterDeath).toBeGreaterThan(0);
    base.signal();
    base.put();
    expectClean(arena);
  }, 300_000);

  it('the receiver is killed mid-protocol: what it had received is dropped once, the rest withdrawn', async () => {
    const arena = Arena.create({ bytes: 8 << 20 });
    const rand = seededInt(process.env.FENCELAB_SEED ?? 'handover-recv-1');
    const base = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 }); // ours, untracked: our ledger empties
    const context = Fence.contextAlloc(arena);
    const baseline = arena.stats().used;
    let seqno = 1;
    let shared = 0;
    let withdrawnAfterDeath = 0;
    let racedWithdraws = 0;
    for (let k = 0; k < KILLS; k++) {
      const cells = makeCells();
      const { state, token, n } = cellViews(cells);
      const { w, exited } = await start(arena, { cells, seed: `recv:${k}`, mode: 'receive' });
      const made: Fence[] = [];
      const end = performance.now() + rand(30);
      do {
        for (let i = 0; i < n; i++) {
          const st = Atomics.load(state, i);
          if (st === CELL_EMPTY) {
            if (rand(2) === 0) token[i] = base.share();
            else {
              const f = Fence.createTracked(arena, { context, seqno: seqno++ });
              token[i] = f.share({ signaling: rand(2) === 0 });
              made.push(f);
            }
            shared++;
            Atomics.store(state, i, CELL_FULL);
          } else if (st === CELL_TAKEN && rand(8) === 0) {
            // Races the receiver's claim: exactly one of them gets the reference.
            if (Fence.withdraw(arena, token[i])) racedWithdraws++;
          } else if (st === CELL_FULL && rand(4) === 0 && Atomics.compareExchange(state, i, CELL_FULL, CELL_WITHDRAWING) === CELL_FULL) {
            expect(Fence.withdraw(arena, token[i])).toBe(true);
            Atomics.store(state, i, CELL_EMPTY);
          }
        }
      } while (performance.now() < end);
      await w.terminate();
      await exited;
      // What it had not claimed comes back to us; what it claimed its reaper put.
      for (let i = 0; i < n; i++) {
        if (state[i] === CELL_EMPTY) continue;
        if (Fence.withdraw(arena, token[i])) withdrawnAfterDeath++;
      }
      expect(base.refcount, `kill ${k}: the parent's fence holds exactly the parent's reference`).toBe(1);
      for (const f of made) expect(f.refcount, `kill ${k}: only our own reference is left`).toBe(1);
      settle(arena, made);
      expect(ledgerCompact(arena)).toBe(0); // and frees our ledger
      expect(arena.stats().used, `kill ${k}`).toBe(baseline);
      expect(arena.check().problems).toEqual([]);
    }
    expect(shared).toBeGreaterThan(KILLS);
    expect(withdrawnAfterDeath + racedWithdraws).toBeGreaterThan(0);
    base.signal();
    base.put();
    expectClean(arena);
  }, 300_000);
});

describe('hand-over', () => {
  it("the issue's repro: a worker creates a fence, hands it to the parent and is terminated", async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const baseline = arena.stats().used;
    const w = new Worker(fixture('handover-one'), { workerData: { buffer: arena.buffer } });
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    arena.watch(w);
    const msg = await new Promise<{ type: string; token?: number; message?: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    expect(msg.type, String(msg.message)).toBe('token');
    const f = Fence.receive(arena, msg.token!);
    expect(f.refcount).toBe(2); // the worker's own (tracked) and ours
    const waited = f.waitAsync(WORKER_WAIT_MS);
    await w.terminate();
    await exited;
    expect(await waited).toBe(true);
    expect(f.error).toBe(Errno.EOWNERDEAD);
    expect(f.refcount).toBe(1);
    f.putTracked();
    expect(ledgerCompact(arena)).toBe(0);
    expect(arena.stats().used).toBe(baseline);
    expectClean(arena);
  }, 60_000);

  it('bad tokens are typed errors and change nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.createTracked(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    rejects(arena, () => Fence.receive(arena, 'x' as unknown as number), 'EINVAL');
    rejects(arena, () => Fence.receive(arena, f.handle), 'EINVAL'); // a live block, not a token
    rejects(arena, () => Fence.receive(arena, 12345.5), 'EINVAL'); // no positive safe integer: never looked up
    rejects(arena, () => f.share({ signaling: 1 as unknown as boolean }), 'EINVAL');
    const t = f.share();
    const g = Fence.receive(arena, t);
    rejects(arena, () => Fence.receive(arena, t), 'EBADF'); // claimed already
    expect(Fence.withdraw(arena, t)).toBe(false);
    const other = Arena.create({ bytes: 1 << 20 });
    const t2 = f.share();
    rejects(other, () => Fence.receive(other, t2), 'EBADF'); // another arena's token
    expect(Fence.withdraw(arena, t2)).toBe(true);
    rejects(arena, () => Fence.receive(arena, t2), 'EBADF'); // withdrawn
    // Reuse: a new share takes the freed record's block under a new generation; the old token stays stale.
    const t3 = f.share();
    expect(t3).not.toBe(t);
    rejects(arena, () => Fence.receive(arena, t), 'EBADF');
    expect(f.refcount).toBe(3);
    Fence.receive(arena, t3).putTracked();
    g.putTracked();
    const u = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    rejects(arena, () => u.putTracked(), 'EINVAL'); // an untracked reference: nothing is put
    u.put();
    f.signal();
    f.putTracked();
    expect(ledgerCompact(arena)).toBe(0);
    expectClean(arena);
    expectClean(other);
  });

  it('put() drops a tracked reference with its record, and a call that takes a reference over forgets its record', () => {
    // The ledger may never record more references than the thread holds: its reaper, or detach(),
    // would drop the extra one, which another holder still counts on.
    const arena = Arena.create({ bytes: 1 << 20 });
    const context = Fence.contextAlloc(arena);
    const f = Fence.createTracked(arena, { context, seqno: 1 });
    f.get(); // a second reference, untracked (say, for a handle posted to another thread)
    f.put(); // the tracked one goes with its record: either reference may be the one dropped
    expect(f.refcount).toBe(1);
    expect(ledgerCompact(arena)).toBe(0);
    rejects(arena, () => f.putTracked(), 'EINVAL'); // nothing tracked any more: nothing is put
    f.signal();
    f.put();
    // FenceArray and FenceChain take over the caller's references, FenceChain.walk consumes one.
    const a = Fence.createTracked(arena, { context, seqno: 2 });
    const b = Fence.receive(arena, a.share());
    const arr = FenceArray.create(arena, [a, b], { context: Fence.contextAlloc(arena), seqno: 1 });
    expect(ledgerCompact(arena)).toBe(0);
    const c = Fence.createTracked(arena, { context, seqno: 3 });
    const link = FenceChain.create(arena, null, c, 1);
    expect(ledgerCompact(arena)).toBe(0);
    const top = FenceChain.create(arena, link, Fence.create(arena, { context, seqno: 4 }), 2);
    const walker = Fence.receive(arena, top.share());
    const next = FenceChain.walk(walker);
    expect(ledgerCompact(arena)).toBe(0);
    next?.put();
    a.signal();
    c.signal();
    FenceChain.contained(top).signal();
    expect(arr.isSignaled()).toBe(true);
    arr.put();
    top.put();
    expect(ledgerCompact(arena)).toBe(0);
    expectClean(arena);
  });

  it('a tracked reference put with put() is not dropped again when the thread detaches', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const w = new Worker(fixture('tracked-put'), { workerData: { buffer: arena.buffer } });
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    const handle = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no handle from the worker')), WORKER_WAIT_MS);
      w.once('message', (h: number) => {
        clearTimeout(t);
        resolve(h);
      });
      w.once('error', reject);
    });
    expect(await exited).toBe(0); // it put its own reference with put() and detached
    const f = Fence.fromHandle(arena, handle); // without the fix: EBADF, detach dropped ours
    expect(f.refcount).toBe(1);
    expect(f.isSignaled()).toBe(true);
    f.put();
    expectClean(arena);
  });

  it('signaling responsibility moves with the claim', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.createTracked(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    expect(f.signaler).toBe(arena.slot);
    const g = Fence.receive(arena, f.share({ signaling: true }));
    expect(g.signaler).toBe(arena.slot); // the same thread here; the kill test covers another one
    f.signal();
    const h = Fence.receive(arena, f.share({ signaling: true })); // signaled: nothing to move, the reference still moves
    expect(h.signaler).toBe(-1);
    h.putTracked();
    g.putTracked();
    f.putTracked();
    expect(ledgerCompact(arena)).toBe(0);
    expectClean(arena);
  });
});

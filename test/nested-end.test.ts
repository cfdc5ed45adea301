/**
 * Driver operation ends nested in each other — an end signals its out-fence, a callback of the same
 * thread cancels another operation — cut off by terminate(). Each end the thread was inside is
 * recorded (T_FINISH, one record per depth), so the reaper finishes all of them, innermost first:
 * every operation ends exactly once and frees its block, every out-fence is signaled with what its
 * end said, and the arena is back to where it was. (With one record, a nested end overwrote the
 * outer's, and a kill inside it leaked the outer operation.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence } from '../src/index.js';
import { seededInt } from './fixtures/seeded.js';
import { expectClean } from './support/core.js';
import { KillTarget, killInStep } from './support/killloop.js';

const running: KillTarget[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((k) => k.worker.terminate()));
});

/** A new arena, and its bytes in use once this thread's ledger block exists (a received reference is recorded there). */
function arenaWithLedger(bytes: number): { arena: Arena; baseline: number } {
  const arena = Arena.create({ bytes });
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  Fence.receive(arena, f.share()).put();
  f.signal();
  f.put();
  return { arena, baseline: arena.stats().used };
}

/** Starts the fixture; resolves with it and the references on each pair's out-fences. */
async function start(arena: Arena, cells: Int32Array, chains: number, spinUs: number, park: boolean): Promise<{ k: KillTarget; fences: Fence[][] }> {
  for (let c = 0; c < cells.length; c++) Atomics.store(cells, c, 0);
  const k = new KillTarget(arena, 'nested-end', { buffer: arena.buffer, shared: cells.buffer, chains, spinUs, park });
  running.push(k);
  const ready = await k.ready;
  const fences = (ready.tokens as number[][]).map((pair) => pair.map((t) => Fence.receive(arena, t)));
  return { k, fences };
}

/** After the reap: each A completed or aborted, each B cancelled or aborted; the references put; nothing left. */
function settle(arena: Arena, fences: Fence[][], baseline: number, where: string): void {
  for (const [a, b] of fences) {
    expect(a.isSignaled() && b.isSignaled(), `${where}: an out-fence left unsignaled`).toBe(true);
    expect([0, Errno.ENODEV], `${where}: A`).toContain(a.error);
    expect([Errno.ECANCELED, Errno.ENODEV], `${where}: B`).toContain(b.error);
    a.put();
    b.put();
  }
  expect(arena.stats().used, `${where}: bytes in use`).toBe(baseline);
  expectClean(arena);
}

describe('operation ends nested in each other, cut off', () => {
  it('a thread terminated two ends deep: both ends are finished by its reaper, nothing leaks', async () => {
    const { arena, baseline } = arenaWithLedger(4 << 20);
    const cells = new Int32Array(new SharedArrayBuffer(12));
    const { k, fences } = await start(arena, cells, 1, 0, true);
    const inside = new Promise<void>((resolve) => k.worker.on('message', (m: { type: string }) => m.type === 'inside' && resolve()));
    k.go(cells, 0);
    await inside;
    await k.kill(0);
    running.splice(0);
    expect(k.errors).toEqual([]);
    expect([fences[0][0].error, fences[0][1].error]).toEqual([0, Errno.ECANCELED]);
    settle(arena, fences, baseline, 'parked');
  });

  it('terminated at seeded points among nested ends (50 kills): every operation ends once, nothing leaks', async () => {
    const seed = process.env.FENCELAB_SEED ?? 'nested-end-1';
    const rand = seededInt(seed);
    const { arena, baseline } = arenaWithLedger(8 << 20);
    const cells = new Int32Array(new SharedArrayBuffer(12));
    const CHAINS = 6;
    let jitter = 400;
    let inside = 0;
    for (let round = 0; round < 50; round++) {
      const { k, fences } = await start(arena, cells, CHAINS, 20, false);
      const r = await killInStep(k, cells, rand(jitter), jitter, CHAINS);
      running.splice(0);
      if (r.inside) inside++;
      jitter = r.jitter;
      settle(arena, fences, baseline, `round ${round} (seed ${seed})`);
    }
    console.log(`nested-end (seed ${seed}): 50 kills, ${inside} inside an execute`);
    expect(inside).toBeGreaterThan(10);
  });
});

/**
 * A reap hook that throws does not stop the reap: a worker's 'exit' listener must never take the
 * process down, and the dead thread's other state (its fences, raw blocks, slot) is still
 * recovered by the later stages. The failure is reported as a FENCELAB_REAP_FAILED warning naming
 * the stage and the slot (and test/support/setup.ts fails any test that gets one by accident).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { onReap, ReapStage } from '../src/arena/hooks.js';
import { Arena, Errno, Fence, SwTimeline } from '../src/index.js';
import { expectClean, TestWorker } from './support/core.js';
import { takeReapFailures } from './support/setup.js';

const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

describe('reap robustness', () => {
  it('a throwing reap hook is reported and the later stages still recover the dead thread', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    let doomed = -1;
    let calls = 0;
    onReap(ReapStage.CALLBACKS, (a, slot) => {
      if (a !== arena || slot !== doomed) return;
      calls++;
      throw new Error('injected failure');
    });
    const w = new TestWorker('signaler-death', { buffer: arena.buffer, fences: 2, rawBlocks: 3, kept: 0 });
    workers.push(w);
    arena.watch(w.worker);
    const ready = (await w.next('ready')) as unknown as { fences: number[]; timeline: number; slot: number };
    doomed = ready.slot;
    const tl = SwTimeline.receive(arena, ready.timeline);
    const fences = ready.fences.map((h) => Fence.fromHandle(arena, h));
    const tid = w.worker.threadId;
    const exited = new Promise<void>((resolve) => w.worker.once('exit', () => resolve()));
    await w.worker.terminate();
    await exited;
    await new Promise((r) => setImmediate(r)); // the warning is emitted on the next tick
    expect(calls).toBe(1);
    const failures = takeReapFailures();
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(`reap of thread slot ${ready.slot} failed at stage CALLBACKS: injected failure`);
    // Later stages ran: the slot is free, the fences signaled -EOWNERDEAD, the raw blocks freed.
    expect(arena.slotsOfThread(tid)).toEqual([]);
    for (const f of fences) {
      expect(f.status()).toBe(Errno.EOWNERDEAD);
      f.put();
    }
    tl.close();
    // Only this thread's own internal blocks (its reference ledger) are left.
    const { internal: _ours, ...rest } = arena.stats().live;
    expect(rest).toEqual({});
    expectClean(arena);
  });
});

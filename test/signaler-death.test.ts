/**
 * Signaler death: every fence has a thread responsible for signaling it (its creator, or the thread
 * that adopted it). When that thread dies — terminated with `arena.watch` in place — its unsignaled
 * fences are signaled with -EOWNERDEAD (waiters wake, callbacks run, in this thread and in others),
 * its sw_sync timelines close (points -ENOENT), and its raw blocks are freed. Nothing hangs: every
 * wait below is bounded and expected to return signaled.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, SwTimeline, SyncFile } from '../src/index.js';
import { expectClean, TestWorker } from './support/core.js';

const workers: TestWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
});

/** Starts the dying worker, watched, and waits for it to be ready. */
async function dying(arena: Arena, data: Record<string, unknown>): Promise<{ w: TestWorker; ready: { fences: number[]; timeline: number; slot: number } }> {
  const w = new TestWorker('signaler-death', { buffer: arena.buffer, fences: 0, rawBlocks: 0, kept: 0, ...data });
  workers.push(w);
  arena.watch(w.worker);
  const ready = (await w.next('ready')) as unknown as { fences: number[]; timeline: number; slot: number };
  return { w, ready };
}

/** Terminates the worker and waits (bounded) until the watch has reaped its slot. */
async function kill(arena: Arena, w: TestWorker): Promise<void> {
  const tid = w.worker.threadId;
  const exited = new Promise<void>((resolve) => w.worker.once('exit', () => resolve()));
  await w.worker.terminate();
  await exited;
  // The watch's 'exit' listener was attached first, so it has run: the slot is reaped.
  expect(arena.slotsOfThread(tid)).toEqual([]);
}

describe('signaler death', () => {
  it("a dead worker's fences handed to main signal -EOWNERDEAD: waits return, callbacks run once", async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const { w, ready } = await dying(arena, { fences: 3 });
    const tl = SwTimeline.receive(arena, ready.timeline); // our open reference, received before the kill
    const fences = ready.fences.map((h) => Fence.fromHandle(arena, h));
    for (const f of fences) expect(f.signaler).toBe(ready.slot);
    const ran: number[] = [];
    fences.forEach((f, i) => f.addCallback(() => ran.push(i)));
    const pending = fences[0].waitAsync(10_000);
    await kill(arena, w);
    for (const f of fences) {
      expect(f.wait(10_000)).toBe(true);
      expect(f.status()).toBe(Errno.EOWNERDEAD);
      expect(f.signaler).toBe(-1);
    }
    expect(await pending).toBe(true);
    // Our callbacks were queued to our inbox by the reaper (it runs in this thread, so they ran there).
    await new Promise((r) => setTimeout(r, 0));
    expect(ran.sort()).toEqual([0, 1, 2]);
    for (const f of fences) f.put();
    tl.close();
    expectClean(arena);
  });

  it('a fence the dying worker adopted signals -EOWNERDEAD; one it did not adopt stays pending', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const ctx = Fence.contextAlloc(arena);
    const adopted = Fence.create(arena, { context: ctx, seqno: 1 });
    const ours = Fence.create(arena, { context: ctx, seqno: 2 });
    expect(adopted.signaler).toBe(arena.slot);
    const { w, ready } = await dying(arena, { adopt: adopted.handle });
    const tl = SwTimeline.receive(arena, ready.timeline); // our open reference, received before the kill
    expect(adopted.signaler).toBe(ready.slot);
    await kill(arena, w);
    expect(adopted.status()).toBe(Errno.EOWNERDEAD);
    expect(ours.status()).toBe(0);
    expect(ours.signaler).toBe(arena.slot);
    ours.signal();
    expect(ours.status()).toBe(1);
    expect(adopted.adoptSignaling()).toBe(false); // signaled: nothing to adopt
    adopted.put();
    ours.put();
    tl.close();
    expectClean(arena);
  });

  it("a dead worker's timeline closes: waiting points end -ENOENT, the other holder's close frees it", async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const { w, ready } = await dying(arena, {});
    const tl = SwTimeline.receive(arena, ready.timeline); // our open reference, received before the kill
    const fd = tl.createFence(5, 'waits');
    const point = SyncFile.getFence(arena, fd)!;
    const cb: number[] = [];
    point.addCallback((f) => cb.push(f.error));
    await kill(arena, w);
    expect(SyncFile.wait(arena, fd, 10_000)).toBe(true);
    expect(point.status()).toBe(Errno.ENOENT);
    await new Promise((r) => setTimeout(r, 0));
    expect(cb).toEqual([Errno.ENOENT]);
    expect(() => tl.inc(1)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    point.put();
    SyncFile.close(arena, fd);
    tl.close(); // our open reference: the last one frees the timeline
    expectClean(arena);
  });

  it("a dead worker's raw blocks are freed; the fences it shared with nobody are signaled", async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const before = arena.stats().used;
    const { w, ready } = await dying(arena, { rawBlocks: 8, kept: 2 });
    const tl = SwTimeline.receive(arena, ready.timeline); // our open reference, received before the kill
    expect(arena.stats().used).toBeGreaterThan(before + 8 * 1024);
    await kill(arena, w);
    tl.close();
    const report = arena.check();
    expect(report.problems).toEqual([]);
    // The raw blocks are gone; the two fences it kept stay (their reference is the dead thread's,
    // untracked), signaled so that nothing could wait on them forever.
    const leaks = report.leaks.filter((l) => l.type !== 'fence');
    expect(leaks).toEqual([]);
  });
});

/**
 * Arena lifetime in one thread: an arena nobody references is collected with its buffer (the
 * thread's registry of views holds them weakly), a referenced view is what attach() returns, and
 * a thread whose view was collected takes its own slot back on the next attach.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { threadId } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Arena, Fence } from '../src/index.js';
import { expectClean } from './support/core.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Lets the current job end (WeakRefs made or read in it keep their targets until then), then collects. */
async function collect(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 0));
    gc();
  }
}

const MIB = 1 << 20;

describe('arena lifetime', () => {
  it('an arena that is no longer referenced is collected with its buffer', async () => {
    await collect();
    const before = process.memoryUsage().arrayBuffers;
    const count = 300;
    for (let i = 0; i < count; i++) {
      const arena = Arena.create({ bytes: MIB });
      // Attach and a fence's life cycle too: none of them may keep the arena reachable.
      expect(Arena.attach(arena.buffer)).toBe(arena);
      const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
      f.signal();
      f.put();
    }
    const held = process.memoryUsage().arrayBuffers - before;
    expect(held).toBeGreaterThanOrEqual(count * MIB * 0.9); // they really were allocated and are not yet collected
    await collect();
    const after = process.memoryUsage().arrayBuffers - before;
    // Before the registry was weak every buffer stayed (314 MB here); a few may still be pending.
    expect(after).toBeLessThan((count * MIB) / 10);
  });

  it('attach returns the thread’s referenced view even across collections', async () => {
    const arena = Arena.create({ bytes: MIB, maxThreads: 2 });
    await collect();
    expect(Arena.attach(arena.buffer)).toBe(arena);
    expectClean(arena);
  });

  it('a thread whose view was collected takes back its own slot on attach', async () => {
    // Only the buffer survives: the thread's slot stays live in it, but no JS object refers to the view.
    const buffer = Arena.create({ bytes: MIB, maxThreads: 2 }).buffer;
    await collect();
    const again = Arena.attach(buffer);
    expect(again.slot).toBe(0);
    expect(again.slotsOfThread(threadId)).toEqual([0]);
    // Dropping and attaching many times (a worker attaching per task) never uses up the table.
    for (let i = 0; i < 5; i++) {
      Arena.attach(buffer).alloc(16);
      await collect();
    }
    const last = Arena.attach(buffer);
    expect(last.slot).toBe(0);
    expect(last.slotsOfThread(threadId)).toEqual([0]);
    const report = last.check();
    expect(report.problems).toEqual([]);
    expect(report.leaks).toHaveLength(5);
  });
});

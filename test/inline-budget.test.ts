/**
 * Inlining budget of the hot paths. V8's optimizing compiler inlines a function only when its
 * bytecode is at most --max-inlined-bytecode-size (460 bytes in Node 20). The functions below are
 * inlined into their callers on fence create+signal+put and lock+unlock, and some sit close to
 * that limit (markSignaledLocked was 434 bytes when this test was written): a change that pushes
 * one over costs the bench rows a few percent, which a noisy machine hides. This test reads each
 * function's bytecode length from `node --print-bytecode` and fails when one no longer fits, so
 * the change is noticed when it is made (shrink the function, or move its cold part out).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixture } from './support/core.js';

/** Hot functions that V8 inlines today, and the path each is on. */
const HOT: Record<string, string> = {
  markSignaledLocked: 'signal: flag, timestamp and list detach under the lock',
  signalFenceInline: 'signal with the inline lock',
  fenceInitWith: 'create: the struct written',
  fenceAllocWith: 'create: allocation, its record and init',
  createFenceAt: 'create: allocation and init',
  putFence: 'put',
  releaseFence: 'put: the last reference',
  freeFence: 'put: the block back to the allocator',
  traceInit: 'create, traced: the init event',
  traceSignaled: 'signal, traced: the signaled event',
  fenceEventArgs: 'the init and signaled events: the fence',
  ownRing: 'every traced event: the thread\'s ring',
  entryWord: 'every traced event: the entry written',
  publishEntry: 'every traced event: the entry published',
  FenceBase: 'create: the view (its constructor)',
  arenaArg: 'create: the arena argument checked',
  isView: 'create: the arena argument\'s brand and prototype tested',
  checkContextSeqno: 'create: context and seqno checked',
  v: 'put (and every method): the view checked against a released fence',
  signal: 'signal: the one-CAS dispatch',
  holdsLockWord: 'put: the caller does not hold the lock',
  pushRelease: 'put: the release record',
  dropRef: 'put: the drop',
};

/**
 * Paths that V8 compiles whole: every function on them inlined into one optimized function, which
 * holds only so much in all (--max-inlined-bytecode-size-cumulative, 920 in Node 20; a candidate
 * is taken only while the total so far plus 1.2 times its size fits). The signal path fits today,
 * with ~15 bytes to spare: a loop that calls signal() first inlines all of it (the lock, the flag,
 * the timestamp's BigInt left unallocated); its tracepoint's test and call are part of what it holds.
 */
const WHOLE: Record<string, string[]> = {
  'Fence.signal': ['signal', 'nowNs', 'signalFenceInline', 'markSignaledLocked'],
};

/**
 * Tracepoints whose event V8 inlines whole into the function that compiles the path: each is the
 * path's own functions (first) and the recorder with everything it calls. The signal path's
 * signaled event is recorded from markSignaledLocked, inlined into signalFenceInline: written by
 * a generic recorder it did not fit beside markSignaledLocked and was a call of nine arguments
 * on every traced signal (docs/architecture.md, "What tracing costs").
 */
const TRACED_WHOLE: Record<string, string[]> = {
  'the signaled event in signalFenceInline': ['markSignaledLocked', 'traceSignaled', 'fenceEventArgs', 'ownRing', 'entryWord', 'publishEntry'],
};

/**
 * Calls that a caller's loop inlines whole, each with everything it calls (a root of the caller's
 * own, whose bytecode does not count). The public raw-block alloc and free: when allocRaw did not
 * fit beside freeRaw, a loop of `arena.free(arena.alloc(n))` called it and got the handle (wider
 * than 31 bits) back as a heap-allocated number: 20-25 ns per pair instead of 12.5.
 */
const CALLER_WHOLE: Record<string, string[]> = {
  'arena.free(arena.alloc(n))': ['free', 'freeRaw', 'alloc', 'allocRaw'],
};

/** V8's limit in this Node (the flag's default, as `node --v8-options` prints it). */
function inlineLimit(): number {
  const out = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout;
  const m = /--max-inlined-bytecode-size=(\d+)/.exec(out);
  if (!m) throw new Error('node --v8-options printed no --max-inlined-bytecode-size default');
  return Number(m[1]);
}

/** V8's cumulative limit and its reserve factor in this Node (the flags' defaults). */
function cumulativeLimit(): { limit: number; scale: number } {
  const out = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout;
  const m = /--max-inlined-bytecode-size-cumulative=(\d+)/.exec(out);
  const f = /--reserve-inline-budget-scale-factor=([\d.]+)/.exec(out);
  if (!m || !f) throw new Error('node --v8-options printed no cumulative inlining budget');
  return { limit: Number(m[1]), scale: Number(f[1]) };
}

/** Bytecode length of `name` when the hot-path fixture runs (null: never compiled). */
function bytecodeLength(name: string): number | null {
  const r = spawnSync(process.execPath, ['--print-bytecode', `--print-bytecode-filter=${name}`, fileURLToPath(fixture('hot-path'))], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const lengths = [...r.stdout.matchAll(/Bytecode length: (\d+)/g)].map((m) => Number(m[1]));
  return lengths.length === 0 ? null : Math.max(...lengths);
}

describe('inlining budget of the hot paths', () => {
  const limit = inlineLimit();
  for (const [name, path] of Object.entries(HOT)) {
    it(`${name} (${path}) fits V8's inlining limit`, () => {
      const n = bytecodeLength(name);
      expect(n, `${name} was not compiled by the hot-path fixture (renamed?)`).not.toBeNull();
      expect(n!, `${name}: ${n} bytes of bytecode, V8 inlines up to ${limit}`).toBeLessThanOrEqual(limit);
    });
  }
});

describe('paths compiled whole', () => {
  const { limit, scale } = cumulativeLimit();
  for (const [path, names] of Object.entries(WHOLE)) {
    it(`${path} (${names.join(', ')}) fits V8's cumulative inlining budget`, () => {
      const sizes = names.map((name) => {
        const n = bytecodeLength(name);
        expect(n, `${name} was not compiled by the hot-path fixture (renamed?)`).not.toBeNull();
        return n!;
      });
      // All of it, with the reserve: what a caller with its budget untouched (a loop calling
      // signal() first, say) needs to inline the path whole, not just the root's own compilation.
      const total = sizes.reduce((a, b) => a + b, 0);
      expect(total * scale, `${path}: ${sizes.join(' + ')} = ${total} bytes, ×${scale}; V8 inlines up to ${limit} in all into one function`).toBeLessThanOrEqual(limit);
    });
  }
});

describe('traced events and caller loops inlined whole', () => {
  const { limit, scale } = cumulativeLimit();
  for (const [path, names] of Object.entries({ ...TRACED_WHOLE, ...CALLER_WHOLE })) {
    it(`${path} (${names.join(', ')}) fits V8's cumulative inlining budget`, () => {
      const sizes = names.map((name) => {
        const n = bytecodeLength(name);
        expect(n, `${name} was not compiled by the hot-path fixture (renamed?)`).not.toBeNull();
        return n!;
      });
      // Into a root whose own bytecode does not count: each candidate is taken while the total so
      // far plus `scale` times its size fits, in an order V8 chooses; whatever the order, the last
      // one taken needs at most the total plus (scale - 1) times the largest.
      const total = sizes.reduce((a, b) => a + b, 0);
      const worst = total + (scale - 1) * Math.max(...sizes);
      expect(worst, `${path}: ${sizes.join(' + ')} = ${total} bytes, the last taken ×${scale}; V8 inlines up to ${limit} in all into one function`).toBeLessThanOrEqual(limit);
    });
  }
});

/**
 * Traces of real threads: the tracepoints of the fence, wait, lock, callback and sanitizer paths,
 * as they come out in the Chrome export — a signal's arrows to the waiter it woke and to the
 * callback it queued in another thread, lock contention as spans, a use-after-free through a
 * borrowed lock — and `fencelab demo --trace` end to end.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Arena, Fence, SpinLock, type ChromeEvent, type ChromeTrace } from '../src/index.js';
import { chromeTraceProblems, flowPairs } from './support/chrome-trace.js';
import { TestWorker, expectClean } from './support/core.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fencelab-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** tid of the track named `name` (first lane of a thread). */
function tidOf(trace: ChromeTrace, name: string, pid?: number): number {
  const m = trace.traceEvents.find((e) => e.name === 'thread_name' && e.args!.name === name && (pid === undefined || e.pid === pid));
  expect(m, `a track named ${name}`).toBeDefined();
  return m!.tid;
}
const named = (trace: ChromeTrace, name: string): ChromeEvent[] => trace.traceEvents.filter((e) => e.name === name);

describe('traces of worker threads', () => {
  it('shows a signal waking a waiter in another thread, and running a callback queued to it', async () => {
    const arena = Arena.create({ bytes: 4 << 20 });
    arena.trace.start();
    const ctx = Fence.contextAlloc(arena);
    const waited = Fence.create(arena, { context: ctx, seqno: 1 });
    const waiter = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'importer 2' });
    await waiter.next('ready');
    waiter.post({ type: 'wait', handle: waited.handle, timeoutMs: 30_000 });
    // Signal only once the waiter sleeps on it (its slot says so): its wait then began before the signal.
    for (const deadline = Date.now() + 60_000; !arena.describe().threads.some((t) => t.waitingOn); ) {
      if (Date.now() > deadline) throw new Error('the waiter never went to sleep');
      await new Promise((r) => setTimeout(r, 5));
    }
    waited.signal();
    expect((await waiter.next('waited')).ok).toBe(true);

    // A callback of the main thread, run when another thread signals: queued to main's inbox.
    const called = Fence.create(arena, { context: ctx, seqno: 2 });
    const ran = new Promise<void>((resolve) => called.addCallback(() => resolve()));
    const signaler = new TestWorker('fence-signaler', { buffer: arena.buffer, handle: called.get().handle, delayMs: 0 });
    await signaler.next('signaled');
    await ran;
    await waiter.ask({ type: 'exit' }, 'bye');
    arena.trace.stop();

    const trace = arena.trace.export();
    expect(chromeTraceProblems(trace)).toEqual([]);
    const flows = flowPairs(trace);
    const wake = flows.find(([s]) => s.name === 'signal→wake')!;
    expect(wake, 'a signal→wake arrow').toBeDefined();
    expect(wake[0].tid).toBe(tidOf(trace, 'main'));
    expect(wake[1].tid).toBe(tidOf(trace, 'importer 2'));
    const cb = flows.find(([s]) => s.name === 'signal→callback')!;
    expect(cb, 'a signal→callback arrow').toBeDefined();
    expect(cb[1].tid).toBe(tidOf(trace, 'main'));
    expect(cb[0].tid).not.toBe(tidOf(trace, 'main'));
    // The kernel's tracepoints, under their names; the two lifetimes on the context's track.
    for (const n of ['dma_fence_init', 'dma_fence_enable_signal', 'callback_queued']) expect(named(trace, n).length, n).toBeGreaterThan(0);
    const lives = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'fence' && e.args?.createdBy !== undefined);
    expect(lives.map((e) => e.name).sort()).toEqual([`${ctx}:1`, `${ctx}:2`]);
    expect(lives.find((e) => e.name === `${ctx}:1`)!.args!.signaledBy).toBe('main');
    waited.put();
    called.put();
    arena.trace.dispose();
    expectClean(arena);
  });

  it('shows lock contention as a wait span and the contended hold until its release', async () => {
    const arena = Arena.create({ bytes: 4 << 20 });
    arena.trace.start({ categories: ['lock'] });
    const lock = SpinLock.create(arena);
    const holder = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'holder' });
    const other = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'contender' });
    await Promise.all([holder.next('ready'), other.next('ready')]);
    await holder.ask({ type: 'lock', ref: lock.ref, timeoutMs: 60_000 }, 'locked');
    other.post({ type: 'lock', ref: lock.ref, timeoutMs: 30_000 });
    for (const deadline = Date.now() + 60_000; !arena.describe().threads.some((t) => t.acquiring); ) {
      if (Date.now() > deadline) throw new Error('the contender never blocked');
      await new Promise((r) => setTimeout(r, 5));
    }
    await holder.ask({ type: 'unlock' }, 'unlocked');
    expect((await other.next('locked')).ok).toBe(true);
    await other.ask({ type: 'unlock' }, 'unlocked');
    // Exported while both are attached: the holder recorded nothing (its acquisition was not
    // contended), so only its live thread slot names it.
    const trace = arena.trace.export();
    for (const w of [holder, other]) await w.ask({ type: 'exit' }, 'bye');
    expect(chromeTraceProblems(trace)).toEqual([]);
    const at = `@${lock.index * 4}`;
    const wait = trace.traceEvents.find((e) => e.ph === 'X' && e.name === `lock wait ${at}`)!;
    expect(wait.args).toMatchObject({ holder: 'holder', outcome: 'acquired' });
    expect(wait.tid).toBe(tidOf(trace, 'contender'));
    const held = trace.traceEvents.find((e) => e.ph === 'X' && e.name === `lock held ${at}`)!;
    expect(held.tid).toBe(tidOf(trace, 'contender'));
    // The hold starts where the wait ends: the same event's time, but `ts + dur` is a sum of two
    // rounded microsecond values (one ulp over now and then), so compare within a nanosecond.
    expect(held.ts! - (wait.ts! + wait.dur!)).toBeGreaterThanOrEqual(-1e-3);
    lock.free();
  });

  it('records the use-after-free the sanitizer catches through a borrowed lock', () => {
    const arena = Arena.create({ bytes: 4 << 20, sanitize: 'count' });
    arena.trace.start();
    arena.trace.nameThread('importer');
    const lender = SpinLock.create(arena);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 9, lock: lender });
    lender.free(); // the lender goes first: the borrowed-lock use-after-free
    SpinLock.create(arena); // the memory has a new owner
    f.lock(); // through the dangling borrowed lock: caught, counted, and traced
    f.unlock();
    expect(arena.uafCount).toBeGreaterThan(0);
    const trace = arena.trace.export();
    expect(chromeTraceProblems(trace)).toEqual([]);
    const [uaf] = named(trace, 'use_after_free');
    expect(uaf.args).toMatchObject({ access: 'fence-lock', fence: `${f.context}:9`, freedBy: 'importer', nowHolds: 'lock of importer' });
    expect(uaf.tid).toBe(tidOf(trace, 'importer'));
    f.signal();
    f.put();
  });
});

describe('fencelab demo --trace', () => {
  it('writes a valid trace with the borrowed runs\' use-after-frees and the inline run\'s clean signal→wake arrows, and its timeline page', () => {
    const file = join(dir, 'demo.json');
    const r = spawnSync(process.execPath, [MAIN, 'demo', '--ops', '200', '--trace', file], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`trace: ${file}`);
    const trace = JSON.parse(readFileSync(file, 'utf8')) as ChromeTrace;
    expect(chromeTraceProblems(trace)).toEqual([]);
    const pidOf = (name: string) => trace.traceEvents.find((e) => e.name === 'process_name' && e.args!.name === name)!.pid;
    const borrowed = pidOf('borrowed + sanitizer: threads');
    const inline = pidOf('inline: threads');
    const uafs = named(trace, 'use_after_free');
    expect(uafs.length).toBeGreaterThan(0);
    expect(uafs.every((e) => e.pid === borrowed || e.pid === pidOf('borrowed: threads'))).toBe(true);
    const inlineFlows = flowPairs(trace).filter(([s]) => s.pid === inline && s.name === 'signal→wake');
    expect(inlineFlows.length).toBeGreaterThan(0);
    for (const [s, f] of inlineFlows) {
      expect(s.tid).toBe(tidOf(trace, 'exporter 1', inline));
      expect(f.tid).toBe(tidOf(trace, 'importer 2', inline));
    }
    expect(uafs.some((e) => e.pid === inline)).toBe(false);
    const page = join(dir, 'demo.html');
    expect(existsSync(page)).toBe(true);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain('ui.perfetto.dev');
    expect(html).toContain('"traceEvents"');
  });
});

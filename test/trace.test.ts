/**
 * The trace recorder and its Chrome export: per-thread rings in the arena (off by default, bounded,
 * sessions, names, rings that outlive their threads), and the export's structure checked by an
 * independent validator (required fields, spans that close and nest, flows with both ends).
 */
import { describe, expect, it } from 'vitest';
import { Arena, toChromeTrace, type RawEvent, type TraceSnapshot } from '../src/index.js';
import { definedStructs } from '../src/arena/struct.js';
import * as A from '../src/arena/layout.js';
import * as L from '../src/trace/layout.js';
import { mergeChromeTraces } from '../src/trace/chrome.js';
import { ringCapacity, traceEvent, tracing } from '../src/trace/ring.js';
import { readTrace } from '../src/trace/snapshot.js';
import { chromeTraceProblems, flowPairs } from './support/chrome-trace.js';
import { expectClean, rejects } from './support/core.js';

describe('recorder', () => {
  it('is off by default: no flag, no ring, nothing in the arena', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    expect(arena.trace.active).toBe(false);
    expect(tracing(arena.i32, L.TC_ALL)).toBe(false);
    expect(arena.trace.snapshot().threads).toEqual([]);
    expect(arena.stats().live.trace).toBeUndefined();
    expectClean(arena);
  });

  it('records into a ring of the calling thread, oldest first, and counts what a full ring overwrote', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    arena.trace.start({ eventsPerThread: 16 });
    const cap = ringCapacity(16);
    expect(cap).toBeGreaterThanOrEqual(16);
    for (let k = 0; k < cap + 10; k++) traceEvent(arena, L.EV_LOCK_OWNER_DIED, k, 0, 0, 0, 0);
    const snap = arena.trace.snapshot();
    expect(snap.threads).toHaveLength(1);
    const t = snap.threads[0];
    expect(t.name).toBe('main');
    expect(t.recorded).toBe(cap + 10);
    expect(t.lost).toBe(10);
    expect(t.events.map((e) => e.a)).toEqual(Array.from({ length: cap }, (_, k) => k + 10));
    expect(t.events.every((e, k) => k === 0 || e.ts >= t.events[k - 1].ts)).toBe(true);
    // The ring is a block of the arena: permanent for the check, not a leak.
    expect(arena.stats().live.trace).toBe(1);
    expectClean(arena);
  });

  it('records only the categories started, and nothing once stopped', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    arena.trace.start({ categories: ['lock', 'sanitizer'] });
    expect(arena.trace.categories).toEqual(['lock', 'sanitizer']);
    expect(tracing(arena.i32, L.TC_LOCK)).toBe(true);
    expect(tracing(arena.i32, L.TC_FENCE)).toBe(false);
    arena.trace.stop();
    expect(arena.trace.active).toBe(false);
    expect(tracing(arena.i32, L.TC_LOCK)).toBe(false);
    const snap = arena.trace.snapshot();
    expect(snap.recording).toBe(false);
    expect(snap.endMs).toBeGreaterThanOrEqual(snap.startMs);
  });

  it('starts a new session with empty rings and a new size; the old events no longer count', () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    arena.trace.start({ eventsPerThread: 16 });
    traceEvent(arena, L.EV_LOCK_OWNER_DIED, 1, 0, 0, 0, 0);
    arena.trace.start({ eventsPerThread: 4000 });
    expect(arena.trace.snapshot().threads).toEqual([]);
    traceEvent(arena, L.EV_LOCK_OWNER_DIED, 2, 0, 0, 0, 0);
    const [t] = arena.trace.snapshot().threads;
    expect(t.events.map((e) => e.a)).toEqual([2]);
    expect(arena.stats().live.trace).toBe(1); // the small ring was replaced, not kept
    arena.trace.dispose();
    expectClean(arena);
  });

  it('names the calling thread, cut to whole characters', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    expect(arena.trace.threadName).toBe('main');
    arena.trace.nameThread('exporter 1');
    expect(arena.trace.threadName).toBe('exporter 1');
    arena.trace.nameThread('é'.repeat(40));
    expect(arena.trace.threadName).toBe('é'.repeat(L.THREAD_NAME_MAX_BYTES / 2));
    arena.trace.start();
    traceEvent(arena, L.EV_LOCK_OWNER_DIED, 0, 0, 0, 0, 0);
    arena.trace.nameThread('importer 2');
    expect(arena.trace.snapshot().threads[0].name).toBe('importer 2');
    rejects(arena, () => arena.trace.nameThread(''), 'EINVAL');
  });

  it('refuses bad options with EINVAL and changes nothing', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    rejects(arena, () => arena.trace.start({ eventsPerThread: 3 }), 'EINVAL');
    rejects(arena, () => arena.trace.start({ eventsPerThread: 1.5 }), 'EINVAL');
    rejects(arena, () => arena.trace.start({ categories: [] }), 'EINVAL');
    rejects(arena, () => arena.trace.start({ categories: ['fence', 'nope' as 'fence'] }), 'EINVAL');
    expect(arena.trace.active).toBe(false);
  });

  it('drops events instead of failing when the arena has no room for a ring', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    arena.trace.start({ eventsPerThread: 200_000 }); // 8 MiB: more than the arena
    expect(() => traceEvent(arena, L.EV_LOCK_OWNER_DIED, 0, 0, 0, 0, 0)).not.toThrow();
    expect(arena.trace.snapshot().threads).toEqual([]);
    expectClean(arena);
  });

  it('places its header fields on a cache line of their own and its slot fields clear of every layer', async () => {
    await import('../src/index.js'); // every layer's layout registered
    const header = definedStructs().filter((s) => s.name.endsWith(' header') && s.base >= A.H_LAYERS && !['arena header', 'block header', 'trace header'].includes(s.name));
    const th = definedStructs().find((s) => s.name === 'trace header')!;
    expect(th.base % 16).toBe(0); // 64 bytes
    expect(header.map((s) => s.name)).toContain('fence header');
    for (const s of header) expect(s.end, `${s.name} runs into the trace header`).toBeLessThanOrEqual(th.base);
    const slot = definedStructs().filter((s) => s.name.endsWith(' thread slot') && s.name !== 'trace thread slot');
    const ts = definedStructs().find((s) => s.name === 'trace thread slot')!;
    expect(slot.map((s) => s.name)).toContain('driver thread slot');
    for (const s of slot) expect(s.end, `${s.name} runs into the trace thread slot`).toBeLessThanOrEqual(ts.base);
  });
});

/* ───────────── export ───────────── */

let clock = 1000;
function ev(kind: number, a = 0, b = 0, c = 0, d = 0, e = 0, bits = 0, dt = 0.01): RawEvent {
  clock += dt;
  return { ts: clock, kind, bits, a, b, c, d, e };
}

/**
 * Two threads: the exporter creates fence 7:1 and signals it (a callback queued to the importer);
 * the importer waits for it (woken), runs the callback, contends for a lock; a use-after-free;
 * an async wait that overlaps another; a wait still open at the end; a fence never signaled.
 */
function syntheticSnapshot(): TraceSnapshot {
  clock = 1000;
  const FW = 100;
  const GEN = 3;
  const exp: RawEvent[] = [];
  const imp: RawEvent[] = [];
  exp.push(ev(L.EV_FENCE_INIT, FW, GEN, 7, 1, 42, L.INIT_INLINE_LOCK));
  imp.push(ev(L.EV_FENCE_WAIT_START, FW, GEN, 7, 1, 0));
  imp.push(ev(L.EV_FENCE_WAIT_START, 200, 1, 7, 2, 1)); // async, overlaps the next one
  exp.push(ev(L.EV_FENCE_SIGNALED, FW, GEN, 7, 1, 0));
  exp.push(ev(L.EV_CB_QUEUED, 300, 5, 1, FW, GEN));
  exp.push(ev(L.EV_SIGNAL_DONE, FW, GEN, 0, 1));
  imp.push(ev(L.EV_FENCE_WAIT_END, FW, GEN, 7, 1, 1));
  imp.push(ev(L.EV_CB_RUN, 300, 5, FW, GEN, 0));
  imp.push(ev(L.EV_CB_DONE, 300, 5));
  imp.push(ev(L.EV_LOCK_CONTENDED, 555, 0, 3));
  imp.push(ev(L.EV_LOCK_ACQUIRED, 555, 1));
  imp.push(ev(L.EV_UAF, 900, 4, 5 | (A.BlockType.OPERATION << 24), 1 | (1 << 10) | (L.UAF_ACCESS_FENCE_LOCK << 20), (FW - 2) / 2, GEN));
  imp.push(ev(L.EV_LOCK_RELEASED, 555));
  imp.push(ev(L.EV_FENCE_WAIT_START, 400, 1, 7, 3, 0)); // never ends
  exp.push(ev(L.EV_FENCE_INIT, 400, 1, 7, 3, 42, L.INIT_INLINE_LOCK)); // never signaled
  exp.push(ev(L.EV_FENCE_DESTROY, FW, GEN, 7, 1));
  const thread = (slot: number, name: string, events: RawEvent[]) => ({
    slot, serial: slot + 1, threadId: slot, name, alive: true, recorded: events.length, lost: 0, events: events.sort((x, y) => x.ts - y.ts),
  });
  return {
    session: 1, recording: false, startMs: 1000, endMs: clock + 1, threads: [thread(0, 'exporter 1', exp), thread(1, 'importer 2', imp)], slotNames: {},
  };
}

describe('Chrome trace export', () => {
  it('produces a valid trace: required fields, closed and nested spans, flows with both ends', () => {
    const trace = toChromeTrace(syntheticSnapshot(), { opsName: (id) => (id === 42 ? 'fencelab:driver' : undefined) });
    expect(chromeTraceProblems(trace)).toEqual([]);
  });

  it('names one track per thread and one per fence context', () => {
    const trace = toChromeTrace(syntheticSnapshot(), { opsName: (id) => (id === 42 ? 'fencelab:driver' : undefined) });
    const names = trace.traceEvents.filter((e) => e.name === 'thread_name').map((e) => e.args!.name);
    expect(names).toEqual(expect.arrayContaining(['exporter 1', 'importer 2', 'context 7 (fencelab:driver)']));
    // The async wait that overlaps the blocking one went to a second track of the importer.
    expect(names).toContain('importer 2 · 2');
  });

  it('draws fence lifetimes init → signaled, and pending ones to the end, marked open', () => {
    const trace = toChromeTrace(syntheticSnapshot());
    const lives = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'fence' && e.args?.createdBy);
    const done = lives.find((e) => e.name === '7:1')!;
    expect(done.args).toMatchObject({ createdBy: 'exporter 1', signaledBy: 'exporter 1', lock: 'inline' });
    expect(done.ts).toBe(0.01 * 1000); // µs from the session start
    expect(done.dur).toBeCloseTo(0.03 * 1000, 6);
    const pending = lives.find((e) => e.name === '7:3 (pending)')!;
    expect(pending.args!.open).toBe(true);
    expect(pending.ts! + pending.dur!).toBeCloseTo((clock + 1 - 1000) * 1000, 3);
  });

  it('links the signal to the waiter it woke and to the callback it queued in another thread', () => {
    const trace = toChromeTrace(syntheticSnapshot());
    const pairs = flowPairs(trace);
    expect(pairs.map(([s]) => s.name).sort()).toEqual(['signal→callback', 'signal→wake']);
    const tidOf = (name: string) => trace.traceEvents.find((e) => e.name === 'thread_name' && e.args!.name === name)!.tid;
    for (const [s, f] of pairs) {
      expect(s.tid).toBe(tidOf('exporter 1'));
      expect(f.tid).toBe(tidOf('importer 2'));
      expect(f.ts).toBeGreaterThan(s.ts as number);
    }
  });

  it('shows waits, lock waits and contended holds as spans, and still-open ones as open', () => {
    const trace = toChromeTrace(syntheticSnapshot());
    const x = (prefix: string) => trace.traceEvents.filter((e) => e.ph === 'X' && e.name.startsWith(prefix));
    expect(x('wait 7:1')).toHaveLength(1);
    expect(x('lock wait @2220')[0].args).toMatchObject({ outcome: 'acquired', holder: 'exporter 1' });
    expect(x('lock held @2220')).toHaveLength(1);
    expect(x('wait 7:3 (still waiting)')[0].args!.open).toBe(true);
    expect(x('callback 7:1')).toHaveLength(1);
  });

  it('names who freed the memory and who holds it now in a use-after-free', () => {
    const trace = toChromeTrace(syntheticSnapshot());
    const uaf = trace.traceEvents.find((e) => e.name === 'use_after_free')!;
    expect(uaf.args).toMatchObject({ access: 'fence-lock', freedBy: 'exporter 1', nowHolds: 'operation of exporter 1', fence: '7:1' });
  });

  it('leaves out an end whose begin was overwritten, and says events were lost', () => {
    const snap = syntheticSnapshot();
    snap.threads[1].events = snap.threads[1].events.filter((e) => e.kind !== L.EV_FENCE_WAIT_START || e.a !== 100);
    snap.threads[1].lost = 1;
    const trace = toChromeTrace(snap);
    expect(chromeTraceProblems(trace)).toEqual([]);
    expect(trace.traceEvents.some((e) => e.name === 'wait 7:1')).toBe(false);
    expect(trace.otherData.eventsLost).toBe(1);
  });

  it('merges several sessions into one trace with distinct processes and flow ids', () => {
    const snap = syntheticSnapshot();
    const a = toChromeTrace(snap, {}, { pid: 1, label: 'borrowed', origin: 1000 });
    const b = toChromeTrace(snap, {}, { pid: 3, label: 'inline', origin: 1000 });
    const merged = mergeChromeTraces([a, b]);
    expect(chromeTraceProblems(merged)).toEqual([]);
    expect(flowPairs(merged)).toHaveLength(4);
    const procs = merged.traceEvents.filter((e) => e.name === 'process_name').map((e) => e.args!.name);
    expect(procs).toEqual(['borrowed: threads', 'borrowed: fence contexts', 'inline: threads', 'inline: fence contexts']);
  });

  it('exports a live session of this arena through arena.trace.export()', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    arena.trace.start();
    traceEvent(arena, L.EV_LOCK_CONTENDED, 10, 1, 0, 0, 0);
    traceEvent(arena, L.EV_LOCK_ACQUIRED, 10, 1, 0, 0, 0);
    traceEvent(arena, L.EV_LOCK_RELEASED, 10, 0, 0, 0, 0);
    const trace = arena.trace.export();
    expect(chromeTraceProblems(trace)).toEqual([]);
    expect(trace.traceEvents.filter((e) => e.ph === 'X').map((e) => e.name)).toEqual(['lock wait @40', 'lock held @40']);
    expect(readTrace(arena).threads[0].recorded).toBe(3);
  });
});

/**
 * The arena dump (arena.describe(), sync_debug style): live fences with state, error, references,
 * lock mode and holder, waiters, pending callbacks and creator; timelines and points; held locks
 * and owners; sync-file fds; the text rendering and the hang analysis.
 */
import { describe, expect, it } from 'vitest';
import {
  Arena, Errno, Fence, SpinLock, SwTimeline, SyncFile, analyzeHang, assertDump, renderDump, type ArenaDump,
} from '../src/index.js';
import { TestWorker } from './support/core.js';

function fenceOf(d: ArenaDump, label: string) {
  const f = d.fences.find((x) => x.label === label);
  expect(f, `fence ${label} in the dump`).toBeDefined();
  return f!;
}

describe('arena.describe()', () => {
  it('lists live fences with state, error, references, lock, callbacks and creator', () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    arena.trace.nameThread('main');
    const ctx = Fence.contextAlloc(arena);
    const pending = Fence.create(arena, { context: ctx, seqno: 1 });
    pending.get();
    pending.addCallback(() => {});
    const failed = Fence.create(arena, { context: ctx, seqno: 2 });
    failed.setError(Errno.ECANCELED);
    failed.signal();
    pending.lock();
    const d = arena.describe('test');
    pending.unlock();
    expect(d.reason).toBe('test');
    const p = fenceOf(d, `${ctx}:1`);
    expect(p).toMatchObject({ state: 'pending', status: 0, refcount: 2, driver: 'fencelab', signalingEnabled: true, createdBy: 'main' });
    expect(p.lock).toMatchObject({ mode: 'inline', holder: 'main', ownerDied: false });
    expect(p.callbacks).toEqual([{ owner: 'main', kind: 'function' }]);
    const f = fenceOf(d, `${ctx}:2`);
    expect(f).toMatchObject({ state: 'error', status: Errno.ECANCELED, error: 'ECANCELED', driver: 'detached-driver' });
    // The held inline lock is listed with its owner.
    expect(d.locks).toEqual(expect.arrayContaining([expect.objectContaining({ what: `inline lock of fence ${ctx}:1`, holder: 'main' })]));
    expect(d.threads.find((t) => t.slot === arena.slot)).toMatchObject({ name: 'main', state: 'live' });
    pending.put();
    pending.signal();
    pending.put();
    failed.put();
  });

  it('says when a borrowed lock dangles: its lender was freed while the fence lives', () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const lock = SpinLock.create(arena);
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 7, lock });
    expect(fenceOf(arena.describe(), `${f.context}:7`).lock).toMatchObject({ mode: 'borrowed', dangling: false });
    lock.free();
    const d = arena.describe();
    expect(fenceOf(d, `${f.context}:7`).lock).toMatchObject({ mode: 'borrowed', dangling: true, holder: null });
    expect(renderDump(d)).toContain('DANGLING');
    f.signal();
    f.put();
  });

  it('lists timelines with their points, and sync-file fds with their fence and owner', () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    arena.trace.nameThread('timeline owner');
    const tl = SwTimeline.create(arena, 'tl-a');
    const fd1 = tl.createFence(1, 'one');
    const fd2 = tl.createFence(5);
    tl.inc(1);
    const d = arena.describe();
    const t = d.timelines.find((x) => x.name === 'tl-a')!;
    expect(t).toMatchObject({ value: 1, closed: false });
    expect(t.points).toEqual([expect.objectContaining({ seqno: 5, state: 'pending' })]);
    const fds = d.fds.filter((x) => x.fd === fd1 || x.fd === fd2);
    expect(fds).toHaveLength(2);
    expect(fds.find((x) => x.fd === fd1)).toMatchObject({ name: 'one', status: 1, owner: 'timeline owner' });
    expect(fds.find((x) => x.fd === fd2)).toMatchObject({ fence: `${t.context}:5`, status: 0 });
    const text = renderDump(d);
    expect(text).toContain('tl-a: context');
    expect(text).toContain(`fd ${fd1} "one"`);
    SyncFile.close(arena, fd1);
    SyncFile.close(arena, fd2);
    tl.close();
  });

  it('names the worker that holds a lock, and survives a JSON round trip', async () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const lock = SpinLock.create(arena);
    const w = new TestWorker('lock-holder', { buffer: arena.buffer });
    const { slot } = await w.next('ready');
    await w.ask({ type: 'lock', ref: lock.ref }, 'locked');
    const d = JSON.parse(JSON.stringify(arena.describe())) as unknown;
    assertDump(d);
    const held = d.locks.find((l) => l.what === `lock ${lock.ref}`)!;
    expect(held.holder).toMatch(/^thread \d+$/);
    expect(d.threads.find((t) => t.slot === slot)!.locksHeld.map((l) => l.what)).toEqual([`lock ${lock.ref}`]);
    await w.ask({ type: 'unlock' }, 'unlocked');
    await w.ask({ type: 'exit' }, 'bye');
    await w.exited();
  });

  it('refuses what is not a dump', () => {
    expect(() => assertDump({ format: 'x' })).toThrow(/EINVAL: dump: not a fencelab arena dump/);
    expect(() => assertDump({ format: 'fencelab-dump', version: 99 })).toThrow(/version 99/);
  });
});

describe('hang analysis', () => {
  const base = (): ArenaDump => ({
    format: 'fencelab-dump', version: 1, takenAt: '2026-01-01T00:00:00.000Z', pid: 1,
    arena: { bytes: 1, used: 1, maxThreads: 4, lockKind: 'futex', sanitize: false, useAfterFree: 0, tracing: [] },
    threads: [], fences: [], timelines: [], locks: [], fds: [], operations: [], notes: [],
  });
  const thread = (name: string, slot: number, extra: Partial<ArenaDump['threads'][number]> = {}) => ({
    slot, serial: slot, threadId: slot, name, state: 'live' as const, locksHeld: [], inboxQueued: 0, dispatching: false, ...extra,
  });

  it('names the fence a thread waits for, its state and who created it', () => {
    const d = base();
    d.threads.push(thread('importer 2', 1, { waitingOn: { fence: '3:17', handle: 1, forMs: 5200 } }));
    d.fences.push({
      handle: 1, label: '3:17', context: 3, seqno: 17, ops: 'fencelab:driver', driver: 'fencelab-driver', timeline: 'operations',
      state: 'pending', status: 0, refcount: 2, lock: { mode: 'borrowed', word: 400, holder: null, ownerDied: false, lender: 'a freed block @396', dangling: true },
      waiters: { sleeping: ['importer 2'], flagged: true }, callbacks: [], signalingEnabled: true, createdBy: 'exporter 1',
    });
    const lines = analyzeHang(d);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('importer 2 has been waiting 5.2 s for fence 3:17');
    expect(lines[0]).toContain('created by exporter 1');
    expect(lines[0]).toContain('dangles');
  });

  it('names the holder of a lock a thread is blocked on, and a cycle of such waits as a deadlock', () => {
    const d = base();
    d.threads.push(thread('a', 1, { acquiring: { lock: 40, what: 'lock 1', holder: 'b' } }));
    d.threads.push(thread('b', 2, { acquiring: { lock: 80, what: 'lock 2', holder: 'a' } }));
    d.locks.push({ lock: 40, what: 'lock 1', holder: 'b', ownerDied: false, waiting: ['a'] });
    d.locks.push({ lock: 80, what: 'lock 2', holder: 'a', ownerDied: false, waiting: ['b'] });
    const lines = analyzeHang(d);
    expect(lines).toContain('a is blocked acquiring lock 1 (@40), held by b');
    expect(lines.filter((l) => l.startsWith('deadlock:'))).toEqual(['deadlock: a → b → a (each waits for a lock the next one holds)']);
  });

  it('says so when nothing is blocked but fences are pending', () => {
    const d = base();
    expect(analyzeHang(d)).toEqual([]);
    d.fences.push({
      handle: 1, label: '1:1', context: 1, seqno: 1, ops: 'fencelab', driver: 'fencelab', timeline: 'unbound', state: 'pending', status: 0,
      refcount: 1, lock: { mode: 'inline', word: 8, holder: null, ownerDied: false }, waiters: { sleeping: [], flagged: false },
      callbacks: [], signalingEnabled: false, createdBy: 'main',
    });
    expect(analyzeHang(d)[0]).toMatch(/no thread is blocked.*1 fences are pending/);
  });
});

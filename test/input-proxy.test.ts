/**
 * A Proxy as an argument of every public entry. A revoked Proxy throws a TypeError of the engine's
 * own at any read or test (`instanceof`, `Array.isArray`, a property), so an entry that tests its
 * argument that way would answer with that TypeError: each entry refuses it with a FenceError
 * instead (EINVAL, or EBADF where the argument is a handle), naming the argument, with nothing
 * changed. A live Proxy whose traps throw is the caller's own code: its exception propagates
 * unchanged (the contract in src/errors.ts), or the entry refuses the value first; either way
 * nothing changed.
 */
import { describe, expect, it } from 'vitest';
import {
  Arena, Driver, Fence, FenceArray, FenceChain, FenceError, FenceSlot, SpinLock, SwTimeline, SyncFile, analyzeHang, assertDump,
  createFencePool, dedupArray, defineFenceOps, dispatcherOf, drain, drainInbox, dropParkedRef, importFd, isContainer, ledgerCompact,
  ledgerSize, lockOrderCount, lockOrderReports, matchContext, mergeChromeTraces, mergeFences, parkRef, putTracked, renderDump,
  renderTimelinePage, renderTimelineSection, runGraph, runWithFence, signalError, startDispatcher, stopDispatcher, taskResult,
  toChromeTrace, trackRef, unwrapFences, waitInbox, watchPool,
} from '../src/index.js';
import { expectClean } from './support/core.js';

function revoked(): never {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy as never;
}

/** The error every throwing trap of the proxies below throws: the caller's own. */
const TRAP = new Error('trap');

/** Proxies whose `get`, `getPrototypeOf` or `ownKeys` trap throws, and one whose every trap does. */
const throwingProxies = (): [string, never][] => [
  ['get', new Proxy({}, { get: () => { throw TRAP; } }) as never],
  ['getPrototypeOf', new Proxy({}, { getPrototypeOf: () => { throw TRAP; } }) as never],
  ['ownKeys', new Proxy({}, { ownKeys: () => { throw TRAP; } }) as never],
  ['every trap', new Proxy({}, new Proxy({}, { get: () => () => { throw TRAP; } })) as never],
];

/** What an entry test gets: an arena and one of each object, all released by `done`. */
interface Fixture {
  arena: Arena;
  ctx: number;
  f: Fence;
  lock: SpinLock;
  tl: SwTimeline;
  fd: number;
  drv: Driver;
  slot: FenceSlot;
  cells: Float64Array;
  done(): void;
}

function fixture(): Fixture {
  const arena = Arena.create({ bytes: 1 << 20, maxFds: 64 });
  const ctx = Fence.contextAlloc(arena);
  const f = Fence.create(arena, { context: ctx, seqno: 1 });
  f.signal();
  const lock = SpinLock.create(arena);
  const tl = SwTimeline.create(arena, 'proxy');
  const fd = SyncFile.create(arena, f);
  const drv = Driver.create(arena);
  const slot = FenceSlot.create(arena);
  const done = (): void => {
    slot.destroy();
    drv.destroy();
    SyncFile.close(arena, fd);
    tl.close();
    lock.free();
    f.put();
    expectClean(arena);
    arena.detach();
  };
  return { arena, ctx, f, lock, tl, fd, drv, slot, cells: new Float64Array(1), done };
}

/**
 * An entry and what it answers a revoked Proxy with: EINVAL unless `code` says otherwise; `false`
 * for a predicate, which answers any value that is not what it asks about with false. `options`:
 * the argument is an options object, which a Proxy with only a throwing getPrototypeOf trap is
 * (its keys and values read fine): accepted, so the throwing sweep leaves that one out.
 */
type Entry = [name: string, call: (x: Fixture, p: never) => unknown, code?: 'EBADF' | false | 'options'];

/** Every public entry, `p` in one argument position (or one option) at a time. */
const ENTRIES: Entry[] = [
  ['Arena.create', (_, p) => Arena.create(p), 'options'],
  ['Arena.create bytes', (_, p) => Arena.create({ bytes: p })],
  ['Arena.create lockKind', (_, p) => Arena.create({ lockKind: p })],
  ['Arena.attach', (_, p) => Arena.attach(p)],
  ['arena.alloc', (x, p) => x.arena.alloc(p)],
  ['arena.free', (x, p) => x.arena.free(p), 'EBADF'],
  ['arena.adopt', (x, p) => x.arena.adopt(p), 'EBADF'],
  ['arena.describe', (x, p) => x.arena.describe(p)],
  ['arena.watch', (x, p) => x.arena.watch(p)],
  ['trace.start', (x, p) => x.arena.trace.start(p), 'options'],
  ['trace.start categories', (x, p) => x.arena.trace.start({ categories: p })],
  ['trace.export', (x, p) => x.arena.trace.export(p), 'options'],
  ['Fence.create arena', (x, p) => Fence.create(p, { context: x.ctx, seqno: 2 })],
  // Fence.create's fast path reads `init` with no test of its own (see createFenceAt): the engine's
  // TypeError of that read is answered there, out of line.
  ['Fence.create init', (x, p) => Fence.create(x.arena, p)],
  ['Fence.create ops', (x, p) => Fence.create(x.arena, { context: x.ctx, seqno: 2, ops: p })],
  ['Fence.create lock', (x, p) => Fence.create(x.arena, { context: x.ctx, seqno: 2, lock: p })],
  ['Fence.create context', (x, p) => Fence.create(x.arena, { context: p, seqno: 2 })],
  ['Fence.createTracked arena', (x, p) => Fence.createTracked(p, { context: x.ctx, seqno: 2 })],
  ['Fence.createTracked init', (x, p) => Fence.createTracked(x.arena, p)],
  ['Fence.fromHandle arena', (x, p) => Fence.fromHandle(p, x.f.handle)],
  ['Fence.fromHandle handle', (x, p) => Fence.fromHandle(x.arena, p), 'EBADF'],
  ['Fence.contextAlloc', (_, p) => Fence.contextAlloc(p)],
  ['Fence.stub', (_, p) => Fence.stub(p)],
  ['Fence.privateStub', (_, p) => Fence.privateStub(p)],
  ['Fence.receive', (_, p) => Fence.receive(p, 1)],
  ['Fence.withdraw', (_, p) => Fence.withdraw(p, 1)],
  ['Fence.waitAny list', (_, p) => Fence.waitAny(p)],
  ['Fence.waitAny element', (_, p) => Fence.waitAny([p])],
  ['Fence.waitAny timeout', (x, p) => Fence.waitAny([x.f], p)],
  ['Fence.waitAnyAsync list', (_, p) => Fence.waitAnyAsync(p)],
  ['Fence.waitAnyAsync options', (x, p) => Fence.waitAnyAsync([x.f], 0, p), 'options'],
  ['Fence.waitAnyAsync signal', (x, p) => Fence.waitAnyAsync([x.f], 0, { signal: p })],
  ['Fence.isLater', (x, p) => Fence.isLater(x.f, p)],
  ['Fence.later', (x, p) => Fence.later(p, x.f)],
  ['fence.share', (x, p) => x.f.share(p), 'options'],
  ['fence.share signaling', (x, p) => x.f.share({ signaling: p })],
  ['fence.wait', (x, p) => x.f.wait(p)],
  ['fence.waitAsync options', (x, p) => x.f.waitAsync(0, p), 'options'],
  ['fence.addCallback', (x, p) => x.f.addCallback(p)],
  ['fence.removeCallback', (x, p) => x.f.removeCallback(p)],
  ['fence.setError', (x, p) => x.f.setError(p)],
  ['SpinLock.create arena', (_, p) => SpinLock.create(p)],
  ['SpinLock.create kind', (x, p) => SpinLock.create(x.arena, p)],
  ['SpinLock.fromRef', (x, p) => SpinLock.fromRef(p, x.lock.ref)],
  ['SpinLock.at', (x, p) => SpinLock.at(p, x.lock.ref)],
  ['lock.lock timeout', (x, p) => x.lock.lock(p)],
  ['SyncFile.create arena', (x, p) => SyncFile.create(p, x.f)],
  ['SyncFile.create fence', (x, p) => SyncFile.create(x.arena, p)],
  ['SyncFile.create name', (x, p) => SyncFile.create(x.arena, x.f, p)],
  ['SyncFile.getFence', (x, p) => SyncFile.getFence(p, x.fd)],
  ['SyncFile.close', (x, p) => SyncFile.close(p, x.fd)],
  ['SyncFile.merge arena', (x, p) => SyncFile.merge(p, x.fd, x.fd)],
  ['SyncFile.merge name', (x, p) => SyncFile.merge(x.arena, x.fd, x.fd, p)],
  ['SyncFile.info', (x, p) => SyncFile.info(p, x.fd)],
  ['SyncFile.wait arena', (x, p) => SyncFile.wait(p, x.fd, 0)],
  ['SyncFile.wait timeout', (x, p) => SyncFile.wait(x.arena, x.fd, p)],
  ['SyncFile.waitAsync', (x, p) => SyncFile.waitAsync(p, x.fd, 0)],
  ['SyncFile.setDeadline', (x, p) => SyncFile.setDeadline(p, x.fd, 1n)],
  ['SyncFile.openCount', (_, p) => SyncFile.openCount(p)],
  ['SwTimeline.create arena', (_, p) => SwTimeline.create(p)],
  ['SwTimeline.create name', (x, p) => SwTimeline.create(x.arena, p)],
  ['SwTimeline.fromHandle', (x, p) => SwTimeline.fromHandle(p, x.tl.handle)],
  ['SwTimeline.receive', (_, p) => SwTimeline.receive(p, 1)],
  ['timeline.createFence', (x, p) => x.tl.createFence(p)],
  ['timeline.inc', (x, p) => x.tl.inc(p)],
  ['Driver.create arena', (_, p) => Driver.create(p)],
  ['Driver.create options', (x, p) => Driver.create(x.arena, p), 'options'],
  ['Driver.create lockMode', (x, p) => Driver.create(x.arena, { lockMode: p })],
  ['Driver.fromHandle', (x, p) => Driver.fromHandle(p, x.drv.handle)],
  ['driver.submit', (x, p) => x.drv.submit(p), 'options'],
  ['driver.submit payload', (x, p) => x.drv.submit({ payload: p })],
  ['driver.execute', (x, p) => x.drv.execute(p)],
  ['driver.cancel', (x, p) => x.drv.cancel(p), 'EBADF'],
  ['FenceArray.create arena', (x, p) => FenceArray.create(p, [x.f], { context: x.ctx + 1, seqno: 1 })],
  ['FenceArray.create fences', (x, p) => FenceArray.create(x.arena, p, { context: x.ctx + 1, seqno: 1 })],
  ['FenceArray.create element', (x, p) => FenceArray.create(x.arena, [x.f, p], { context: x.ctx + 1, seqno: 1 })],
  ['FenceArray.create options', (x, p) => FenceArray.create(x.arena, [x.f], p)],
  ['FenceArray.alloc', (_, p) => FenceArray.alloc(p, 1)],
  ['FenceArray.init', (x, p) => FenceArray.init(p, [x.f], { context: x.ctx + 1, seqno: 1 })],
  ['FenceArray.isArray', (_, p) => FenceArray.isArray(p), false],
  ['FenceArray.fences', (_, p) => FenceArray.fences(p)],
  ['FenceChain.create arena', (x, p) => FenceChain.create(p, null, x.f, 1)],
  ['FenceChain.create prev', (x, p) => FenceChain.create(x.arena, p, x.f, 1)],
  ['FenceChain.create fence', (x, p) => FenceChain.create(x.arena, null, p, 1)],
  ['FenceChain.alloc', (_, p) => FenceChain.alloc(p)],
  ['FenceChain.init', (x, p) => FenceChain.init(p, null, x.f, 1)],
  ['FenceChain.isChain', (_, p) => FenceChain.isChain(p), false],
  ['FenceChain.contained', (_, p) => FenceChain.contained(p)],
  ['FenceChain.walk', (_, p) => FenceChain.walk(p)],
  ['FenceChain.findSeqno', (_, p) => FenceChain.findSeqno(p, 1)],
  ['unwrapFences', (_, p) => unwrapFences(p)],
  ['mergeFences arena', (x, p) => mergeFences(p, [x.f])],
  ['mergeFences fences', (x, p) => mergeFences(x.arena, p)],
  ['mergeFences element', (x, p) => mergeFences(x.arena, [p])],
  ['dedupArray', (_, p) => dedupArray(p)],
  ['dedupArray element', (_, p) => dedupArray([p])],
  ['isContainer', (_, p) => isContainer(p)],
  ['matchContext', (_, p) => matchContext(p, 1)],
  ['FenceSlot.create', (_, p) => FenceSlot.create(p)],
  ['FenceSlot.fromHandle', (x, p) => FenceSlot.fromHandle(p, x.slot.handle)],
  ['slot.set', (x, p) => x.slot.set(p)],
  ['startDispatcher arena', (_, p) => startDispatcher(p)],
  ['startDispatcher options', (x, p) => startDispatcher(x.arena, p), 'options'],
  ['stopDispatcher', (_, p) => stopDispatcher(p)],
  ['dispatcherOf', (_, p) => dispatcherOf(p)],
  ['drain', (_, p) => drain(p)],
  ['waitInbox', (_, p) => waitInbox(p)],
  ['drainInbox', (_, p) => drainInbox(p)],
  ['trackRef', (_, p) => trackRef(p)],
  ['putTracked', (_, p) => putTracked(p)],
  ['importFd', (x, p) => importFd(p, x.fd)],
  ['ledgerSize', (_, p) => ledgerSize(p)],
  ['ledgerCompact', (_, p) => ledgerCompact(p)],
  ['parkRef fence', (x, p) => parkRef(p, x.cells, 0)],
  ['parkRef cells', (x, p) => parkRef(x.f, p, 0)],
  ['dropParkedRef arena', (x, p) => dropParkedRef(p, x.cells, 0)],
  ['dropParkedRef cells', (x, p) => dropParkedRef(x.arena, p, 0)],
  ['createFencePool arena', (_, p) => createFencePool(p, {} as never)],
  ['createFencePool options', (x, p) => createFencePool(x.arena, p)],
  ['watchPool arena', (_, p) => watchPool(p, { threads: [], on: () => undefined })],
  ['watchPool pool', (x, p) => watchPool(x.arena, p)],
  ['runWithFence pool', (x, p) => runWithFence(p, x.arena, 1)],
  ['runGraph pool', (x, p) => runGraph(p, x.arena, {})],
  ['taskResult', (_, p) => taskResult(p)],
  ['signalError', (_, p) => signalError(p, -5)],
  ['lockOrderCount', (_, p) => lockOrderCount(p)],
  ['lockOrderReports', (_, p) => lockOrderReports(p)],
  ['defineFenceOps', (_, p) => defineFenceOps('proxy', p)],
  ['assertDump', (_, p) => assertDump(p)],
  ['renderDump', (_, p) => renderDump(p)],
  ['analyzeHang', (_, p) => analyzeHang(p)],
  ['toChromeTrace', (_, p) => toChromeTrace(p)],
  ['mergeChromeTraces', (_, p) => mergeChromeTraces(p)],
  ['mergeChromeTraces element', (_, p) => mergeChromeTraces([p])],
  ['renderTimelinePage', (_, p) => renderTimelinePage(p)],
  ['renderTimelineSection', (_, p) => renderTimelineSection(p)],
];

/** What `call` throws, or what the promise it returns rejects with (undefined: neither). */
async function outcome(call: () => unknown): Promise<unknown> {
  try {
    const r = call();
    if (r instanceof Promise) await r;
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('a revoked Proxy at every public entry', () => {
  for (const [name, call, answer] of ENTRIES) {
    const code = answer === 'EBADF' ? 'EBADF' : 'EINVAL';
    it(`${name}: ${answer === false ? 'false' : `FenceError ${code}`}, nothing changed`, async () => {
      const x = fixture();
      if (answer === false) expect(call(x, revoked())).toBe(false);
      else {
        const e = await outcome(() => call(x, revoked()));
        expect(e, `${name} threw ${String(e)}`).toBeInstanceOf(FenceError);
        expect((e as FenceError).code, (e as Error).message).toBe(code);
      }
      const report = x.arena.check();
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      x.done();
    });
  }

  it('messages name the argument and describe the value', async () => {
    const x = fixture();
    const msg = async (call: () => unknown) => ((await outcome(call)) as Error).message;
    expect(await msg(() => Fence.create(revoked(), { context: x.ctx, seqno: 2 }))).toMatch(/Fence.create: arena must be an Arena, got a revoked proxy/);
    expect(await msg(() => Fence.create(x.arena, revoked()))).toMatch(/Fence.create needs \{ context, seqno \}, got a revoked proxy/);
    expect(await msg(() => Fence.waitAny(revoked()))).toMatch(/waitAny needs a non-empty array of fences, got a revoked proxy/);
    expect(await msg(() => FenceArray.create(x.arena, revoked(), { context: x.ctx + 1, seqno: 1 }))).toMatch(/FenceArray.create .*got a revoked proxy/);
    expect(await msg(() => FenceChain.walk(revoked()))).toMatch(/fence must be a Fence, got a revoked proxy/);
    expect(await msg(() => SyncFile.create(x.arena, revoked()))).toMatch(/got a revoked proxy/);
    expect(await msg(() => trackRef(revoked()))).toMatch(/fence must be a Fence, got a revoked proxy/);
    x.done();
  });
});

describe('a Proxy whose traps throw (the caller\'s own code) at every public entry', () => {
  for (const [name, call, answer] of ENTRIES) {
    it(`${name}: the trap's error unchanged or a FenceError, nothing changed`, async () => {
      const x = fixture();
      for (const [trap, p] of throwingProxies()) {
        if (answer === 'options' && trap === 'getPrototypeOf') continue;
        const e = await outcome(() => call(x, p));
        if (answer === false && e === undefined) continue;
        if (e !== TRAP) {
          expect(e, `${name} (${trap} trap) threw ${String(e)}`).toBeInstanceOf(FenceError);
          expect(['EINVAL', 'EBADF']).toContain((e as FenceError).code);
        }
        const report = x.arena.check();
        expect(report.problems).toEqual([]);
        expect(report.ok).toBe(true);
      }
      x.done();
    });
  }
});

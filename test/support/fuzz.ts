/**
 * The typed-input fuzzer: seeded batches of mixed calls over the public API (src/index.ts), valid
 * ones on a model of what is live and misuse ones with values no entry accepts. A batch passes when
 * every throw was a FenceError with a code, `arena.check()` is clean with 0 leaked bytes after the
 * tear-down, and every callback that was added (and not removed) ran exactly once.
 *
 * A failing batch is replayed from its seed alone: `FUZZ_SEED=<seed> npx vitest run test/fuzz.test.ts`.
 */
import { writeSync } from 'node:fs';
import seedrandom from 'seedrandom';

/** FUZZ_TRACE=1: every call's name to stderr before it runs (finds the call of a hang). */
const TRACE = process.env.FUZZ_TRACE === '1';
import {
  Arena, Driver, Fence, FenceArray, FenceChain, FenceError, FenceSlot, SpinLock, SwTimeline, SyncFile, dedupArray, isContainer, matchContext,
  mergeFences, unwrapFences, type FenceCallback, type Operation,
} from '../../src/index.js';

/** What one batch did. */
export interface BatchResult {
  calls: number;
  /** Thrown FenceErrors by code (expected refusals and legitimate outcomes alike). */
  errors: Record<string, number>;
  /** Anything else thrown, or a broken invariant: empty when the batch passed. */
  failures: string[];
}

interface LiveFence {
  f: Fence;
  /** References this model holds on the fence (it puts them at the tear-down). */
  refs: number;
}

interface Cb {
  ran: number;
  removed: boolean;
  /** null when addCallback returned null: it must never run. */
  handle: FenceCallback | null;
  fence: Fence;
}

/** A value with a throwing valueOf and toString: converting it anywhere (a message included) throws. */
const HOSTILE = { valueOf: (): never => { throw new Error('valueOf'); }, toString: (): never => { throw new Error('toString'); } };
const ODD: unknown[] = [null, Symbol('g'), Symbol(), () => 0, true, Object.create(null), HOSTILE, [null]];

/**
 * What kind of argument a misuse call gets, each pool holding only values its kind never accepts:
 * `handle` (and stale handles of freed blocks), `num` (a count, a size, a timeout, a value),
 * `big` (a bigint ns), `str` (a name), `opts` (an options object), `obj` (an Arena, a Fence, an
 * array of them), `data` (an `obj` where null and functions are valid: a callback, a slot's fence,
 * an operation handle).
 */
type Kind = 'handle' | 'num' | 'big' | 'str' | 'opts' | 'obj' | 'data';
const POOLS: Record<Kind, unknown[]> = {
  handle: [...ODD, -1, 0, 1.5, NaN, -Infinity, 2 ** 60, 'x', '', {}, [], 10n],
  num: [...ODD, -5000, NaN, -Infinity, 'x', '7', {}, [], 10n],
  big: [...ODD, -1n, 5, 1.5, NaN, 'x', {}, []],
  str: [...ODD, 5, NaN, {}, [], 10n],
  opts: [null, Symbol('o'), () => 0, true, 5, 'x', [], 10n, NaN],
  obj: [...ODD, 5, 'x', {}, [], 10n, NaN, -1],
  data: [Symbol('d'), true, Object.create(null), HOSTILE, [null], 5, 'x', {}, [], 10n, NaN, -1],
};

/** A test-side description of a pool value (the library's own describing is under test). */
function describeArg(x: unknown): string {
  if (x === HOSTILE) return 'a hostile object';
  if (typeof x === 'symbol') return 'a symbol';
  if (typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === null) return 'a null-prototype object';
  if (typeof x === 'bigint') return `${x}n`;
  if (typeof x === 'function') return 'a function';
  return JSON.stringify(x) ?? String(x);
}

function garbage(rnd: () => number, kind: Kind, stale: number[]): unknown {
  if (kind === 'handle' && stale.length > 0 && rnd() < 0.3) return stale[Math.floor(rnd() * stale.length)];
  const pool = POOLS[kind];
  return pool[Math.floor(rnd() * pool.length)];
}

/** Runs one batch of `calls` calls from `seed`. */
export async function runBatch(seed: string, calls: number, keepGoing = false): Promise<BatchResult> {
  const rnd = seedrandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (n: number) => Math.floor(rnd() * n);
  const errors: Record<string, number> = {};
  const failures: string[] = [];
  const path: string[] = [];
  const arena = Arena.create({ bytes: 4 << 20, maxFds: 256, lockKind: pick(['futex', 'ticket', 'tas', 'ttas'] as const) });
  const ctx = Fence.contextAlloc(arena, 1);
  let seqno = 1;
  const fences: LiveFence[] = [];
  const everyFence: Fence[] = [];
  const cbs: Cb[] = [];
  const locked: Fence[] = [];
  const spins: SpinLock[] = [];
  const spinHeld: SpinLock[] = [];
  const raws: number[] = [];
  const fds: number[] = [];
  const timelines: SwTimeline[] = [];
  const drivers: Driver[] = [];
  const ops: Operation[] = [];
  const slots: FenceSlot[] = [];
  const stale: number[] = [];

  const born = new Map<number, string>();
  const note = (f: Fence) => {
    if (TRACE) born.set(f.handle, `${path[path.length - 1]}#${path.length}`);
    everyFence.push(f);
    fences.push({ f, refs: 1 });
  };
  const newFence = () => note(Fence.create(arena, { context: ctx, seqno: seqno++ }));
  const held = () => (fences.length > 0 ? pick(fences) : undefined);
  // The model never hands over the last reference it has on a fence whose lock it holds: a thread
  // that holds a fence's lock holds a reference on it (the container's last put would otherwise be
  // refused with EDEADLK inside its walk). put() of that reference is tried, and must be refused.
  const lockedLast = (lf: LiveFence) => lf.refs === 1 && locked.includes(lf.f);
  const takeOver = (lf: LiveFence) => {
    lf.refs--;
    if (lf.refs === 0) fences.splice(fences.indexOf(lf), 1);
  };
  const addCb = (f: Fence) => {
    const cb: Cb = { ran: 0, removed: false, handle: null, fence: f };
    cb.handle = f.addCallback(() => cb.ran++);
    cbs.push(cb);
  };

  // Valid calls on the model. Each may still throw a FenceError (EDEADLK under a held lock, EINVAL
  // for an error after signal, ...): counted, never a failure.
  const valid: [string, () => void][] = [
    ['create', newFence],
    ['get', () => { const lf = held(); if (lf) { lf.f.get(); lf.refs++; } }],
    ['put', () => {
      const lf = held();
      if (!lf) return;
      lf.f.put(); // may refuse (EDEADLK under the lock): then nothing was dropped
      takeOver(lf);
    }],
    ['signal', () => { const lf = held(); if (TRACE && lf) writeSync(2, `  on ${lf.f.handle} made by ${born.get(lf.f.handle)}\n`); lf?.f.signal(); }],
    ['signalError', () => { const lf = held(); if (lf) { lf.f.setError(-(1 + int(200))); lf.f.signal(); } }],
    ['addCallback', () => { const lf = held(); if (lf) addCb(lf.f); }],
    ['removeCallback', () => {
      const cb = cbs.length > 0 ? pick(cbs) : undefined;
      if (cb?.handle && !cb.removed) {
        try {
          if (cb.fence.removeCallback(cb.handle)) cb.removed = true;
        } catch (e) {
          // The fence may have been released since (EBADF): the callback ran by then.
          if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
        }
      }
    }],
    ['status', () => held()?.f.status()],
    ['wait0', () => held()?.f.wait(0)],
    ['isSignaled', () => held()?.f.isSignaled()],
    ['lock', () => { const lf = held(); if (lf && locked.length < 3) { lf.f.lock(); locked.push(lf.f); } }],
    ['unlock', () => { const f = locked.pop(); f?.unlock(); }],
    ['array', () => {
      const n = 1 + int(3);
      const picked: LiveFence[] = [];
      for (let i = 0; i < n && fences.length > 0; i++) {
        const lf = pick(fences);
        if (picked.filter((p) => p === lf).length >= lf.refs || isContainer(lf.f) || lockedLast(lf)) continue;
        picked.push(lf);
      }
      if (picked.length === 0) return;
      const a = FenceArray.create(arena, picked.map((p) => p.f), { context: Fence.contextAlloc(arena), seqno: 1, signalOnAny: rnd() < 0.3 });
      for (const p of picked) takeOver(p);
      note(a);
    }],
    ['chain', () => {
      const lf = held();
      if (!lf || FenceChain.isChain(lf.f) || lockedLast(lf)) return;
      const chains = fences.filter((x) => x !== lf && FenceChain.isChain(x.f) && !lockedLast(x));
      const prev = chains.length > 0 && rnd() < 0.7 ? pick(chains) : undefined;
      const link = FenceChain.create(arena, prev?.f ?? null, lf.f, seqno++);
      takeOver(lf);
      if (prev) takeOver(prev);
      note(link);
    }],
    ['unwrap', () => { const lf = held(); if (lf) unwrapFences(lf.f); }],
    ['merge', () => {
      const xs = [held(), held()].filter((x) => x !== undefined).map((x) => x.f);
      if (xs.length > 0) {
        note(mergeFences(arena, xs));
      }
    }],
    ['matchContext', () => { const lf = held(); if (lf) matchContext(lf.f, ctx); }],
    ['syncfile', () => { const lf = held(); if (lf && fds.length < 64) fds.push(SyncFile.create(arena, lf.f)); }],
    ['syncfileGet', () => { if (fds.length > 0) note(SyncFile.getFence(arena, pick(fds))!); }],
    ['syncfileClose', () => {
      if (fds.length === 0) return;
      const fd = pick(fds);
      SyncFile.close(arena, fd); // EDEADLK under the fence's lock when it holds the last reference: still open then
      fds.splice(fds.indexOf(fd), 1);
      stale.push(fd);
    }],
    ['syncfileMerge', () => { if (fds.length > 1 && fds.length < 64) fds.push(SyncFile.merge(arena, pick(fds), pick(fds))); }],
    ['timeline', () => { if (timelines.length < 4) timelines.push(SwTimeline.create(arena, 'fz')); }],
    ['timelineFence', () => { if (timelines.length > 0 && fds.length < 64) fds.push(pick(timelines).createFence(int(20))); }],
    ['timelineInc', () => { if (timelines.length > 0) pick(timelines).inc(1 + int(5)); }],
    ['timelineClose', () => {
      if (timelines.length === 0) return;
      const tl = pick(timelines);
      tl.close(); // EDEADLK under a point's lock: still open then
      timelines.splice(timelines.indexOf(tl), 1);
    }],
    ['spinCreate', () => { if (spins.length < 8) spins.push(SpinLock.create(arena)); }],
    ['spinLock', () => { const s = spins.length > 0 ? pick(spins) : undefined; if (s && !spinHeld.includes(s)) { s.lock(); spinHeld.push(s); } }],
    ['spinUnlock', () => { const s = spinHeld.pop(); s?.unlock(); }],
    ['spinFree', () => {
      const s = spins.length > 0 ? pick(spins) : undefined;
      if (s && !spinHeld.includes(s)) { s.free(); spins.splice(spins.indexOf(s), 1); stale.push(s.ref); }
    }],
    ['alloc', () => { if (raws.length < 32) raws.push(arena.alloc(1 + int(300))); }],
    ['free', () => { if (raws.length > 0) { const r = raws.splice(int(raws.length), 1)[0]; arena.free(r); stale.push(r); } }],
    ['driver', () => { if (drivers.length < 2) drivers.push(Driver.create(arena, { lockMode: pick(['inline', 'borrowed'] as const) })); }],
    ['submit', () => { if (drivers.length > 0 && ops.length < 16) ops.push(pick(drivers).submit()); }],
    ['execute', () => { if (ops.length > 0) { const op = ops.splice(int(ops.length), 1)[0]; op.driver.execute(op); stale.push(op.handle); } }],
    ['cancel', () => { if (ops.length > 0) { const op = pick(ops); op.driver.cancel(op.handle); } }],
    ['opCallback', () => { if (ops.length > 0) { const op = pick(ops); if (!op.fence.testSignaledFlag()) addCb(op.fence); } }],
    ['slot', () => { if (slots.length < 4) slots.push(FenceSlot.create(arena)); }],
    ['slotSet', () => { if (slots.length > 0) pick(slots).set(held()?.f ?? null); }],
    ['slotGet', () => { if (slots.length > 0) { const f = pick(slots).get(); if (f) note(f); } }],
  ];

  // Misuse: one argument from the garbage pool, or a block of the wrong type. Every one must be
  // refused with a FenceError (a call that succeeds is a failure: nothing here is a valid call).
  let lastArg = '';
  const g = (kind: Kind) => {
    const x = garbage(rnd, kind, stale);
    lastArg = describeArg(x);
    return x;
  };
  const anyFence = () => held()?.f ?? Fence.stub(arena);
  const wrongBlock = () => pick([...raws, ...spins.map((s) => s.ref), ...ops.map((o) => o.handle), ...drivers.map((d) => d.handle), 0]);
  const misuse: [string, () => unknown][] = [
    ['Arena.create', () => Arena.create(g('opts') as never)],
    ['Arena.attach', () => Arena.attach(g('obj') as never)],
    ['arena.alloc', () => arena.alloc(g('num') as never)],
    ['arena.allocTyped', () => arena.alloc(56, 2 + int(12))],
    ['arena.free', () => arena.free(g('handle') as never)],
    ['arena.freeFence', () => arena.free(anyFence().handle)],
    ['arena.freeOp', () => (ops.length > 0 ? arena.free(pick(ops).handle) : arena.free(g('handle') as never))],
    ['Fence.create', () => Fence.create(arena, g('opts') as never)],
    ['Fence.createArena', () => Fence.create(g('obj') as never, { context: ctx, seqno: 1 })],
    ['Fence.createCtx', () => Fence.create(arena, { context: g('num') as never, seqno: 1 })],
    ['Fence.createOps', () => Fence.create(arena, { context: ctx, seqno: 1, ops: g('obj') as never })],
    ['Fence.createLock', () => Fence.create(arena, { context: ctx, seqno: 1, lock: g('obj') as never })],
    ['Fence.fromHandle', () => Fence.fromHandle(arena, g('handle') as never)],
    ['Fence.fromHandleWrong', () => Fence.fromHandle(arena, wrongBlock())],
    ['Fence.fromHandleArena', () => Fence.fromHandle(g('obj') as never, 1)],
    ['Fence.contextAlloc', () => Fence.contextAlloc(arena, g('num') as never)],
    ['fence.wait', () => anyFence().wait(g('num') as never)],
    ['fence.setError', () => anyFence().setError(g('num') as never)],
    ['fence.addCallback', () => anyFence().addCallback(g('data') as never)],
    ['fence.removeCallback', () => anyFence().removeCallback(g('obj') as never)],
    ['fence.setDeadline', () => anyFence().setDeadline(g('big') as never)],
    ['fence.signalTimestamp', () => anyFence().signalTimestamp(g('big') as never)],
    ['fence.userFlag', () => anyFence().setUserFlag(g('num') as never)],
    ['fence.lockTimeout', () => anyFence().lock(g('num') as never)],
    ['Fence.waitAny', () => Fence.waitAny(g('obj') as never, 0)],
    ['Fence.isLater', () => Fence.isLater(anyFence(), g('obj') as never)],
    ['Fence.later', () => Fence.later(g('obj') as never, anyFence())],
    ['FenceArray.create', () => FenceArray.create(arena, g('obj') as never, { context: 1, seqno: 1 })],
    ['FenceArray.createOpts', () => FenceArray.create(arena, [anyFence()], g('opts') as never)],
    ['FenceArray.fences', () => FenceArray.fences(g('obj') as never)],
    ['FenceChain.create', () => FenceChain.create(arena, null, g('obj') as never, 1)],
    ['FenceChain.createSeq', () => FenceChain.create(arena, null, anyFence(), g('num') as never)],
    ['FenceChain.findSeqno', () => FenceChain.findSeqno(g('obj') as never, 1)],
    ['FenceChain.walk', () => FenceChain.walk(g('obj') as never)],
    ['unwrapFences', () => unwrapFences(g('obj') as never)],
    ['mergeFences', () => mergeFences(arena, g('obj') as never)],
    ['dedupArray', () => dedupArray([g('data')] as never)],
    ['isContainer', () => isContainer(g('obj') as never)],
    ['matchContext', () => matchContext(anyFence(), g('num') as never)],
    ['SyncFile.create', () => SyncFile.create(arena, g('obj') as never)],
    ['SyncFile.close', () => SyncFile.close(arena, g('handle') as never)],
    ['SyncFile.getFence', () => SyncFile.getFence(arena, g('handle') as never)],
    ['SyncFile.info', () => SyncFile.info(arena, g('handle') as never)],
    ['SyncFile.merge', () => SyncFile.merge(arena, g('handle') as never, fds.length > 0 ? pick(fds) : 1)],
    ['SyncFile.wait', () => SyncFile.wait(arena, g('handle') as never, 0)],
    ['SyncFile.arena', () => SyncFile.getFence(g('obj') as never, 1)],
    ['SwTimeline.create', () => SwTimeline.create(arena, g('str') as never)],
    ['SwTimeline.createArena', () => SwTimeline.create(g('obj') as never)],
    ['SwTimeline.fromHandle', () => SwTimeline.fromHandle(arena, g('handle') as never)],
    ['SwTimeline.fromHandleWrong', () => SwTimeline.fromHandle(arena, wrongBlock())],
    ['SwTimeline.receive', () => SwTimeline.receive(arena, g('handle') as never)],
    ['SwTimeline.receiveWrong', () => SwTimeline.receive(arena, wrongBlock())],
    ['SwTimeline.receiveArena', () => SwTimeline.receive(g('obj') as never, 1)],
    ['timeline.createFence', () => (timelines.length > 0 ? pick(timelines).createFence(g('num') as never) : SwTimeline.create(g('obj') as never))],
    ['timeline.inc', () => (timelines.length > 0 ? pick(timelines).inc(g('num') as never) : SwTimeline.create(g('obj') as never))],
    ['SpinLock.create', () => SpinLock.create(arena, g('str') as never)],
    ['SpinLock.fromRef', () => SpinLock.fromRef(arena, g('handle') as never)],
    ['SpinLock.fromRefWrong', () => SpinLock.fromRef(arena, pick([...raws, ...ops.map((o) => o.handle), anyFence().handle]))],
    ['SpinLock.at', () => SpinLock.at(arena, g('handle') as never)],
    ['Driver.create', () => Driver.create(arena, g('opts') as never)],
    ['Driver.createArena', () => Driver.create(g('obj') as never)],
    ['Driver.fromHandle', () => Driver.fromHandle(arena, g('handle') as never)],
    ['Driver.fromHandleWrong', () => Driver.fromHandle(arena, pick([...raws, ...ops.map((o) => o.handle), anyFence().handle]))],
    ['driver.submit', () => (drivers.length > 0 ? pick(drivers).submit(g('opts') as never) : Driver.create(g('obj') as never))],
    ['driver.execute', () => (drivers.length > 0 ? pick(drivers).execute(g('obj') as never) : Driver.create(g('obj') as never))],
    ['driver.cancel', () => (drivers.length > 0 ? pick(drivers).cancel(pick([Symbol('c'), 'x', {}, 10n, NaN, -1, 1.5, null, HOSTILE, Object.create(null)]) as never) : Driver.create(g('obj') as never))],
    ['FenceSlot.create', () => FenceSlot.create(g('obj') as never)],
    ['FenceSlot.fromHandle', () => FenceSlot.fromHandle(arena, g('handle') as never)],
    ['FenceSlot.fromHandleWrong', () => FenceSlot.fromHandle(arena, wrongBlock())],
    ['slot.set', () => (slots.length > 0 ? pick(slots).set(g('data') as never) : FenceSlot.create(g('obj') as never))],
  ];

  const call = (name: string, fn: () => unknown, mustThrow: boolean) => {
    path.push(name);
    if (TRACE) writeSync(2, `${name}\n`);
    try {
      fn();
      if (mustThrow) failures.push(`${name}: accepted ${lastArg}, a value it must refuse`);
    } catch (e) {
      if (TRACE) writeSync(2, `  threw ${e instanceof Error ? e.message.slice(0, 150) : 'a non-Error'}\n`);
      if (e instanceof FenceError && typeof e.code === 'string' && e.errno < 0) errors[e.code] = (errors[e.code] ?? 0) + 1;
      else failures.push(`${name}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : 'a non-Error'}`);
    }
  };

  for (let i = 0; i < calls && (keepGoing || failures.length === 0); i++) {
    if (rnd() < 0.3) call(...pick(misuse), true);
    else call(...pick(valid), false);
  }

  // Tear-down: release everything the model holds, signaling first so that every callback runs.
  const step = (name: string, fn: () => void) => call(`teardown ${name}`, fn, false);
  while (locked.length > 0) step('unlock', () => locked.pop()!.unlock());
  while (spinHeld.length > 0) step('spin unlock', () => spinHeld.pop()!.unlock());
  for (const op of ops) step('execute', () => op.driver.execute(op));
  for (const d of drivers) step('driver destroy', () => d.destroy());
  for (const f of everyFence) {
    try {
      f.signal();
    } catch (e) {
      if (!(e instanceof FenceError && e.code === 'EBADF')) failures.push(`teardown signal threw ${String(e)}`);
    }
  }
  for (const s of slots) step('slot destroy', () => s.destroy());
  for (const fd of fds) step('close fd', () => SyncFile.close(arena, fd));
  for (const tl of timelines) step('timeline close', () => tl.close());
  for (const lf of fences) for (let k = 0; k < lf.refs; k++) step('put', () => lf.f.put());
  for (const s of spins) step('spin free', () => s.free());
  for (const r of raws) step('free', () => arena.free(r));

  // Work a container deferred while this thread held a lock (a child signaled under the array's
  // lock) runs once the event loop turns, as it would for any caller: let it.
  await new Promise((resolve) => setImmediate(resolve));
  cbs.forEach((cb, i) => {
    const want = cb.handle === null || cb.removed ? 0 : 1;
    if (cb.ran !== want) failures.push(`callback ${i} ran ${cb.ran} times, expected ${want}`);
  });
  const report = arena.check();
  if (!report.ok) failures.push(`arena.check: ${report.problems.slice(0, 3).join('; ')}`);
  if (TRACE && report.leakedBytes !== 0)
    for (const l of report.leaks) writeSync(2, `leak ${l.type} ${l.ref} made by ${born.get(l.ref) ?? '?'}\n`);
  if (report.leakedBytes !== 0) failures.push(`leaked ${report.leakedBytes} bytes: ${JSON.stringify(report.leaks.slice(0, 3))}`);
  if (failures.length > 0) {
    const calls = path.filter((p) => !p.startsWith('teardown'));
    failures.push(`path (last 12 calls of ${calls.length}, then the tear-down): ${calls.slice(-12).join(' → ')}`);
  }
  else arena.detach();
  return { calls: path.length, errors, failures };
}

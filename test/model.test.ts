/**
 * Model-based tests (fast-check `fc.commands`): random sequences of fence operations — create,
 * get, put, signal, signal with an error, addCallback, removeCallback, status, wait(0), arrays,
 * chains, sw_sync timelines — run on a real arena and on a plain JS model, compared after every
 * step: refcounts, status, callback runs, and at the end a clean arena with 0 leaked bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Arena, Fence, FenceArray, FenceChain, FenceError, SwTimeline, SyncFile, type FenceCallback } from '../src/index.js';

/** The model of one fence: what the library must report for it. */
interface MFence {
  f: Fence;
  /** References the test holds. */
  refs: number;
  /** 0 pending, 1 signaled, negative errno. */
  status: number;
  /** Containers that hold a reference on it (the model then does not expect it released). */
  heldBy: number;
  kind: 'plain' | 'array' | 'chain' | 'point';
  /** Array: its children; chain: its fence. */
  parts: MFence[];
  signalOnAny: boolean;
  /** Point: its timeline and value. */
  tl?: MTimeline;
  value?: number;
  pendingError: number;
}

interface MCallback {
  fence: MFence;
  handle: FenceCallback | null;
  runs: number;
  removed: boolean;
}

interface MTimeline {
  tl: SwTimeline;
  counter: number;
  open: boolean;
}

interface World {
  arena: Arena;
  fences: MFence[];
  cbs: MCallback[];
  timelines: MTimeline[];
  ctx: number;
  seqno: number;
}

/** Status the model expects of `m` (recomputed from its parts). */
function modelStatus(m: MFence): number {
  if (m.status !== 0) return m.status;
  if (m.kind === 'chain') return modelStatus(m.parts[0]);
  if (m.kind === 'array') {
    const st = m.parts.map(modelStatus);
    const done = m.signalOnAny ? st.some((s) => s !== 0) : st.every((s) => s !== 0);
    if (!done) return 0;
    const err = m.parts.find((p) => modelStatus(p) < 0);
    return err ? modelStatus(err) : 1;
  }
  if (m.kind === 'point' && m.tl && m.tl.counter >= (m.value ?? 0)) return 1;
  return 0;
}

/**
 * Checks a reported status against the model: exact for plain fences and points; for containers,
 * pending or done (which child error an array reports depends on the order its children signaled).
 */
function expectStatus(m: MFence, st: number): void {
  const want = modelStatus(m);
  if (m.kind === 'plain' || m.kind === 'point') {
    expect(st).toBe(want);
    return;
  }
  expect(st !== 0).toBe(want !== 0);
  if (st < 0) expect(m.parts.some((p) => modelStatus(p) === st) || m.status === st).toBe(true);
}

/** Settles the model: containers whose parts are done are signaled too (their callbacks ran). */
function settle(w: World): void {
  for (const m of w.fences) if (m.status === 0) m.status = modelStatus(m);
}

const live = (w: World) => w.fences.filter((m) => m.refs > 0);

type Cmd = fc.Command<World, World>;

/** Steps run across all sequences (the test asserts the sequences did something). */
const ran: Record<string, number> = {};
const count = (name: string) => void (ran[name] = (ran[name] ?? 0) + 1);

const pickIdx = fc.nat({ max: 1000 });

class Create implements Cmd {
  check = () => true;
  run(_: World, w: World): void {
    count(this.constructor.name);
    const f = Fence.create(w.arena, { context: w.ctx, seqno: w.seqno++ });
    w.fences.push({ f, refs: 1, status: 0, heldBy: 0, kind: 'plain', parts: [], signalOnAny: false, pendingError: 0 });
    expect(f.refcount).toBe(1);
  }
  toString = () => 'create';
}

abstract class OnFence implements Cmd {
  constructor(readonly i: number) {}
  check = (w: World) => live(w).length > 0;
  target(w: World): MFence {
    const xs = live(w);
    return xs[this.i % xs.length];
  }
  abstract run(m: World, w: World): void;
  abstract toString(): string;
}

class Get extends OnFence {
  run(_: World, w: World): void {
    count(this.constructor.name);
    const m = this.target(w);
    const before = m.f.refcount;
    m.f.get();
    m.refs++;
    expect(m.f.refcount).toBe(before + 1);
  }
  toString = () => `get(${this.i})`;
}

class Put extends OnFence {
  run(_: World, w: World): void {
    count(this.constructor.name);
    const m = this.target(w);
    const before = m.f.refcount;
    m.f.put();
    m.refs--;
    if (before > 1) expect(m.f.refcount).toBe(before - 1);
    else {
      // The last put: released; an unsignaled fence with callbacks was first signaled -EDEADLK.
      expect(() => m.f.refcount).toThrow(FenceError);
      if (m.status === 0 && w.cbs.some((c) => c.fence === m && c.handle && !c.removed)) m.status = -35;
      settle(w);
    }
  }
  toString = () => `put(${this.i})`;
}

class Signal extends OnFence {
  constructor(i: number, readonly errno: number) {
    super(i);
  }
  run(_: World, w: World): void {
    count(this.constructor.name);
    const m = this.target(w);
    if (m.kind !== 'plain') return; // containers and points signal through their parts and timelines
    const was = modelStatus(m);
    if (this.errno !== 0) {
      if (was === 0) m.f.setError(this.errno);
      else expect(() => m.f.setError(this.errno)).toThrow(FenceError);
    }
    expect(m.f.checkAndSignal()).toBe(was !== 0);
    if (was === 0) m.status = this.errno !== 0 ? this.errno : 1;
    settle(w);
  }
  toString = () => `signal(${this.i}, ${this.errno})`;
}

class AddCallback extends OnFence {
  run(_: World, w: World): void {
    count(this.constructor.name);
    const m = this.target(w);
    const cb: MCallback = { fence: m, handle: null, runs: 0, removed: false };
    cb.handle = m.f.addCallback(() => cb.runs++);
    // The kernel's -ENOENT: null exactly when the fence already signaled (containers: their parts).
    expect(cb.handle === null).toBe(modelStatus(m) !== 0);
    if (cb.handle === null) settle(w);
    w.cbs.push(cb);
  }
  toString = () => `addCallback(${this.i})`;
}

class RemoveCallback implements Cmd {
  constructor(readonly i: number) {}
  check = (w: World) => w.cbs.some((c) => c.handle !== null && !c.removed && c.fence.refs > 0);
  run(_: World, w: World): void {
    count(this.constructor.name);
    const xs = w.cbs.filter((c) => c.handle !== null && !c.removed && c.fence.refs > 0);
    const cb = xs[this.i % xs.length];
    const removed = cb.fence.f.removeCallback(cb.handle!);
    // Still pending exactly when the fence has not signaled (and then it never runs).
    expect(removed).toBe(modelStatus(cb.fence) === 0);
    if (removed) cb.removed = true;
  }
  toString = () => `removeCallback(${this.i})`;
}

class Status extends OnFence {
  run(_: World, w: World): void {
    count(this.constructor.name);
    const m = this.target(w);
    expectStatus(m, m.f.status());
    expect(m.f.wait(0)).toBe(modelStatus(m) !== 0);
    settle(w);
  }
  toString = () => `status+wait0(${this.i})`;
}

class MakeArray implements Cmd {
  constructor(readonly picks: number[], readonly any: boolean) {}
  check = (w: World) => live(w).some((m) => m.kind !== 'array' && m.kind !== 'chain');
  run(_: World, w: World): void {
    count(this.constructor.name);
    const leaves = live(w).filter((m) => m.kind !== 'array' && m.kind !== 'chain');
    const parts = [...new Set(this.picks.map((p) => leaves[p % leaves.length]))];
    for (const p of parts) p.f.get(); // the array takes over these references
    const a = FenceArray.create(w.arena, parts.map((p) => p.f), { context: Fence.contextAlloc(w.arena), seqno: 1, signalOnAny: this.any });
    for (const p of parts) p.heldBy++;
    const m: MFence = { f: a, refs: 1, status: 0, heldBy: 0, kind: 'array', parts, signalOnAny: this.any, pendingError: 0 };
    w.fences.push(m);
    expectStatus(m, a.status());
    settle(w);
  }
  toString = () => `array([${this.picks.join(',')}], any=${this.any})`;
}

class MakeChain extends OnFence {
  override check = (w: World) => live(w).some((m) => m.kind === 'plain');
  run(_: World, w: World): void {
    count(this.constructor.name);
    const plain = live(w).filter((m) => m.kind === 'plain');
    const m = plain[this.i % plain.length];
    m.f.get(); // the link takes it over
    const link = FenceChain.create(w.arena, null, m.f, w.seqno++);
    m.heldBy++;
    w.fences.push({ f: link, refs: 1, status: 0, heldBy: 0, kind: 'chain', parts: [m], signalOnAny: false, pendingError: 0 });
    // A single link signals with its fence (checked at its status steps through the model).
    expect(FenceChain.contained(link).handle).toBe(m.f.handle);
  }
  toString = () => `chain(${this.i})`;
}

class TimelinePoint implements Cmd {
  constructor(readonly value: number) {}
  check = (w: World) => w.timelines.some((t) => t.open);
  run(_: World, w: World): void {
    count(this.constructor.name);
    const t = w.timelines.find((x) => x.open)!;
    const fd = t.tl.createFence(this.value);
    const f = SyncFile.getFence(w.arena, fd)!;
    SyncFile.close(w.arena, fd);
    const m: MFence = { f, refs: 1, status: 0, heldBy: 0, kind: 'point', parts: [], signalOnAny: false, tl: t, value: this.value, pendingError: 0 };
    w.fences.push(m);
    expectStatus(m, f.status());
  }
  toString = () => `point(${this.value})`;
}

class TimelineInc implements Cmd {
  constructor(readonly n: number) {}
  check = (w: World) => w.timelines.some((t) => t.open);
  run(_: World, w: World): void {
    count(this.constructor.name);
    const t = w.timelines.find((x) => x.open)!;
    t.tl.inc(this.n);
    t.counter += this.n;
    settle(w);
  }
  toString = () => `inc(${this.n})`;
}

const commands = [
  fc.constant(new Create()),
  pickIdx.map((i) => new Get(i)),
  pickIdx.map((i) => new Put(i)),
  fc.tuple(pickIdx, fc.constantFrom(0, 0, -5, -125)).map(([i, e]) => new Signal(i, e)),
  pickIdx.map((i) => new AddCallback(i)),
  pickIdx.map((i) => new RemoveCallback(i)),
  pickIdx.map((i) => new Status(i)),
  fc.tuple(fc.array(pickIdx, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([p, any]) => new MakeArray(p, any)),
  pickIdx.map((i) => new MakeChain(i)),
  fc.integer({ min: 0, max: 12 }).map((v) => new TimelinePoint(v)),
  fc.integer({ min: 1, max: 4 }).map((n) => new TimelineInc(n)),
];

describe('model-based fence sequences (fast-check)', () => {
  it('random create/get/put/signal/callbacks/status/wait/arrays/chains/timelines match a plain model', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: 'max' }), (cmds) => {
        const arena = Arena.create({ bytes: 4 << 20 });
        const w: World = { arena, fences: [], cbs: [], timelines: [], ctx: Fence.contextAlloc(arena), seqno: 1 };
        w.timelines.push({ tl: SwTimeline.create(arena, 'model'), counter: 0, open: true });
        fc.modelRun(() => ({ model: w, real: w }), cmds);
        for (const m of live(w)) expectStatus(m, m.f.status());
        // Tear-down: signal every plain fence, close the timeline, put every reference.
        // Plain fences the model let go of may still live in a container (and an armed container
        // callback holds the container): signal them through the view while it is still valid.
        for (const m of w.fences) {
          if (m.kind !== 'plain') continue;
          try {
            m.f.signal();
          } catch (e) {
            expect((e as FenceError).code).toBe('EBADF'); // released already
          }
        }
        for (const t of w.timelines) t.tl.close();
        for (const m of w.fences) for (; m.refs > 0; m.refs--) m.f.put();
        for (const cb of w.cbs) expect(cb.runs).toBe(cb.handle === null || cb.removed ? 0 : 1);
        const report = arena.check();
        expect(report.problems).toEqual([]);
        expect(report.leakedBytes).toBe(0);
        arena.detach();
      }),
      { numRuns: Number(process.env.MODEL_RUNS ?? 150), seed: process.env.MODEL_SEED ? Number(process.env.MODEL_SEED) : undefined },
    );
    console.log(`model steps run: ${JSON.stringify(ran)}`);
    for (const name of ['Create', 'Get', 'Put', 'Signal', 'AddCallback', 'RemoveCallback', 'Status', 'MakeArray', 'MakeChain', 'TimelinePoint', 'TimelineInc'])
      expect(ran[name] ?? 0, name).toBeGreaterThan(0);
  });
});

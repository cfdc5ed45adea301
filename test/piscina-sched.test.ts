/**
 * The pool scheduler: tasks start only once their dependency fences have signaled, so graphs of any
 * shape complete on pools of any size; results are handed on; errors reach every descendant;
 * aborts cancel what has not started; nothing leaks. Real piscina pools (test/fixtures/piscina-graph.ts,
 * compiled), every wait bounded so that a bug fails instead of hanging.
 */
import { Piscina } from 'piscina';
import seedrandom from 'seedrandom';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Arena, Errno, Fence, FenceError, createFencePool, runGraph, runWithFence, taskResult, type FencePool, type GraphNode,
} from '../src/index.js';
import { expectClean, fixture, rejects } from './support/core.js';

import { RUNS } from './fixtures/piscina-graph-cells.js';
const WAIT_MS = 60_000;

interface Tally {
  buf: SharedArrayBuffer;
  t: Int32Array;
  n: number;
  runs(i: number): number;
  start(i: number): number;
  end(i: number): number;
}
function tally(n: number): Tally {
  const buf = new SharedArrayBuffer(4 * (RUNS + 3 * n));
  const t = new Int32Array(buf);
  return {
    buf, t, n,
    runs: (i) => Atomics.load(t, RUNS + i),
    start: (i) => Atomics.load(t, RUNS + n + i),
    end: (i) => Atomics.load(t, RUNS + 2 * n + i),
  };
}

const pools: FencePool[] = [];
function pool(arena: Arena, tl: Tally, threads = 2, extra: { lingerUs?: number; concurrentTasksPerWorker?: number } = {}): FencePool {
  const p = createFencePool(arena, {
    filename: fixture('piscina-graph').href, minThreads: threads, maxThreads: threads, workerData: { tally: tl.buf }, ...extra,
  });
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
});

async function waitAll(fences: Fence[]): Promise<void> {
  for (let i = fences.length - 1; i >= 0; i--) expect(await fences[i].waitAsync(WAIT_MS), `fence ${i} signaled in time`).toBe(true);
}

/** Destroys the pool (workers reaped) and checks that the arena holds nothing. */
async function finish(p: FencePool, arena: Arena): Promise<void> {
  await p.destroy();
  expectClean(arena);
}

describe('scheduler: dependencies', () => {
  it('a diamond runs each stage once, after its inputs, with their results handed on', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(4);
    const p = pool(arena, tl);
    const node = (i: number, deps: string[] = []): GraphNode => ({ payload: { i, n: 4, spinUs: 2000 }, deps });
    const g = runGraph(p, arena, { a: node(0), b: node(1, ['a']), c: node(2, ['a']), d: node(3, ['b', 'c']) });
    expect(g.order[0]).toBe('a');
    expect(g.order[3]).toBe('d');
    const out = await g.done;
    expect(out.ok).toBe(true);
    expect(out.status).toEqual({ a: 1, b: 1, c: 1, d: 1 });
    // d = 3 + b + c = 3 + (1 + 0) + (2 + 0)
    expect(out.results).toEqual({ a: 0, b: 1, c: 2, d: 6 });
    for (let i = 0; i < 4; i++) expect(tl.runs(i)).toBe(1);
    expect(tl.start(1)).toBeGreaterThan(tl.end(0));
    expect(tl.start(2)).toBeGreaterThan(tl.end(0));
    expect(tl.start(3)).toBeGreaterThan(Math.max(tl.end(1), tl.end(2)));
    await finish(p, arena);
  });

  it('a 1,000-task chain completes on a 2-thread pool, in order, each task once', async () => {
    const N = 1000;
    const arena = Arena.create({ bytes: 4 << 20 });
    const tl = tally(N);
    const p = pool(arena, tl);
    const fences: Fence[] = [];
    for (let i = 0; i < N; i++) fences.push(runWithFence(p, arena, { i, n: N }, { deps: i ? [fences[i - 1]] : [] }));
    await waitAll(fences);
    for (let i = 0; i < N; i++) {
      expect(tl.runs(i)).toBe(1);
      if (i) expect(tl.start(i)).toBeGreaterThan(tl.end(i - 1));
    }
    // Each task returns i + its input: the last carries the sum of all indices.
    expect(taskResult(fences[N - 1])).toBe((N * (N - 1)) / 2);
    for (const f of fences) f.put();
    await finish(p, arena);
  });

  it('a chain longer than the pool completes on one thread with one task per worker (no worker waits)', async () => {
    const N = 50;
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(N);
    const p = pool(arena, tl, 1, { lingerUs: 0 });
    const fences: Fence[] = [];
    for (let i = 0; i < N; i++) fences.push(runWithFence(p, arena, { i, n: N }, { deps: i ? [fences[i - 1]] : [] }));
    await waitAll(fences);
    for (let i = 0; i < N; i++) expect(tl.runs(i)).toBe(1);
    for (const f of fences) f.put();
    await finish(p, arena);
  });

  it('a 1,000-node random DAG (seeded) runs every node exactly once, after all its inputs', async () => {
    const N = 1000;
    const rng = seedrandom('fencelab-dag-1');
    const arena = Arena.create({ bytes: 8 << 20 });
    const tl = tally(N);
    const p = pool(arena, tl);
    const deps: number[][] = [];
    const spec: Record<string, GraphNode> = {};
    // Declared in a shuffled order so that runGraph has to sort them.
    const names = Array.from({ length: N }, (_, i) => `n${i}`);
    const expected: number[] = [];
    for (let i = 0; i < N; i++) {
      const k = i === 0 ? 0 : Math.floor(rng() * 4);
      const d = new Set<number>();
      for (let j = 0; j < k; j++) d.add(Math.floor(rng() * i));
      deps.push([...d]);
      expected.push(i + deps[i].reduce((s, x) => s + expected[x], 0));
    }
    const shuffled = [...names.keys()].sort(() => rng() - 0.5);
    for (const i of shuffled) spec[names[i]] = { payload: { i, n: N }, deps: deps[i].map((x) => names[x]) };
    const g = runGraph(p, arena, spec);
    const out = await g.done;
    expect(out.ok).toBe(true);
    for (let i = 0; i < N; i++) {
      expect(tl.runs(i), `node ${i} runs`).toBe(1);
      for (const x of deps[i]) expect(tl.start(i), `node ${i} starts after input ${x} ended`).toBeGreaterThan(tl.end(x));
      expect(out.results[names[i]]).toBe(expected[i]);
    }
    await finish(p, arena);
  });

  it('an error in a node reaches every descendant as that error; the others run', async () => {
    // 0 → 1 (fails) → 2 → 4; 1 → 3; 0 → 5 → 6 (not a descendant of 1); 6 + 2 → 7
    const N = 8;
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(N);
    const p = pool(arena, tl);
    const edges: Record<number, number[]> = { 0: [], 1: [0], 2: [1], 3: [1], 4: [2], 5: [0], 6: [5], 7: [6, 2] };
    const spec: Record<string, GraphNode> = {};
    for (let i = 0; i < N; i++) spec[`n${i}`] = { payload: { i, n: N, fail: i === 1 }, deps: edges[i].map((x) => `n${x}`) };
    const out = await runGraph(p, arena, spec).done;
    expect(out.ok).toBe(false);
    expect(out.status.n1).toBe(Errno.EIO);
    expect((out.errors.n1 as Error).message).toBe('node 1 failed on purpose'); // what the task threw
    for (const i of [2, 3, 4, 7]) {
      expect(out.status[`n${i}`], `descendant ${i}`).toBe(Errno.EIO);
      expect(out.errors[`n${i}`]).toBeInstanceOf(FenceError);
      expect((out.errors[`n${i}`] as FenceError).code).toBe('EIO');
      expect(tl.runs(i), `descendant ${i} never ran`).toBe(0);
    }
    for (const i of [0, 5, 6]) expect(out.status[`n${i}`]).toBe(1);
    await finish(p, arena);
  });

  it('a dependency on a plain fence gates the task until it signals; its error propagates', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(2);
    const p = pool(arena, tl);
    const ctx = Fence.contextAlloc(arena);
    const gate = Fence.create(arena, { context: ctx, seqno: 1 });
    const bad = Fence.create(arena, { context: ctx, seqno: 2 });
    const a = runWithFence(p, arena, { i: 0, n: 2 }, { deps: [gate] });
    const b = runWithFence(p, arena, { i: 1, n: 2 }, { deps: [bad, gate] });
    expect(await a.waitAsync(100)).toBe(false); // nothing runs while the gate is closed
    expect(tl.runs(0)).toBe(0);
    bad.setError(Errno.ETIMEDOUT);
    bad.signal();
    // The first failed input ends the task at once, without waiting for the gate.
    expect(await b.waitAsync(WAIT_MS)).toBe(true);
    expect(b.status()).toBe(Errno.ETIMEDOUT);
    gate.signal();
    expect(await a.waitAsync(WAIT_MS)).toBe(true);
    expect(a.status()).toBe(1);
    expect(tl.runs(0)).toBe(1);
    expect(tl.runs(1)).toBe(0);
    for (const f of [a, b, gate, bad]) f.put();
    await finish(p, arena);
  });
});

describe('scheduler: cancellation', () => {
  it('abort before start: -ECANCELED at once, the task never runs, and neither do its dependents', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(4);
    const p = pool(arena, tl);
    const gate = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const ac = new AbortController();
    const a = runWithFence(p, arena, { i: 0, n: 4 }, { deps: [gate], signal: ac.signal });
    const child = runWithFence(p, arena, { i: 1, n: 4 }, { deps: [a] });
    ac.abort();
    expect(a.testSignaledFlag()).toBe(true);
    expect(a.status()).toBe(Errno.ECANCELED);
    expect(await child.waitAsync(WAIT_MS)).toBe(true);
    expect(child.status()).toBe(Errno.ECANCELED);
    expect(() => taskResult(a)).toThrow(FenceError);
    // Already aborted at submission: never queued.
    const pre = runWithFence(p, arena, { i: 2, n: 4 }, { signal: AbortSignal.abort() });
    expect(pre.status()).toBe(Errno.ECANCELED);
    // Open the gate and let the pool run something after it: the cancelled tasks still do not run.
    gate.signal();
    const later = runWithFence(p, arena, { i: 3, n: 4 }, { deps: [gate] });
    expect(await later.waitAsync(WAIT_MS)).toBe(true);
    expect(tl.runs(3)).toBe(1);
    for (const i of [0, 1, 2]) expect(tl.runs(i)).toBe(0);
    for (const f of [a, child, pre, later, gate]) f.put();
    await finish(p, arena);
  });

  it('abort while queued behind a busy pool: never runs', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(3);
    const p = pool(arena, tl, 1, { lingerUs: 0 });
    const busy = runWithFence(p, arena, { i: 0, n: 3, spinUs: 50_000 });
    const ac = new AbortController();
    const queued = runWithFence(p, arena, { i: 1, n: 3 }, { signal: ac.signal });
    ac.abort();
    expect(queued.status()).toBe(Errno.ECANCELED);
    const after = runWithFence(p, arena, { i: 2, n: 3 });
    expect(await after.waitAsync(WAIT_MS)).toBe(true);
    expect(await busy.waitAsync(WAIT_MS)).toBe(true);
    expect(tl.runs(1)).toBe(0);
    expect(tl.runs(2)).toBe(1);
    for (const f of [busy, queued, after]) f.put();
    await finish(p, arena);
  });

  it('a running task sees the abort in its context (ctx.aborted from shared memory, ctx.signal)', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(1);
    const p = pool(arena, tl);
    const ac = new AbortController();
    const f = runWithFence(p, arena, { i: 0, n: 1, maxMs: WAIT_MS }, { name: 'untilAborted', signal: ac.signal });
    const deadline = Date.now() + WAIT_MS;
    while (tl.runs(0) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(tl.runs(0)).toBe(1);
    ac.abort();
    expect(await f.waitAsync(WAIT_MS)).toBe(true);
    expect(f.status()).toBe(1); // it ran to its end: aborting a running task is a request
    expect(taskResult(f)).toEqual({ aborted: true, signalAborted: true });
    f.put();
    await finish(p, arena);
  });

  it('destroying the pool cancels what has not started and ends a running task with -ENODEV', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(3);
    const p = pool(arena, tl, 1, { lingerUs: 0 });
    const gate = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const running = runWithFence(p, arena, { i: 0, n: 3, maxMs: WAIT_MS }, { name: 'untilAborted' });
    const queued = runWithFence(p, arena, { i: 1, n: 3 });
    const waiting = runWithFence(p, arena, { i: 2, n: 3 }, { deps: [gate] });
    const deadline = Date.now() + WAIT_MS;
    while (tl.runs(0) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(tl.runs(0)).toBe(1); // destroyed while task 0 runs (and holds the only thread): the rest is queued
    await p.destroy({ graceMs: 0 });
    expect(queued.status()).toBe(Errno.ECANCELED);
    expect(await running.waitAsync(WAIT_MS)).toBe(true); // the reaper ends it once the worker exit is seen
    expect(running.status()).toBe(Errno.ENODEV);
    gate.signal(); // becomes ready after the pool is gone: cancelled, not run
    expect(waiting.status()).toBe(Errno.ECANCELED);
    expect(tl.runs(1) + tl.runs(2)).toBe(0);
    for (const f of [running, queued, waiting, gate]) f.put();
    expectClean(arena);
  });
});

describe('scheduler: API', () => {
  it('results, thrown errors, named tasks, inputs by name and the done callback', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(2);
    const p = pool(arena, tl);
    const a = runWithFence(p, arena, { i: 0, n: 2 });
    const m = runWithFence(p, arena, new Map([['k', new Date(5)]]), { name: 'echoInputs', deps: [a], inputNames: ['first'] });
    const bad = runWithFence(p, arena, { i: 1, n: 2, fail: true });
    const seen = await new Promise<[unknown, unknown]>((resolve, reject) => {
      const f = runWithFence(p, arena, { i: 1, n: 2 }, { deps: [m], done: (err, r) => resolve([err, r]) });
      f.put();
      setTimeout(() => reject(new Error('done was not called in time')), WAIT_MS);
    });
    expect(seen).toEqual([null, 1]);
    await waitAll([a, m, bad]);
    expect(taskResult(a)).toBe(0);
    const echoed = taskResult(m) as { payload: Map<string, Date>; inputs: Record<string, unknown> };
    expect(echoed.payload.get('k')).toEqual(new Date(5)); // structured clone where JSON would not do
    expect(echoed.inputs).toEqual({ first: 0 });
    expect(bad.status()).toBe(Errno.EIO);
    expect(() => taskResult(bad)).toThrow('node 1 failed on purpose');
    for (const f of [a, m, bad]) f.put();
    await finish(p, arena);
  });

  it('a pool whose workers cannot start a pull loop fails its queued tasks with -EIO instead of retrying forever', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(1);
    // piscina is told to call an export the module does not have: every kick is rejected.
    const p = createFencePool(arena, { filename: fixture('piscina-graph').href, minThreads: 1, maxThreads: 1, name: 'noSuchExport', workerData: { tally: tl.buf } });
    pools.push(p);
    const f = runWithFence(p, arena, { i: 0, n: 1 });
    expect(await f.waitAsync(WAIT_MS)).toBe(true);
    expect(f.status()).toBe(Errno.EIO);
    expect(p.counters.kickErrors).toBeGreaterThanOrEqual(3);
    expect(tl.runs(0)).toBe(0);
    f.put();
    await finish(p, arena);
  });

  it('a task that throws what cannot travel, with no message to read, ends -EIO; its loop goes on', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(2);
    // One loop: a job left RUNNING by the throw (encoding what the task threw threw in the loop's
    // catch) held the loop counted busy, so no other job of the pool started either.
    const p = pool(arena, tl, 1);
    for (const kind of ['null-prototype', 'revoked']) {
      const bad = runWithFence(p, arena, kind, { name: 'throwsUntravelable' });
      const after = runWithFence(p, arena, { i: 0, n: 2 }, { deps: [bad] });
      const other = runWithFence(p, arena, { i: 1, n: 2 });
      for (const f of [bad, after, other]) expect(await f.waitAsync(10_000), `${kind}: every fence signaled in time`).toBe(true);
      expect(bad.status()).toBe(Errno.EIO);
      expect(() => taskResult(bad)).toThrow(kind === 'revoked' ? 'the task threw a revoked proxy' : 'the task threw an object');
      expect(after.status()).toBe(Errno.EIO); // inherited, never ran
      expect(other.status()).toBe(1);
      for (const f of [bad, after, other]) f.put();
    }
    expect(tl.runs(0)).toBe(0);
    expect(tl.runs(1)).toBe(2);
    expect(p.counters.kickErrors).toBe(0);
    await finish(p, arena);
  });

  it('a graph refused for a payload submits nothing, though a pull loop is looking for work', async () => {
    const N = 300;
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(N + 1);
    // Loops that spin between jobs take a job the moment it is queued: stages submitted before the
    // one that cannot travel ran (all 300 on one thread) before the refusal could cancel them.
    const p = pool(arena, tl, 1, { lingerUs: 1_000_000 });
    const warm = runWithFence(p, arena, { i: N, n: N + 1 });
    expect(await warm.waitAsync(WAIT_MS)).toBe(true);
    warm.put();
    const spec: Record<string, GraphNode> = {};
    for (let i = 0; i < N; i++) spec[`s${i}`] = { payload: { i, n: N + 1 } };
    spec.last = { payload: () => 1 };
    rejects(arena, () => runGraph(p, arena, spec), 'EINVAL');
    await new Promise((r) => setTimeout(r, 50));
    let ran = 0;
    for (let i = 0; i < N; i++) ran += tl.runs(i);
    expect(ran).toBe(0);
    expect(p.stats().queued).toBe(0);
    await finish(p, arena);
  });

  it('a task module that kills its workers as it loads fails queued tasks with -EIO, later ones too, and stops restarting workers', async () => {
    for (const mode of ['throw', 'exit']) {
      const arena = Arena.create({ bytes: 1 << 20 });
      // Piscina never handed these workers a kick, so no kick failed: the pool resent one for each
      // removal, starting the next doomed worker for ever (≈10 a second), and a throw there was
      // piscina's 'error' event, which ended the test process.
      const p = createFencePool(arena, { filename: fixture('piscina-broken').href, maxThreads: 2, workerData: { mode } });
      pools.push(p);
      let created = 0;
      p.piscina.on('workerCreate', () => created++);
      const a = runWithFence(p, arena, 1);
      const b = runWithFence(p, arena, 2, { deps: [a] });
      expect(await b.waitAsync(20_000), `${mode}: the tasks ended in time`).toBe(true);
      expect([a.status(), b.status()]).toEqual([Errno.EIO, Errno.EIO]);
      const later = runWithFence(p, arena, 3);
      expect(await later.waitAsync(20_000), `${mode}: a later task ended in time`).toBe(true);
      expect(later.status()).toBe(Errno.EIO);
      const seen = created;
      await new Promise((r) => setTimeout(r, 300));
      expect(created, `${mode}: no worker started once the pool gave up`).toBe(seen);
      for (const f of [a, b, later]) f.put();
      await finish(p, arena);
    }
  });

  it('refuses what it cannot run, leaving nothing behind', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(1);
    const p = pool(arena, tl);
    rejects(arena, () => runWithFence(p, arena, { buf: new SharedArrayBuffer(8) }), 'EINVAL');
    rejects(arena, () => runWithFence(p, arena, () => 1), 'EINVAL');
    rejects(arena, () => runGraph(p, arena, { a: { deps: ['b'] }, b: { deps: ['a'] } }), 'EINVAL');
    rejects(arena, () => runGraph(p, arena, { a: { deps: ['nope'] } }), 'EINVAL');
    // A graph whose third stage cannot be encoded: refused before any stage is submitted.
    rejects(arena, () => runGraph(p, arena, { a: { payload: { i: 0, n: 1 } }, b: { deps: ['a'] }, c: { deps: ['b'], payload: () => 1 } }), 'EINVAL');
    const other = Arena.create({ bytes: 1 << 20 });
    const foreign = Fence.create(other, { context: Fence.contextAlloc(other), seqno: 1 });
    rejects(arena, () => runWithFence(p, arena, {}, { deps: [foreign] }), 'EINVAL');
    foreign.put();
    rejects(arena, () => createFencePool(arena, { filename: fixture('piscina-graph').href, atomics: 'sync' as 'async' }), 'EINVAL');
    rejects(arena, () => createFencePool(arena, { filename: fixture('piscina-graph').href, execArgv: '--no-warnings' as unknown as string[] }), 'EINVAL');
    const raw = new Piscina({ filename: fixture('piscina-graph').href, atomics: 'sync', maxThreads: 1, minThreads: 0 });
    try {
      rejects(arena, () => runWithFence(raw as unknown as FencePool, arena, {}), 'EINVAL');
    } finally {
      await raw.destroy();
    }
    expect(tl.runs(0)).toBe(0);
    await finish(p, arena);
    rejects(arena, () => runWithFence(p, arena, {}), 'EINVAL'); // destroyed
  });
});

describe('loading the task module', () => {
  // piscina loads its `filename` with require(), which for an ES module (Node 20.19+: require(esm))
  // instantiates the graph synchronously; a worker terminated inside that aborts the whole process
  // on Node 20 (V8 fatal error in v8::Module::IsGraphAsync). A fence pool's workers run with
  // require(esm) off: piscina's require() fails at once and piscina import()s the module.
  it("a fence pool's workers import() the module; a plain piscina pool require()s it", async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(1);
    const p = pool(arena, tl, 1);
    const f = runWithFence(p, arena, undefined, { name: 'loadedBy' });
    expect(await f.waitAsync(WAIT_MS)).toBe(true);
    expect(taskResult(f)).toBe('import');
    // The default export and a named one on the same worker: one module, loaded once.
    const g = runWithFence(p, arena, { i: 0, n: 1 });
    expect(await g.waitAsync(WAIT_MS)).toBe(true);
    expect(taskResult(g)).toBe(0);
    // piscina's own named runs on the pool underneath still find the module's exports.
    expect(await p.piscina.run(null, { name: 'loadedByPlain' })).toBe('import');
    f.put();
    g.put();
    await finish(p, arena);
    // The caller's Node options are kept, require(esm) off added.
    const q = createFencePool(arena, { filename: fixture('piscina-graph').href, minThreads: 0, maxThreads: 1, execArgv: ['--no-warnings'] });
    pools.push(q);
    expect((q.piscina.options as unknown as { execArgv: string[] }).execArgv).toEqual(['--no-warnings', '--no-experimental-require-module']);
    await finish(q, arena);
    // The probe tells the two apart: piscina given the module itself require()s it.
    const raw = new Piscina({ filename: fixture('piscina-graph').href, name: 'loadedByPlain', maxThreads: 1, minThreads: 0, workerData: { tally: tl.buf } });
    try {
      expect(await raw.run(null)).toBe('require');
    } finally {
      await raw.destroy();
    }
  });

  it('pools destroyed while their workers start and load the module leave nothing', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const tl = tally(1);
    const rng = seedrandom('pload');
    for (let round = 0; round < 16; round++) {
      // No task: piscina loads the module as each worker starts, and the terminations aim at that
      // load (a worker starts in ~30 ms, the module graph loads in ~100 ms quiet, both many times
      // that under load), before, during and after it.
      const p = pool(arena, tl);
      await new Promise((r) => setTimeout(r, rng() * 300));
      await p.destroy({ graceMs: 0 });
      expectClean(arena);
    }
  });
});

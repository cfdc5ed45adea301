/**
 * A pool destroyed while its one running task has a graph of dependents waiting on it. When that
 * task ends — returned in its worker within the grace, or -ENODEV by the reaper of the worker that
 * destroy terminated — its signal runs the dependents' callbacks (CB_JOB_DEP) in that same thread;
 * each finds the scheduler destroyed and cancels the queue there (src/runtime/jobs.ts makeReady →
 * drainQueue), and each cancellation signals, runs more dependents' callbacks, queues more jobs
 * into the same loop: a drain nested in a signal, itself signaling. An error end (-ENODEV) runs
 * those callbacks under the task's fence lock (finish.ts signalErrorAt).
 *
 * Two bugs this found, both fixed: (1) a job cancelled there removed its callback from the
 * dependency being signaled, whose lock the thread held — EDEADLK thrown out of the reaper, the
 * dependents never signaled and destroy never returned (every graceMs 0 run); (2) the drain flag
 * was one per thread, so a dependent in a second destroyed pool, made ready by a cancellation of
 * the first pool's drain, was linked into its own pool's queue and never drained: its fence never
 * signaled.
 *
 * Checked with graceMs 0 (the task always ends -ENODEV, drained in the main thread's reaper), the
 * default grace (the task is released as destroy starts: returned, or -ENODEV under load) and a long
 * grace (always returned: the drain runs in the pool worker). Every fence signals exactly once
 * (its done callback runs once), the dependents end -ECANCELED without running, nothing leaks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Errno, Fence, runWithFence, taskResult, type FencePool } from '../src/index.js';
import { RUNS } from './fixtures/piscina-graph-cells.js';
import { expectClean, until } from './support/core.js';
import { graphPool, graphTally } from './support/graphpool.js';

const WAIT_MS = 30_000;

const pools: FencePool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy({ graceMs: 0 })));
});

/** Node name → [pool ('p' or 'q'), dependencies]. `r` is the held root; `x` sits in the other pool. */
const GRAPH: Record<string, [string, string[]]> = {
  r: ['p', []],
  b1: ['p', ['r']],
  b2: ['p', ['r']],
  c: ['p', ['b1', 'b2', 'r']], // r's callback list still holds c's node while c is cancelled
  d1: ['p', ['c']],
  d2: ['p', ['c']],
  d3: ['p', ['c']],
  e: ['p', ['d1', 'd2', 'd3', 'b1']],
  x: ['q', ['c']], // a dependent in a second pool, destroyed first
  y: ['p', ['x', 'd1']], // and back
};
const NAMES = Object.keys(GRAPH);

type Mode = { graceMs: 0 } | { graceMs: undefined } | { graceMs: 20_000 };

async function destroyWhileRunning(mode: Mode): Promise<{ rootStatus: number }> {
  const arena = Arena.create({ bytes: 2 << 20 });
  const n = NAMES.length;
  const { tallyBuf, tally } = graphTally(n);
  const make = (): FencePool => graphPool(arena, tallyBuf, pools);
  const p = make();
  const q = make();
  const done: Record<string, number> = Object.fromEntries(NAMES.map((k) => [k, 0]));
  const fences: Record<string, Fence> = {};
  const hold = new AbortController();
  NAMES.forEach((name, i) => {
    const [pool, deps] = GRAPH[name];
    const root = name === 'r';
    fences[name] = runWithFence(pool === 'p' ? p : q, arena, { i, n, maxMs: WAIT_MS }, {
      deps: deps.map((d) => fences[d]),
      name: root ? 'untilAborted' : undefined,
      signal: root ? hold.signal : undefined,
      done: () => void done[name]++,
    });
  });
  // q has nothing ready: its destroy leaves x waiting (cancelled when it becomes ready).
  await q.destroy();
  expect(await until(() => Atomics.load(tally, RUNS) === 1, WAIT_MS), 'the root task started').toBe(true);
  const destroyed = p.destroy(mode.graceMs === undefined ? {} : { graceMs: mode.graceMs });
  if (mode.graceMs !== 0) hold.abort(); // the root returns as soon as its worker sees it
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([destroyed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('destroy did not return')), WAIT_MS)))]);
  clearTimeout(timer);
  pools.splice(0);
  const ended = await until(() => NAMES.every((k) => done[k] === 1), WAIT_MS);
  expect(ended, `every fence signaled, its done callback ran (${JSON.stringify(done)})`).toBe(true);
  const rootStatus = fences.r.status();
  if (rootStatus === 1) expect(taskResult(fences.r)).toEqual({ aborted: true, signalAborted: true });
  else expect(rootStatus, 'the root: returned, or its worker terminated').toBe(Errno.ENODEV);
  expect(Atomics.load(tally, RUNS), 'the root ran once').toBe(1);
  for (const [i, name] of NAMES.entries()) {
    if (name === 'r') continue;
    expect(fences[name].status(), `${name} cancelled`).toBe(Errno.ECANCELED);
    expect(Atomics.load(tally, RUNS + i), `${name} never ran`).toBe(0);
  }
  // One more turn: no done callback runs twice.
  await new Promise((r) => setTimeout(r, 5));
  expect(Object.values(done)).toEqual(NAMES.map(() => 1));
  for (const f of Object.values(fences)) f.put();
  expectClean(arena);
  return { rootStatus };
}

describe('a pool destroyed while a task with waiting dependents runs', () => {
  it('graceMs 0: the task ends -ENODEV, the reaper cancels the whole graph (both pools), nothing leaks', async () => {
    expect((await destroyWhileRunning({ graceMs: 0 })).rootStatus).toBe(Errno.ENODEV);
  });

  it('default grace, task released as destroy starts: it returns or ends -ENODEV, the graph is cancelled, nothing leaks', async () => {
    const { rootStatus } = await destroyWhileRunning({ graceMs: undefined });
    expect([1, Errno.ENODEV]).toContain(rootStatus);
  });

  it('a grace long enough: the task returns and its worker cancels the graph (nested drains), nothing leaks', async () => {
    expect((await destroyWhileRunning({ graceMs: 20_000 })).rootStatus).toBe(1);
  });
});

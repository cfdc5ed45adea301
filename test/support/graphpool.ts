/**
 * One-worker fence pools running test/fixtures/piscina-graph.ts, the tasks the scheduler tests
 * submit, and the tally they write (test/fixtures/piscina-graph-cells.ts: RUNS + i counts node i's
 * runs, then its start and end times).
 */
import { type Arena, createFencePool, type FencePool } from '../../src/index.js';
import { RUNS } from '../fixtures/piscina-graph-cells.js';
import { fixture } from './core.js';

/** A zeroed tally for `n` graph nodes: its buffer (for the pool's workerData) and a view of it. */
export function graphTally(n: number): { tallyBuf: SharedArrayBuffer; tally: Int32Array } {
  const tallyBuf = new SharedArrayBuffer(4 * (RUNS + 3 * n));
  return { tallyBuf, tally: new Int32Array(tallyBuf) };
}

/** A fence pool of one worker running the graph tasks, writing `tallyBuf`; pushed onto `pools` (the test's cleanup list). */
export function graphPool(arena: Arena, tallyBuf: SharedArrayBuffer, pools: FencePool[]): FencePool {
  const pool = createFencePool(arena, { filename: fixture('piscina-graph').href, minThreads: 1, maxThreads: 1, workerData: { tally: tallyBuf } });
  pools.push(pool);
  return pool;
}

/**
 * piscina task module for the scheduler suite (test/piscina-sched.test.ts). workerData: { tally }
 * — an Int32Array over a SharedArrayBuffer: word SEQ hands out logical times; for node i,
 * RUNS + i counts its runs, START + i and END + i hold the times it started and ended.
 *
 * default — payload { i, n, fail?, spinUs? }: records, returns i + the sum of its inputs (so a
 *   result proves its inputs were handed on); throws when `fail`.
 * untilAborted — payload { i, n, maxMs }: records its start, then spins until ctx.aborted (via
 *   shared memory) and ctx.signal (the worker-side AbortSignal) both say so; returns what it saw.
 * echoInputs — returns its payload and ctx.inputs as received.
 */
import { workerData } from 'node:worker_threads';
import { fenceTask } from '../src/index.js';

export const SEQ = 0;
export const RUNS = 1;

const tally = new Int32Array((workerData as { tally: SharedArrayBuffer }).tally);

function record(i: number, n: number, where: 'start' | 'end'): void {
  const t = Atomics.add(tally, SEQ, 1) + 1;
  if (where === 'start') {
    Atomics.add(tally, RUNS + i, 1);
    Atomics.store(tally, RUNS + n + i, t);
  } else {
    Atomics.store(tally, RUNS + 2 * n + i, t);
  }
}

interface Node {
  i: number;
  n: number;
  fail?: boolean;
  spinUs?: number;
  maxMs?: number;
}

export default fenceTask((p, ctx) => {
  const node = p as Node;
  record(node.i, node.n, 'start');
  const end = performance.now() + (node.spinUs ?? 0) / 1000;
  while (performance.now() < end);
  let sum = node.i;
  for (const v of Object.values(ctx.inputs)) sum += typeof v === 'number' ? v : 0;
  record(node.i, node.n, 'end');
  if (node.fail) throw new Error(`node ${node.i} failed on purpose`);
  return sum;
});

export const untilAborted = fenceTask(async (p, ctx) => {
  const node = p as Node;
  record(node.i, node.n, 'start');
  const signal = ctx.signal;
  const deadline = performance.now() + (node.maxMs ?? 5000);
  while (!(ctx.aborted && signal.aborted) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  record(node.i, node.n, 'end');
  return { aborted: ctx.aborted, signalAborted: signal.aborted };
});

export const echoInputs = fenceTask((p, ctx) => ({ payload: p, inputs: ctx.inputs }));

/**
 * Lock contention across real workers: each lock algorithm with 1, 2 and 4 threads on this
 * 2-core machine (4 = twice as many threads as cores), against a bare test-and-set measured in the
 * same run with the same threads. Reports acquisitions per second, fairness (slowest thread /
 * fastest) and, per algorithm, what oversubscription does to it: the arena default (futex) must
 * not collapse when threads outnumber cores. Run: `node dist/bench/contention.bench.js [--ms 600]`
 * (plus the options every suite takes, bench/util.ts); --quick runs 100 ms per cell.
 */
import { Arena, LOCK_KINDS, SpinLock } from '../src/index.js';
import type { ContentionCell } from '../src/report/schema.js';
import { CTL_READY, CTL_START, CTL_STOP, CTL_WORDS } from './contention-protocol.js';
import { finishSuite, goal, positiveInt, runInfo, startWorker, suiteArgs } from './util.js';

const args = suiteArgs('contention', { ms: { type: 'string' } });
const MS = positiveInt(args, 'ms', args.quick ? 100 : 600);
const THREADS = [1, 2, 4];
const KINDS = ['raw', ...LOCK_KINDS] as const;
const WORKER = new URL('./contention-worker.js', import.meta.url);
/** The default lock must keep at least this share of its 2-thread throughput at 4 threads. */
const GOAL_FUTEX_KEEPS = 0.5;
/** Bound on the workers' start-up: a worker that never attaches fails the suite instead of hanging it. */
const READY_TIMEOUT_MS = 10_000;

async function run(arena: Arena, kind: (typeof KINDS)[number], threads: number): Promise<ContentionCell> {
  const ref = arena.alloc(64);
  const ctl = new SharedArrayBuffer(CTL_WORDS * 4);
  const raw = new SharedArrayBuffer(64);
  const c = new Int32Array(ctl);
  // startWorker listens for each worker's count and exit from its creation on: a worker posts its
  // count and exits as soon as CTL_STOP is set, possibly before this thread awaits either.
  const workers = Array.from({ length: threads }, () => startWorker<number>(WORKER, { buffer: arena.buffer, ref, kind, ctl, raw }));
  for (const w of workers) arena.watch(w.worker);
  const readyBy = Date.now() + READY_TIMEOUT_MS;
  while (Atomics.load(c, CTL_READY) < threads) {
    const failed = workers.find((w) => w.failure !== undefined);
    if (failed) throw new Error(`contention worker (${kind}, ${threads} threads) failed before starting: ${failed.failure!.message}`);
    if (Date.now() > readyBy) throw new Error(`contention workers (${kind}, ${threads} threads) did not start within ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const t0 = performance.now();
  Atomics.store(c, CTL_START, 1);
  Atomics.notify(c, CTL_START);
  await new Promise((r) => setTimeout(r, MS));
  Atomics.store(c, CTL_STOP, 1);
  const per = await Promise.all(workers.map((w) => w.first));
  const elapsed = performance.now() - t0;
  await Promise.all(workers.map((w) => w.exited));
  const total = per.reduce((a, b) => a + b, 0);
  // The worker's counter: the word right after the lock word (see contention-worker.ts).
  const counter = kind === 'raw' ? new Int32Array(raw)[1] : arena.i32[SpinLock.at(arena, ref, 0).index + 1];
  arena.free(ref);
  return {
    kind,
    threads,
    mOpsPerSec: total / elapsed / 1000,
    // No acquisition at all (a lock that starved every worker for the whole cell) is no fairness, not 0/0.
    fairness: Math.max(...per) > 0 ? Math.min(...per) / Math.max(...per) : 0,
    counterOk: counter === (total | 0),
  };
}

async function main(): Promise<void> {
  const arena = Arena.create({ bytes: 4 << 20 });
  const results: ContentionCell[] = [];
  for (const threads of THREADS) for (const kind of KINDS) results.push(await run(arena, kind, threads));
  const get = (k: string, t: number) => results.find((r) => r.kind === k && r.threads === t)!;
  for (const cell of results)
    if (cell.kind !== 'raw') {
      cell.baseline = 'raw';
      cell.ratio = cell.mOpsPerSec / get('raw', cell.threads).mOpsPerSec;
    }
  const check = arena.check();
  if (!check.ok || check.leakedBytes !== 0) throw new Error(`contention bench: arena check failed: ${check.problems.join('; ')}; leaked ${check.leakedBytes} bytes`);
  const futex = goal('futex throughput, 4 threads / 2 threads (no collapse)', get('futex', 4).mOpsPerSec / get('futex', 2).mOpsPerSec, '×', '≥', GOAL_FUTEX_KEEPS);
  finishSuite('contention', args, { ...runInfo(args), ms: MS, results, goals: [futex] });
  const lost = results.filter((r) => !r.counterOk);
  if (lost.length > 0) console.log(`\nLOST UPDATES under ${lost.map((r) => `${r.kind} with ${r.threads} workers`).join(', ')}: a counter increment made under the lock was lost`);
}

await main();

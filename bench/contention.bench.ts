/**
 * Lock contention across real workers: each lock algorithm with 1, 2 and 4 threads on this
 * 2-core machine (4 = twice as many threads as cores), against a bare test-and-set measured in the
 * same run with the same threads. Reports acquisitions per second, fairness (slowest thread /
 * fastest) and, per algorithm, what oversubscription does to it: the arena default (futex) must
 * not collapse when threads outnumber cores. Run: `node dist/bench/contention.bench.js [--ms 600]`.
 */
import { Worker } from 'node:worker_threads';
import { Arena, LOCK_KINDS, SpinLock } from '../src/index.js';
import type { ContentionCell } from '../src/cli/results.js';
import { CTL_READY, CTL_START, CTL_STOP, CTL_WORDS } from './contention-protocol.js';
import { goal, runInfo, writeResults } from './util.js';

const MS = Number(process.argv[process.argv.indexOf('--ms') + 1]) || 600;
const THREADS = [1, 2, 4];
const KINDS = ['raw', ...LOCK_KINDS] as const;
const WORKER = new URL('./contention-worker.js', import.meta.url);
/** The default lock must keep at least this share of its 2-thread throughput at 4 threads. */
const GOAL_FUTEX_KEEPS = 0.5;

async function run(arena: Arena, kind: (typeof KINDS)[number], threads: number): Promise<ContentionCell> {
  const ref = arena.alloc(64);
  const ctl = new SharedArrayBuffer(CTL_WORDS * 4);
  const raw = new SharedArrayBuffer(64);
  const c = new Int32Array(ctl);
  const workers = Array.from({ length: threads }, () => new Worker(WORKER, { workerData: { buffer: arena.buffer, ref, kind, ctl, raw } }));
  for (const w of workers) arena.watch(w);
  const counts = workers.map(
    (w) =>
      new Promise<number>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  const readyBy = Date.now() + 10_000;
  while (Atomics.load(c, CTL_READY) < threads) {
    if (Date.now() > readyBy) throw new Error('contention workers did not start');
    await new Promise((r) => setTimeout(r, 5));
  }
  const t0 = performance.now();
  Atomics.store(c, CTL_START, 1);
  Atomics.notify(c, CTL_START);
  await new Promise((r) => setTimeout(r, MS));
  Atomics.store(c, CTL_STOP, 1);
  const per = await Promise.all(counts);
  const elapsed = performance.now() - t0;
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
  const total = per.reduce((a, b) => a + b, 0);
  // The worker's counter: the word right after the lock word (see contention-worker.ts).
  const counter = kind === 'raw' ? new Int32Array(raw)[1] : arena.i32[SpinLock.at(arena, ref, 0).index + 1];
  arena.free(ref);
  return {
    kind,
    threads,
    mOpsPerSec: total / elapsed / 1000,
    fairness: Math.min(...per) / Math.max(...per),
    counterOk: counter === (total | 0),
  };
}

async function main(): Promise<void> {
  const arena = Arena.create({ bytes: 4 << 20 });
  const results: ContentionCell[] = [];
  for (const threads of THREADS) for (const kind of KINDS) results.push(await run(arena, kind, threads));
  const get = (k: string, t: number) => results.find((r) => r.kind === k && r.threads === t)!;
  const head = ['lock', ...THREADS.map((t) => `${t} thr M/s`), ...THREADS.map((t) => `${t} thr vs raw`), '4 thr / 2 thr', 'fairness @4', 'exact'];
  const rows = KINDS.map((k) => [
    k,
    ...THREADS.map((t) => get(k, t).mOpsPerSec.toFixed(3)),
    ...THREADS.map((t) => (k === 'raw' ? '—' : `${(get(k, t).mOpsPerSec / get('raw', t).mOpsPerSec).toFixed(2)}×`)),
    `${(get(k, 4).mOpsPerSec / get(k, 2).mOpsPerSec).toFixed(2)}×`,
    get(k, 4).fairness.toFixed(2),
    results.filter((r) => r.kind === k).every((r) => r.counterOk) ? 'yes' : 'NO',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  console.log(`\nlock contention across workers (${MS} ms per cell; 2 cores, so 4 threads oversubscribe 2×)`);
  console.log(fmt(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(fmt(r));
  const futex = goal('futex throughput, 4 threads / 2 threads (no collapse)', get('futex', 4).mOpsPerSec / get('futex', 2).mOpsPerSec, '×', '≥', GOAL_FUTEX_KEEPS);
  console.log(
    `\ndefault (futex) keeps ${(futex.measured * 100).toFixed(0)}% of its 2-thread throughput at 4 threads (goal: no collapse, ≥ ${GOAL_FUTEX_KEEPS * 100}%): ${futex.met ? 'met' : 'MISSED'}`,
  );
  console.log(`exact: every counter increment under the lock was kept (no lost update)`);
  console.log(`results: ${writeResults('contention', { ...runInfo(), ms: MS, results, goals: [futex] })}`);
  const report = arena.check();
  if (!report.ok || report.leakedBytes) console.log(`arena check: ${JSON.stringify(report.problems)} leaked ${report.leakedBytes}`);
}

await main();

/**
 * The fence pool's scheduler against piscina's own pool.run, on one pool, in one run, rounds
 * interleaved (A/B/C/D then D/C/B/A) so that machine noise hits every side alike:
 *
 * (a) A 1,000-task dependency chain. Fence path: every task submitted at once with runWithFence,
 *     each depending on the previous one's out-fence; the scheduler starts each when its dependency
 *     signals, in the worker that signaled (its pull loop takes the job it just released), so no
 *     link goes through the main thread. Baseline: the main thread awaits each pool.run and submits
 *     the next. Wall time from the first submission to the last completion, per task. Goal: the
 *     fence chain ≥ 1.5× faster.
 * (b) Per-task completion latency, one task at a time: submit → the main thread sees the task done,
 *     p50 and p99. Baseline: await pool.run's promise (a message back and a wake-up of the main
 *     thread's event loop). Fence paths, all waiting on the out-fence in shared memory:
 *     - `wait()`: the main thread spins on the fence's flags word (Fence.spinMicros, 30 µs), then
 *       sleeps in Atomics.wait (blocking its event loop: for a thread with nothing else to do);
 *     - `waitAsync()`: sleeps at once on the flags word, the event loop free;
 *     - spin, then `waitAsync()`.
 *     Goal: the best fence wait (`wait()`) ≥ 1.5× faster than pool.run at p50, back to back: the
 *     wait's p50 in a steady stream (below) against the better of pool.run's p50 in a steady stream
 *     and from idle, so that the warm-up cannot be what wins. The other schedules are reported
 *     with their ratios but hold no goal: their figures are the VM's, below.
 *     Three schedules: back to back (the next task is submitted as soon as the last one is seen
 *     done: a worker's pull loop is still lingering on the queue and takes it from shared memory),
 *     once after WARM_MS of the stream and once from its first task, and after an idle gap longer
 *     than the linger (the pool's defaults: lingerUs 50 µs, idleMs 250 ms). In that gap the pull
 *     loops are asleep on the scheduler's WORK word (Atomics.waitAsync in the workers): a
 *     submission wakes one with a futex notify, no piscina message. Only the first task of each
 *     round starts a loop with a message: settle() waits for the loops to end (idleMs), so every
 *     round starts from a pool left idle, as a user's would be.
 *
 * Where (b) can and cannot win: with the pool idle, handing a task to a sleeping worker is a
 * cross-thread wake-up (≈13 µs, ≈120 µs if the core idled) on both paths — piscina's message and the
 * scheduler's WORK notify alike — so that is the floor of both. The fence path saves only the way
 * back (a message and the main thread's wake-up); a main thread that sleeps on the fence pays a
 * wake-up there too, and only a spinning main thread (with a free core) or a pull loop still
 * spinning on the queue (back to back, within lingerUs) takes a wake-up out of the path. Without a
 * free core (a loaded machine) the woken worker runs on the submitting thread's core: the main
 * thread's notify returns only once the worker has run the task, lingered and parked, so a
 * loaded run measures the linger, not the paths (seen: wait() at 0.4–0.8× of pool.run). After
 * idle, both paths pay two wake-ups (the worker's, then the main thread's once the 30 µs spin has
 * run out), and the fence path saves only the message's handling: its p50 ratio followed the VM's
 * wake-up cost from run to run (fresh clones, full runs: 1.15×, 1.97×, 1.21×; the floor, min, 25
 * against 34 µs), so a goal on it would judge the machine, not the library.
 *
 * Back to back is measured as a stream in its steady state: each round runs the same side untimed
 * for WARM_MS first (every side alike), then times its tasks. From an idle pool, the first tens of
 * milliseconds of a stream belong to this VM's kernel, not to either path: it boots with
 * `sched_vcpu_pack=15` (see /proc/cmdline; not a mainline option), which packs threads with little
 * load onto one vCPU, and spreads them again once their load builds up. Sampled from
 * /proc/self/task/TID/stat while a stream ran: in every slow stretch (45–80 µs a task) the main
 * thread and the worker running the jobs had last run on the same vCPU, the other idle; in every
 * fast one (2–15 µs) on different vCPUs. Pinned apart with `taskset` the fence path never entered
 * the slow mode (4–18 µs per 50 tasks over 6 rounds, 3 µs once warm). On one vCPU each task pays a
 * sleep and a wake whatever the main thread does: spinning only lengthens its turn (150 µs of spin:
 * 200 µs a task), sleeping at once, even with the pull loop parking as soon as it has woken the
 * main thread, still reads 15–35 µs. The cold stream is reported too (`back to back, from idle`:
 * timed from the first task after the pool idled, as this bench measured back to back before), with
 * no goal: its p50 follows the share of packed tasks (the wait() speed-up over pool.run read 0.55×
 * to 9.70× in full runs before this split). pool.run has the transient too, the other way round:
 * packed, its message wakes a thread on the same vCPU (14–30 µs); spread, every wake crosses to a
 * vCPU that had gone idle (78–104 µs). Hence the goal's baseline is the better of the two.
 *
 * Run: `node dist/bench/piscina.bench.js [--rounds N] [--tasks N] [--linger µs]` plus the options
 * every suite takes (bench/util.ts); --quick: 2 rounds, 120 tasks per variant and schedule, one
 * timed pair of chains (the full run's median of 3) and 20 warm-up tasks per side (50).
 */
import { Arena, Fence, createFencePool, runWithFence, type FencePool } from '../src/index.js';
import type { LatencyStat, PiscinaVariant } from '../src/report/schema.js';
import { finishSuite, goal, positiveInt, row, runInfo, suiteArgs, type Goal, type Row } from './util.js';

const args = suiteArgs('piscina', { rounds: { type: 'string' }, tasks: { type: 'string' }, linger: { type: 'string' } });
const ROUNDS = positiveInt(args, 'rounds', args.quick ? 2 : 6);
const CHAIN = 1000;
/** Tasks per latency variant and schedule, over all rounds. */
const TASKS = positiveInt(args, 'tasks', args.quick ? 120 : 2400);
const GAP_US = 1000;
/** --linger: the pool's lingerUs (its default when absent). */
const LINGER = args.own.linger === undefined ? undefined : positiveInt(args, 'linger', 50);
const THREADS = 2;
/** Untimed stream before each steady back-to-back round, per side (ms): the VM's packing transient. */
const WARM_MS = 200;
const GOAL_SPEEDUP = 1.5;
const WAIT_MS = 30_000;
const SPIN_US = Fence.spinMicros;

const arena = Arena.create({ bytes: 16 << 20 });
const pool = createFencePool(arena, {
  filename: new URL('./piscina-worker.js', import.meta.url).href,
  minThreads: THREADS,
  maxThreads: THREADS,
  ...(LINGER === undefined ? {} : { lingerUs: LINGER }),
});

const nowNs = (): number => Number(process.hrtime.bigint());
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >>> 1];
function spinUs(us: number): void {
  const end = nowNs() + us * 1000;
  while (nowNs() < end);
}
function stat(xs: number[]): LatencyStat {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  const q = (p: number) => s[Math.max(0, Math.ceil(p * n) - 1)];
  return { n, p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / n, min: s[0], max: s[n - 1] };
}

/* ───────────── (a) chain ───────────── */

async function chainFence(p: FencePool): Promise<number> {
  const t0 = nowNs();
  const fences: Fence[] = [];
  for (let i = 0; i < CHAIN; i++) fences.push(runWithFence(p, arena, i, { deps: i ? [fences[i - 1]] : [] }));
  if (!(await fences[CHAIN - 1].waitAsync(WAIT_MS))) throw new Error('fence chain did not finish');
  const t1 = nowNs();
  if (fences[CHAIN - 1].status() !== 1) throw new Error('fence chain failed');
  for (const f of fences) f.put();
  return t1 - t0;
}

async function chainAwait(p: FencePool): Promise<number> {
  const t0 = nowNs();
  let v = 0;
  for (let i = 0; i < CHAIN; i++) v = (await p.piscina.run(v, { name: 'plain' })) as number;
  const t1 = nowNs();
  if (v !== CHAIN) throw new Error(`awaited chain computed ${v}`);
  return t1 - t0;
}

/* ───────────── (b) latency ───────────── */

const AWAIT = 'await pool.run';
const WAIT = 'out-fence wait() (spin, then Atomics.wait)';
const ASYNC = 'out-fence waitAsync()';
const SPIN_ASYNC = 'out-fence spin, then waitAsync()';
const SIDES = [AWAIT, WAIT, ASYNC, SPIN_ASYNC] as const;
type Side = (typeof SIDES)[number];

/** One task submitted and seen done by `side`. Returns ns. */
async function latency(p: FencePool, i: number, side: Side): Promise<number> {
  const t0 = nowNs();
  if (side === AWAIT) {
    await p.piscina.run(i, { name: 'plain' });
    return nowNs() - t0;
  }
  const f = runWithFence(p, arena, i);
  if (side === WAIT) {
    if (!f.wait(WAIT_MS)) throw new Error('fence task did not finish');
  } else {
    if (side === SPIN_ASYNC) {
      const end = t0 + SPIN_US * 1000;
      while (!f.testSignaledFlag() && nowNs() < end);
    }
    if (!f.testSignaledFlag() && !(await f.waitAsync(WAIT_MS))) throw new Error('fence task did not finish');
  }
  const t1 = nowNs();
  if (f.status() !== 1) throw new Error(`fence task failed (status ${f.status()})`);
  f.put();
  return t1 - t0;
}

/** Let the lingering pull loops leave and their kicks settle (the pool idle). */
async function settle(): Promise<void> {
  const end = Date.now() + 5000;
  while (pool.stats().pullers + pool.stats().kicksInFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
}

/**
 * `perRound` tasks per side and round, each round from an idle pool; `gapUs` of busy main thread
 * before each task; `warmMs` of the same side's stream, untimed, before the timed tasks.
 */
async function latencies(gapUs: number, warmMs = 0): Promise<Map<Side, number[]>> {
  const out = new Map<Side, number[]>(SIDES.map((s) => [s, []]));
  const perRound = Math.ceil(TASKS / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? SIDES : [...SIDES].reverse();
    for (const side of order) {
      await settle();
      for (const end = performance.now() + warmMs; performance.now() < end; ) {
        await new Promise((res) => setImmediate(res));
        await latency(pool, 0, side);
      }
      for (let i = 0; i < perRound; i++) {
        // One turn of the event loop between tasks (untimed, every side): piscina learns there
        // that the last pull loop or task ended, and a blocking wait() gave it none.
        await new Promise((res) => setImmediate(res));
        if (gapUs) spinUs(gapUs);
        out.get(side)!.push(await latency(pool, i, side));
      }
    }
  }
  return out;
}

function variants(schedule: string, samples: Map<Side, number[]>): PiscinaVariant[] {
  const base = stat(samples.get(AWAIT)!);
  return SIDES.map((side) => {
    const s = stat(samples.get(side)!);
    return side === AWAIT ? { name: side, schedule, latencyNs: s } : { name: side, schedule, latencyNs: s, baseline: AWAIT, ratioP50: s.p50 / base.p50, ratioP99: s.p99 / base.p99 };
  });
}

async function main(): Promise<void> {
  // Warm-up: workers started, modules loaded, every path compiled.
  await chainFence(pool);
  await chainAwait(pool);
  for (const side of SIDES) for (let i = 0; i < (args.quick ? 20 : 50); i++) await latency(pool, i, side);

  const fenceWall: number[] = [];
  const awaitWall: number[] = [];
  for (let r = 0; r < (args.quick ? 1 : Math.max(ROUNDS, 3)); r++) {
    await settle();
    if (r % 2 === 0) {
      fenceWall.push(await chainFence(pool));
      awaitWall.push(await chainAwait(pool));
    } else {
      awaitWall.push(await chainAwait(pool));
      fenceWall.push(await chainFence(pool));
    }
  }
  const b2b = variants('back to back', await latencies(0, WARM_MS));
  const cold = variants('back to back, from idle', await latencies(0));
  const idle = variants(`after ${GAP_US} µs idle`, await latencies(GAP_US));
  await settle();
  const counters = { kicks: pool.counters.kicks, ran: pool.counters.ran };
  await pool.destroy();
  const check = arena.check();
  if (!check.ok || check.leakedBytes !== 0) throw new Error(`piscina bench leaked: ${JSON.stringify(check.leaks.slice(0, 5))}`);

  const walls = new Map<string, number>([
    [`${CHAIN}-task chain, main awaits each pool.run (per task)`, median(awaitWall) / CHAIN],
    [`${CHAIN}-task chain, fence-driven (per task)`, median(fenceWall) / CHAIN],
  ]);
  const [awaitName, fenceName] = [...walls.keys()];
  const chain: Row[] = [row(walls, awaitName), row(walls, fenceName, awaitName, { max: 1 / GOAL_SPEEDUP })];
  const p50Of = (v: PiscinaVariant[], name: string) => v.find((x) => x.name === name)!.latencyNs.p50;
  const goals: Goal[] = [
    goal('chain: fence-driven speed-up over awaiting each pool.run (wall time)', walls.get(awaitName)! / walls.get(fenceName)!, '×', '≥', GOAL_SPEEDUP),
    // Against pool.run's better back-to-back p50, steady or cold: the warm-up must not be what wins.
    goal(`back to back, steady: ${WAIT} speed-up over ${AWAIT}'s better p50 (steady or from idle)`, Math.min(p50Of(b2b, AWAIT), p50Of(cold, AWAIT)) / p50Of(b2b, WAIT), '×', '≥', GOAL_SPEEDUP),
  ];
  finishSuite('piscina', args, {
    ...runInfo(args),
    threads: THREADS,
    chainLength: CHAIN,
    rounds: ROUNDS,
    tasks: TASKS,
    gapUs: GAP_US,
    warmMs: WARM_MS,
    spinMicros: SPIN_US,
    chain,
    variants: [...b2b, ...cold, ...idle],
    goals,
    counters,
  });
}

await main();

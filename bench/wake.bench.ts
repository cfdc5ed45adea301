/**
 * Signal→wake latency of fences across worker threads, each as a ratio to a raw-Atomics baseline
 * measured in the same run, under the same schedule, rounds interleaved A/B/B/A so machine noise
 * hits both sides equally:
 *
 * 1. Sleeping waiter: a worker blocked in `fence.wait()` with `Fence.spinMicros = 0` vs a worker
 *    blocked in `Atomics.wait` on a plain SharedArrayBuffer word. The main thread sees the waiter
 *    publish that it sleeps (the fence's WAITERS bit / the raw waiter's "armed" word), busy-waits
 *    the same pseudo-random 20–60 µs for both, then signals / notifies. Goal: fence ≤ 1.15× raw.
 * 2. Short operation, waiter spins first: `fence.wait()` with the default spin (30 µs), signaled
 *    ~5 µs after the waiter starts waiting. Goal: p50 ≤ 2 µs and ≥ 10× faster than a postMessage
 *    round trip (measured here against an echo worker). A raw Atomics.load spin is the floor.
 * 3. waitAsync on the main thread: `await fence.waitAsync()` vs `Atomics.waitAsync`, a worker
 *    signals / notifies after the same 20–60 µs delay. Goal: fence ≤ 1.15× raw.
 *
 * Latency = waiter's wake time − time just before signal()/notify(), both `process.hrtime.bigint()`
 * (CLOCK_MONOTONIC, one clock for every thread). Delays stay short on purpose: on this VM a core
 * that idled for a few ms wakes in ~120 µs instead of ~13 µs.
 *
 * Every round is driven through shared memory (bench/wake-protocol.ts); the worker is
 * bench/wake-worker.ts. While a woken worker finishes its round the main thread sleeps on the
 * "done" word rather than spinning (--main-spin spins): on 2 cores a spinning parent competes
 * with the thread it just woke. Off-path counts rounds where the waiter did not take the intended
 * path (a sleeping waiter that never slept, a spinning fence waiter whose spin ran out).
 *
 * Run: `npm run bench:wake`, or `npx tsc -p . && node dist/bench/wake.bench.js [--rounds N]
 * [--main-spin] [--samples]` plus the options every suite takes (bench/util.ts): default 20,000
 * rounds per variant (~6 s on an idle machine), --quick 200 (on a loaded machine a round waits for
 * a descheduled thread: 500 took up to 30 s); --seed S seeds the delay schedule.
 * JSON → bench/results/wake.json.
 */
import seedrandom from 'seedrandom';
import { Arena, Fence } from '../src/index.js';
import { F_FLAGS, FLAG_WAITERS } from '../src/fence/layout.js';
import type { LatencyStat, WakeVariant } from '../src/report/schema.js';
import { finishSuite, goal, positiveInt, runInfo, startWorker, suiteArgs, type Goal } from './util.js';
import * as P from './wake-protocol.js';

/* ───────────── configuration ───────────── */

const args = suiteArgs('wake', { rounds: { type: 'string' }, 'main-spin': { type: 'boolean', default: false }, samples: { type: 'boolean', default: false } });
const ROUNDS = positiveInt(args, 'rounds', args.quick ? 200 : 20_000);
const WARMUP = Math.min(args.quick ? 30 : 300, ROUNDS);
const SEED = args.seed;
/** --main-spin: the main thread spins instead of sleeping while the woken worker finishes a round. */
const MAIN_SPIN = args.own['main-spin'] === true;
/** --samples: also write every latency sample (ns, in round order) to the JSON. */
const DUMP_SAMPLES = args.own.samples === true;
/** Sleeping-waiter and waitAsync delays: uniform in [MIN, MIN + SPAN) µs, the same for A and B. */
const SLEEP_DELAY_MIN_US = 20;
const SLEEP_DELAY_SPAN_US = 40;
/** Short operation: the signal comes 5 µs ± 1 µs after the waiter starts waiting. */
const SPIN_DELAY_MIN_US = 4;
const SPIN_DELAY_SPAN_US = 2;
/** Spin of the spinning fence waiter (the library default). */
const SPIN_MICROS = Fence.spinMicros;
const GOAL_SLEEP_RATIO = 1.15;
const GOAL_SPIN_P50_NS = 2000;
const GOAL_SPIN_VS_PM = 10;
const GOAL_ASYNC_RATIO = 1.15;

/** The delay schedule is reproducible from --seed. */
const rng = seedrandom(String(SEED));
function nextDelayNs(minUs: number, spanUs: number): number {
  return Math.round((minUs + rng() * spanUs) * 1000);
}

/* ───────────── shared state ───────────── */

const arena = Arena.create({ bytes: 4 << 20 });
const ctx = Fence.contextAlloc(arena);
const ctlBuf = new SharedArrayBuffer(P.CTL_WORDS * 4);
const timesBuf = new SharedArrayBuffer(P.TIME_WORDS * 8);
const ctl = new Int32Array(ctlBuf);
const times = new BigInt64Array(timesBuf);
const i32 = arena.i32;
let round = 0;
let seqno = 0;
let workerError: string | null = null;

function busyNs(ns: number): void {
  const end = performance.now() + ns / 1e6;
  while (performance.now() < end);
}

function checkAlive(what: string, deadline: number): void {
  if (workerError !== null || Atomics.load(ctl, P.C_ERR) !== 0) throw new Error(`worker failed while waiting for ${what}: ${workerError ?? '(message pending)'}`);
  if (performance.now() > deadline) throw new Error(`bench timed out waiting for ${what} (round ${round})`);
}

/** Spins (bounded) until a[idx] === v. */
function spinEq(a: Int32Array, idx: number, v: number, what: string): void {
  const deadline = performance.now() + P.PROTOCOL_TIMEOUT_MS;
  for (;;) {
    for (let k = 0; k < 64; k++) if (Atomics.load(a, idx) === v) return;
    checkAlive(what, deadline);
  }
}

/** Spins (bounded) until bit `bit` of a[idx] is set. */
function spinBit(a: Int32Array, idx: number, bit: number, what: string): void {
  const deadline = performance.now() + P.PROTOCOL_TIMEOUT_MS;
  for (;;) {
    for (let k = 0; k < 64; k++) if (Atomics.load(a, idx) & bit) return;
    checkAlive(what, deadline);
  }
}

/**
 * Waits (bounded) until the worker finished round `r`. After a signal the main thread sleeps here
 * instead of spinning: on 2 cores a spinning parent competes with the thread it just woke (and with
 * whatever else runs on the machine), which adds scheduler tails to both variants.
 */
function awaitDone(r: number, what: string): void {
  if (MAIN_SPIN) return spinEq(ctl, P.C_DONE, r, what);
  const deadline = performance.now() + P.PROTOCOL_TIMEOUT_MS;
  for (;;) {
    const v = Atomics.load(ctl, P.C_DONE);
    if (v === r) return;
    checkAlive(what, deadline);
    Atomics.wait(ctl, P.C_DONE, v, 50);
  }
}

/** Starts a round of `mode` in the waiter worker; returns the round number. */
function command(mode: number, handle: number, delayNs: number): number {
  round++;
  Atomics.store(ctl, P.C_MODE, mode);
  Atomics.store(times, P.T_HANDLE, BigInt(handle));
  Atomics.store(ctl, P.C_DELAY_NS, delayNs);
  Atomics.store(ctl, P.C_CMD, round);
  Atomics.notify(ctl, P.C_CMD);
  return round;
}

/* ───────────── samples ───────────── */

class Samples {
  readonly wake: number[] = [];
  /** Time spent inside signal()/notify() by the signaler (main-thread signalers only). */
  readonly signalCost: number[] = [];
  /** Rounds where the waiter did not take the expected path (raw wait not 'ok', spin that slept, …). */
  offPath = 0;
  constructor(readonly name: string) {}
}

function stat(xs: number[]): LatencyStat {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  const q = (p: number) => s[Math.max(0, Math.ceil(p * n) - 1)];
  return { n, p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / n, min: s[0], max: s[n - 1] };
}

/* ───────────── 1 and 2: the worker waits, the main thread signals ───────────── */

/**
 * One round with the worker as waiter. `sleep`: wait until the waiter published that it sleeps;
 * otherwise until it said it starts waiting. Then busy `delayNs`, then signal. Records into `out`
 * when given (warm-up rounds pass null).
 */
function waiterRound(fence: boolean, sleep: boolean, delayNs: number, out: Samples | null): void {
  let f: Fence | null = null;
  let r: number;
  if (fence) {
    f = Fence.create(arena, { context: ctx, seqno: ++seqno });
    r = command(sleep ? P.M_FENCE_SLEEP : P.M_FENCE_SPIN, f.handle, 0);
    if (sleep) spinBit(i32, f.fw + F_FLAGS, FLAG_WAITERS, 'the fence waiter to sleep');
    else spinEq(ctl, P.C_ARMED, r, 'the fence waiter to start');
  } else {
    Atomics.store(ctl, P.C_RAW, 0);
    r = command(sleep ? P.M_RAW_SLEEP : P.M_RAW_SPIN, 0, 0);
    spinEq(ctl, P.C_ARMED, r, 'the raw waiter to start');
  }
  busyNs(delayNs);
  const t0 = process.hrtime.bigint();
  if (f) {
    f.signal();
  } else {
    Atomics.store(ctl, P.C_RAW, 1);
    Atomics.notify(ctl, P.C_RAW);
  }
  const t1 = process.hrtime.bigint();
  awaitDone(r, 'the waiter to wake');
  const tw = Atomics.load(times, P.T_WAKE);
  const slept = Atomics.load(ctl, P.C_SLEPT);
  f?.put();
  if (out) {
    out.wake.push(Number(tw - t0));
    out.signalCost.push(Number(t1 - t0));
    // Sleeping variants must have slept; spinning fence waiters must not have (raw spin never does).
    if (sleep ? slept !== 1 : slept !== 0) out.offPath++;
  }
}

/* ───────────── 2: postMessage round trip ───────────── */

let echoResolve: ((t: bigint) => void) | null = null;

async function pmRound(rtt: Samples | null, oneWay: Samples | null): Promise<void> {
  const p = new Promise<bigint>((res) => (echoResolve = res));
  const t0 = process.hrtime.bigint();
  echo.postMessage(round);
  const t2 = await p;
  if (rtt) rtt.wake.push(Number(t2 - t0));
  if (oneWay) oneWay.wake.push(Number(Atomics.load(times, P.T_ECHO) - t0));
}

/* ───────────── 3: the main thread waits asynchronously, the worker signals ───────────── */

async function asyncRound(fence: boolean, delayNs: number, out: Samples | null): Promise<void> {
  let r: number;
  let t1: bigint;
  let f: Fence | null = null;
  let offPath = false;
  if (fence) {
    f = Fence.create(arena, { context: ctx, seqno: ++seqno });
    r = command(P.M_SIGNAL_FENCE, f.handle, delayNs);
    const ok = await f.waitAsync(P.PROTOCOL_TIMEOUT_MS);
    t1 = process.hrtime.bigint();
    if (!ok) throw new Error(`fence.waitAsync timed out in round ${r}`);
  } else {
    Atomics.store(ctl, P.C_RAW, 0);
    r = command(P.M_NOTIFY_RAW, 0, delayNs);
    Atomics.store(ctl, P.C_ARMED, r);
    const w = Atomics.waitAsync(ctl, P.C_RAW, 0, P.PROTOCOL_TIMEOUT_MS);
    const v = w.async ? await w.value : w.value;
    t1 = process.hrtime.bigint();
    if (v === 'timed-out') throw new Error(`Atomics.waitAsync timed out in round ${r}`);
    offPath = !w.async;
  }
  spinEq(ctl, P.C_DONE, r, 'the signaler to finish');
  const t0 = Atomics.load(times, P.T_SIGNAL);
  f?.put();
  if (out) {
    out.wake.push(Number(t1 - t0));
    if (offPath) out.offPath++;
  }
}

/* ───────────── workers ───────────── */

const workerUrl = new URL('./wake-worker.js', import.meta.url);
const common = { buffer: arena.buffer, ctl: ctlBuf, times: timesBuf, spinMicros: SPIN_MICROS };
// startWorker listens for 'online' and 'exit' from the workers' creation on (awaited much later).
const waiterRun = startWorker<unknown>(workerUrl, { role: 'waiter', ...common });
const echoRun = startWorker<unknown>(workerUrl, { role: 'echo', ...common });
const waiter = waiterRun.worker;
const echo = echoRun.worker;
for (const w of [waiter, echo]) {
  w.on('message', (m: { type?: string; message?: string }) => {
    if (m && typeof m === 'object' && m.type === 'error') workerError = m.message ?? 'unknown error';
  });
  w.on('error', (e) => (workerError = String(e?.stack ?? e)));
}
echo.on('message', (m: unknown) => {
  if (typeof m === 'number' && echoResolve) {
    const t = process.hrtime.bigint();
    const res = echoResolve;
    echoResolve = null;
    res(t);
  }
});

/** Async awaits have no spin bound of their own: a watchdog fails the run when progress stops. */
let lastRound = -1;
let lastProgress = performance.now();
const watchdog = setInterval(() => {
  if (round !== lastRound) {
    lastRound = round;
    lastProgress = performance.now();
  } else if (performance.now() - lastProgress > 2 * P.PROTOCOL_TIMEOUT_MS) {
    console.error(`wake bench: no progress for ${2 * P.PROTOCOL_TIMEOUT_MS} ms in round ${round}; worker error: ${workerError}`);
    process.exit(1);
  }
}, 1000);
watchdog.unref();

/* ───────────── main ───────────── */

async function main(): Promise<void> {
  await Promise.all([waiterRun.online, echoRun.online]);
  const started = performance.now();

  const rawSleep = new Samples('raw Atomics.wait ← Atomics.notify (sleeping)');
  const fenceSleep = new Samples('fence.wait(), spinMicros 0 ← signal() (sleeping)');
  const rawSpin = new Samples('raw Atomics.load spin ← store (~5 µs op)');
  const fenceSpin = new Samples(`fence.wait(), spin ${SPIN_MICROS} µs ← signal() (~5 µs op)`);
  const pmRtt = new Samples('postMessage round trip (echo worker)');
  const pmOneWay = new Samples('postMessage one way (main → echo worker)');
  const rawAsync = new Samples('raw Atomics.waitAsync (main) ← notify (worker)');
  const fenceAsync = new Samples('fence.waitAsync() (main) ← signal() (worker)');

  // Warm-up: every path JIT-compiled before anything is recorded.
  for (let i = 0; i < WARMUP; i++) {
    waiterRound(true, true, nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US), null);
    waiterRound(false, true, nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US), null);
    waiterRound(true, false, nextDelayNs(SPIN_DELAY_MIN_US, SPIN_DELAY_SPAN_US), null);
    waiterRound(false, false, nextDelayNs(SPIN_DELAY_MIN_US, SPIN_DELAY_SPAN_US), null);
    await pmRound(null, null);
    await asyncRound(true, nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US), null);
    await asyncRound(false, nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US), null);
  }

  // 1. Sleeping waiter, A/B then B/A, one delay per pair.
  for (let i = 0; i < ROUNDS; i++) {
    const d = nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US);
    const fenceFirst = (i & 1) === 0;
    waiterRound(fenceFirst, true, d, fenceFirst ? fenceSleep : rawSleep);
    waiterRound(!fenceFirst, true, d, fenceFirst ? rawSleep : fenceSleep);
  }

  // 2. Short operation with a spinning waiter, interleaved with postMessage round trips.
  for (let i = 0; i < ROUNDS; i++) {
    const d = nextDelayNs(SPIN_DELAY_MIN_US, SPIN_DELAY_SPAN_US);
    const fenceFirst = (i & 1) === 0;
    waiterRound(fenceFirst, false, d, fenceFirst ? fenceSpin : rawSpin);
    waiterRound(!fenceFirst, false, d, fenceFirst ? rawSpin : fenceSpin);
    await pmRound(pmRtt, pmOneWay);
  }

  // 3. waitAsync on the main thread, the worker signals.
  for (let i = 0; i < ROUNDS; i++) {
    const d = nextDelayNs(SLEEP_DELAY_MIN_US, SLEEP_DELAY_SPAN_US);
    const fenceFirst = (i & 1) === 0;
    await asyncRound(fenceFirst, d, fenceFirst ? fenceAsync : rawAsync);
    await asyncRound(!fenceFirst, d, fenceFirst ? rawAsync : fenceAsync);
  }
  const elapsedMs = performance.now() - started;

  // Shut down and check the arena: every fence of the run was put.
  command(P.M_STOP, 0, 0);
  echo.postMessage('stop');
  await Promise.all([waiterRun.exited, echoRun.exited]);
  clearInterval(watchdog);
  if (workerError !== null) throw new Error(`worker failed: ${workerError}`);
  const check = arena.check();
  if (!check.ok || check.leakedBytes !== 0) throw new Error(`wake bench leaked: ${JSON.stringify(check.leaks.slice(0, 5))} ${check.problems.join('; ')}`);

  const all = [rawSleep, fenceSleep, rawSpin, fenceSpin, pmRtt, pmOneWay, rawAsync, fenceAsync];
  const stats = new Map(all.map((s) => [s, stat(s.wake)] as const));
  const st = (s: Samples) => stats.get(s)!;
  /** Each fence variant is measured against the raw Atomics wait of the same kind, in the same rounds. */
  const baselines = new Map<Samples, Samples>([
    [fenceSleep, rawSleep],
    [fenceSpin, rawSpin],
    [fenceAsync, rawAsync],
  ]);
  const variants: WakeVariant[] = all.map((s) => {
    const base = baselines.get(s);
    return {
      name: s.name,
      latencyNs: st(s),
      ...(base ? { baseline: base.name, ratioP50: st(s).p50 / st(base).p50, ratioP99: st(s).p99 / st(base).p99 } : {}),
      signalCostNs: s.signalCost.length ? stat(s.signalCost) : undefined,
      offPath: s.offPath,
      ...(DUMP_SAMPLES ? { samplesNs: s.wake } : {}),
    };
  });

  const goals: Goal[] = [
    goal('sleeping waiter p50: fence / raw', st(fenceSleep).p50 / st(rawSleep).p50, '×', '≤', GOAL_SLEEP_RATIO),
    goal('sleeping waiter p99: fence / raw', st(fenceSleep).p99 / st(rawSleep).p99, '×', '≤', GOAL_SLEEP_RATIO),
    goal('short op (spin first) p50', st(fenceSpin).p50 / 1000, 'µs', '≤', GOAL_SPIN_P50_NS / 1000),
    goal('short op p50: postMessage round trip / fence', st(pmRtt).p50 / st(fenceSpin).p50, '×', '≥', GOAL_SPIN_VS_PM),
    goal('waitAsync (main) p50: fence / raw', st(fenceAsync).p50 / st(rawAsync).p50, '×', '≤', GOAL_ASYNC_RATIO),
    goal('waitAsync (main) p99: fence / raw', st(fenceAsync).p99 / st(rawAsync).p99, '×', '≤', GOAL_ASYNC_RATIO),
  ];
  console.log(
    `wake: fence short-op p50 vs postMessage one way = ${(st(pmOneWay).p50 / st(fenceSpin).p50).toFixed(1)}×; ` +
      `fence short-op p50 vs raw spin = ${(st(fenceSpin).p50 / st(rawSpin).p50).toFixed(2)}×; measured in ${(elapsedMs / 1000).toFixed(1)} s`,
  );
  finishSuite('wake', args, {
    ...runInfo(args),
    rounds: ROUNDS,
    warmup: WARMUP,
    seed: SEED,
    delaysUs: { sleep: [SLEEP_DELAY_MIN_US, SLEEP_DELAY_MIN_US + SLEEP_DELAY_SPAN_US], spin: [SPIN_DELAY_MIN_US, SPIN_DELAY_MIN_US + SPIN_DELAY_SPAN_US] },
    spinMicros: SPIN_MICROS,
    mainSpin: MAIN_SPIN,
    elapsedMs,
    variants,
    goals,
  });
}

main().catch(async (e) => {
  console.error(e);
  // A failing worker posts its stack; the main thread was spinning and could not receive it yet.
  if (workerError === null && Atomics.load(ctl, P.C_ERR) !== 0) await new Promise((r) => setTimeout(r, 500));
  if (workerError !== null) console.error(`worker error: ${workerError}`);
  process.exit(1);
});

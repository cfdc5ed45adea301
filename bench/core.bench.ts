/**
 * Single-thread costs of the core, each as a ratio to a baseline measured in the same run:
 * lock pairs per algorithm vs a raw TAS (exchange + store), fence lock inline vs raw and vs
 * borrowed, fence withLock(fn) vs the same closure between a raw TAS pair, fence create+signal+put
 * (untracked, and tracked in the creator's ledger; a share+receive round trip beside it),
 * alloc+free vs @thi.ng/malloc (empty and with 1,000 live blocks), the sanitizer's overhead, and
 * what tracing costs (a session recording the default categories, or every tracepoint, against the
 * same operation untraced; tracing off against a copy of the build without tracepoints, see
 * bench/notrace.ts). Run: `npm run bench`. Every ratio with a target (and the every-tracepoint
 * row) is timed in paired rounds of CPU time (bench/paired.ts, runPaired; see PAIRED for why):
 * those rows carry the median of the rounds' ratios and its interquartile range.
 *
 * Each row runs in its own child process, task and baseline side by side: V8 shares type feedback
 * between every caller of a function, so measuring, say, ticket locks and sanitized fences in one
 * process would slow the plain fence path for reasons no single-arena application has.
 * Each group runs in RUNS processes and every task keeps its best: on this 2-core VM 2 to 5 in 10
 * unpinned processes land in a slow mode (~1.6-1.9x on everything, often for the whole process,
 * under load also for stretches of a few ms; none when pinned to one core), which is the machine,
 * not the code: a best-of per task can take the task's from outside the slow mode and its
 * baseline's from inside, or the reverse, so every row with a ratio target is paired (see PAIRED).
 * --quick: each group once, in a worker
 * thread (an isolate of its own: no feedback shared either, see runOnce), a seventh of the time per
 * task (a quarter of the rounds, of a quarter the length, for paired groups) (bench/util.ts lists the
 * options every suite takes).
 */
import { MemPool } from '@thi.ng/malloc';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort } from 'node:worker_threads';
import * as lib from '../src/index.js';
import { Arena, Fence, SpinLock, type LockKind } from '../src/index.js';
import { buildNoTraceCopy, loadNoTraceCopy, removeNoTraceCopy } from './notrace.js';
import { measurePaired, ownCode, quantile, type PairedOptions } from './paired.js';
import { finishSuite, measure, row, runInfo, startWorker, suiteArgs, timing, type Row } from './util.js';

const args = suiteArgs('core', { group: { type: 'string' }, notrace: { type: 'string' } });

/** The library a task runs: this build, or the copy without tracepoints (bench/notrace.ts). */
type Lib = typeof lib;
/** The copy without tracepoints, in a child that was given one (--notrace DIR). */
let noTrace: Lib | undefined;
function withoutTracepoints(): Lib {
  if (noTrace === undefined) throw new Error('core bench: this group needs --notrace DIR (the copy without tracepoints)');
  return noTrace;
}

const N = 1000;
type Task = [string, () => void];

function rawTas(): Task {
  const raw = new Int32Array(new SharedArrayBuffer(64));
  return [
    'raw TAS exchange+store',
    () => {
      for (let i = 0; i < N; i++) {
        while (Atomics.exchange(raw, 0, 1) !== 0);
        raw[1]++;
        Atomics.store(raw, 0, 0);
      }
    },
  ];
}

/** The closure both withLock rows run under the lock: a plain increment the loop's result depends on. */
function counterClosure(): { fn: () => void; read: () => number } {
  let hits = 0;
  return { fn: () => void hits++, read: () => hits };
}

/** withLock's baseline: the same closure between a raw TAS exchange and store, exception-safe as withLock is. */
function rawTasAround(): Task {
  const raw = new Int32Array(new SharedArrayBuffer(64));
  const { fn, read } = counterClosure();
  return [
    'raw TAS exchange+store around fn (try/finally)',
    () => {
      for (let i = 0; i < N; i++) {
        while (Atomics.exchange(raw, 0, 1) !== 0);
        try {
          fn();
        } finally {
          Atomics.store(raw, 0, 0);
        }
      }
      raw[1] = read();
    },
  ];
}

function fenceWithLock(): Task {
  const arena = Arena.create({ bytes: 8 << 20 });
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  const { fn, read } = counterClosure();
  const out = new Int32Array(1);
  return [
    'fence withLock(fn) inline',
    () => {
      for (let i = 0; i < N; i++) f.withLock(fn);
      out[0] = read();
    },
  ];
}

function spinLock(kind: LockKind): Task {
  const l = SpinLock.create(Arena.create({ bytes: 8 << 20 }), kind);
  return [
    `SpinLock ${kind} lock+unlock`,
    () => {
      for (let i = 0; i < N; i++) {
        l.lock();
        l.unlock();
      }
    },
  ];
}

/**
 * A trace session for a task: none, the default categories, or every tracepoint; 'off-labelled'
 * is 'off' named as such, beside 'stripped': the same task in the copy without tracepoints.
 */
type Tracing = 'off' | 'on' | 'all' | 'off-labelled' | 'stripped';
const TRACING_LABEL: Record<Tracing, string> = {
  off: '',
  on: ' (tracing on)',
  all: ' (tracing every tracepoint)',
  'off-labelled': ' (tracing off)',
  stripped: ' (a build without tracepoints)',
};

function traced(arena: Arena, tracing: Tracing): Arena {
  if (tracing === 'on' || tracing === 'all') arena.trace.start({ categories: tracing === 'all' ? 'all' : undefined });
  return arena;
}

/** The library of a task traced so: the copy without tracepoints for 'stripped', else this build. */
function libFor(tracing: Tracing): Lib {
  return tracing === 'stripped' ? withoutTracepoints() : lib;
}

/**
 * The loops of the fence tasks, as factories that refer to nothing outside themselves: each task
 * runs its own compiled copy (ownCode), so that the two sides of a paired row, two builds' fences
 * in one process, do not share one loop whose call sites see both builds' classes (polymorphic,
 * each side then pays for the other's map check, and not equally).
 */
const lockLoop = (f: { lock(): boolean; unlock(): void }, n: number) => () => {
  for (let i = 0; i < n; i++) {
    f.lock();
    f.unlock();
  }
};
const lifecycleLoop = (fence: Pick<Lib['Fence'], 'create'>, arena: Arena, context: number, n: number) => {
  let seqno = 1;
  return () => {
    for (let i = 0; i < n; i++) {
      const f = fence.create(arena, { context, seqno: seqno++ });
      f.signal();
      f.put();
    }
  };
};

function fenceLock(mode: 'inline' | 'borrowed', sanitize: boolean, tracing: Tracing = 'off'): Task {
  const { Arena, Fence, SpinLock } = libFor(tracing);
  const arena = traced(Arena.create({ bytes: 8 << 20, sanitize }), tracing);
  const lock = mode === 'borrowed' ? SpinLock.at(arena, arena.alloc(64), 0) : undefined;
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock });
  return [`fence lock+unlock ${mode}${sanitize ? ' (sanitize)' : ''}${TRACING_LABEL[tracing]}`, ownCode(lockLoop)(f, N)];
}

function lifecycle(sanitize: boolean, tracing: Tracing = 'off'): Task {
  const { Arena, Fence } = libFor(tracing);
  const arena = traced(Arena.create({ bytes: 8 << 20, sanitize }), tracing);
  return [`fence create+signal+put${sanitize ? ' (sanitize)' : ''}${TRACING_LABEL[tracing]}`, ownCode(lifecycleLoop)(Fence, arena, Fence.contextAlloc(arena), N)];
}

/**
 * create+signal+put with the creator's reference tracked (Fence.createTracked, putTracked): what
 * accounting for it in the thread's ledger costs against the untracked row, in the same process.
 */
function lifecycleTracked(): Task {
  const arena = Arena.create({ bytes: 8 << 20 });
  const context = Fence.contextAlloc(arena);
  let seqno = 1;
  return [
    'fence createTracked+signal+putTracked',
    () => {
      for (let i = 0; i < N; i++) {
        const f = Fence.createTracked(arena, { context, seqno: seqno++ });
        f.signal();
        f.putTracked();
      }
    },
  ];
}

/** One hand-over round trip in one thread: share, receive (tracked), putTracked. */
function handover(): Task {
  const arena = Arena.create({ bytes: 8 << 20 });
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  return [
    'fence share+receive+putTracked',
    () => {
      for (let i = 0; i < N; i++) Fence.receive(arena, f.share()).putTracked();
    },
  ];
}

function thiPair(live: number): Task {
  const pool = new MemPool({ size: 16 << 20 });
  for (let i = 0; i < live; i++) pool.malloc(56);
  return [
    `@thi.ng/malloc alloc+free 64 B${live ? `, ${live} live` : ''}`,
    () => {
      for (let i = 0; i < N; i++) pool.free(pool.malloc(56));
    },
  ];
}

/** Same request as thi.ng's: 56 payload bytes + our 8-byte header = one 64-byte block. */
function arenaPair(live: number, api: 'block' | 'public'): Task {
  const arena = Arena.create({ bytes: 16 << 20 });
  for (let i = 0; i < live; i++) arena.alloc(56);
  return api === 'block'
    ? [`arena allocBlock+freeBlock 64 B${live ? `, ${live} live` : ''}`, () => {
        for (let i = 0; i < N; i++) arena.freeBlock(arena.allocBlock(64, 1));
      }]
    : [`arena alloc+free 64 B (public, zeroed)`, () => {
        for (let i = 0; i < N; i++) arena.free(arena.alloc(56));
      }];
}

/** Each group: the tasks one child process measures together (a task and its baseline). */
const GROUPS: Record<string, () => Task[]> = {
  tas: () => [rawTas(), spinLock('tas')],
  ttas: () => [rawTas(), spinLock('ttas')],
  ticket: () => [rawTas(), spinLock('ticket')],
  futex: () => [rawTas(), spinLock('futex')],
  lifecycle: () => [lifecycle(false)],
  lifecycleTracked: () => [lifecycle(false), lifecycleTracked(), handover()],
  // Paired groups (see PAIRED): the task first, its baseline second.
  fenceInline: () => [fenceLock('inline', false), rawTas()],
  fenceModes: () => [fenceLock('inline', false), fenceLock('borrowed', false)],
  fenceWithLock: () => [fenceWithLock(), rawTasAround()],
  fenceSanitizeInline: () => [fenceLock('inline', true), fenceLock('inline', false)],
  fenceSanitizeBorrowed: () => [fenceLock('borrowed', true), fenceLock('borrowed', false)],
  lifecycleSanitize: () => [lifecycle(true), lifecycle(false)],
  lifecycleTraceOn: () => [lifecycle(false, 'on'), lifecycle(false)],
  lifecycleTraceAll: () => [lifecycle(false, 'all'), lifecycle(false)],
  lockTraceOn: () => [fenceLock('inline', false, 'on'), fenceLock('inline', false)],
  lifecycleNoTrace: () => [lifecycle(false, 'off-labelled'), lifecycle(false, 'stripped')],
  lockNoTrace: () => [fenceLock('inline', false, 'off-labelled'), fenceLock('inline', false, 'stripped')],
  allocBlock: () => [arenaPair(0, 'block'), thiPair(0)],
  allocPublic: () => [arenaPair(0, 'public'), thiPair(0)],
  allocLive: () => [arenaPair(1000, 'block'), thiPair(1000)],
};

/**
 * Groups measured in paired rounds (bench/paired.ts), each a task (first) and its baseline, rather
 * than one after the other as tinybench does, where a change of the machine's speed between the
 * two lands in the ratio. The tracing-off rows (target ≤ 1.02×) must resolve a percent or two (one
 * build read 1.02, 1.10 and 1.11 in three sequential runs of a day). The allocator rows are paired
 * for the slow mode of the header: it comes and goes within a process (seen flipping from one
 * 20 ms slice to the next under load, with no GC, compilation or deoptimization there, on both the
 * arena's loop and @thi.ng/malloc's at once, while a latency-bound multiply chain kept its speed),
 * and a sequential run that timed the arena in it and the baseline out of it read the public
 * alloc+free at 1.9× where paired rounds of the same processes read 0.6–1.0×. The same went for
 * every other ratio with a target: timed one after the other, each task keeping its fastest of 5
 * processes, one build read inline lock ÷ raw TAS at 0.72× and 1.20×, sanitized inline lock at
 * 2.15× and 3.37×, create+signal+put traced at 1.61× (paired: 1.41×) in two runs of one hour. So
 * all of them are paired; SEQUENTIAL keeps the SpinLock rows (no target) and the groups whose
 * target is a throughput, where a task's fastest process is the figure.
 */
const SEQUENTIAL = new Set(['tas', 'ttas', 'ticket', 'futex', 'lifecycle', 'lifecycleTracked']);
const PAIRED = new Set(Object.keys(GROUPS).filter((g) => !SEQUENTIAL.has(g)));

/** Paired rounds per process and CPU time per slice: ~0.6 s of CPU per process, ~0.1 s quick. */
function pairedOptions(quick: boolean): PairedOptions {
  return quick ? { inner: N, rounds: 100, sliceNs: 250_000, warmupMs: 100 } : { inner: N, rounds: 150, sliceNs: 1_000_000, warmupMs: 300 };
}

/**
 * Processes per paired group. Many short ones rather than a few long: one process's median is
 * stable to a fraction of a percent, but where V8 placed and how it compiled each copy's code is
 * fixed for the process and differs from one to the next. Two identical copies of the build read
 * 0.89 to 1.04 in one process each on the loaded VM (and, compiling synchronously, 0.945 in every
 * process for one pair of copies, 1.04 for another: code layout, not timing). Pooled over many
 * processes that placement averages out like any other noise.
 */
// 32, not 12: with the hot paths cut smaller (docs/architecture.md, "The inlining budget") the
// process-to-process spread doubled, and a median of 12 read above 1.02 one run in six for a
// cost of nil; ~1 s per process, so this is ~40 s more per bench run.
const PAIRED_RUNS = args.quick ? 1 : 32;
/**
 * Processes per allocator group: their targets (≤ 1× and ≤ 1.5×) are far from what a process reads
 * (0.2–0.4× and 0.6–1.0×), so a dozen processes resolve them; 32 would add ~1 min per bench run.
 */
const ALLOC_PAIRED_RUNS = args.quick ? 1 : 12;
/**
 * Processes per paired group of the other ratios (lock paths, sanitizer, tracing on): their targets
 * are 15–50 % away from what a process reads, so 8 processes resolve them.
 */
const RATIO_PAIRED_RUNS = args.quick ? 1 : 8;

/** What a child of a paired group writes: each task's ns per operation, and every round's ratio. */
interface PairedOut {
  ns: [string, number][];
  ratios: number[];
}

/** Hands a group's figures back: on stdout from a child process, by message from a worker thread. */
function emit(figures: unknown): void {
  if (isMainThread) process.stdout.write(JSON.stringify(figures));
  else parentPort!.postMessage(figures);
}

/** A group's run (a child process, or with --quick a worker thread): measures it and hands its figures back. */
async function child(group: string): Promise<void> {
  const tasks = GROUPS[group];
  if (tasks === undefined) throw new Error(`core bench: unknown group "${group}"`);
  if (typeof args.own.notrace === 'string') noTrace = await loadNoTraceCopy(args.own.notrace);
  if (PAIRED.has(group)) {
    const [a, b] = tasks();
    const r = measurePaired(a, b, pairedOptions(args.quick));
    emit({ ns: [...r.ns], ratios: r.ratios } satisfies PairedOut);
    return;
  }
  emit([...(await measure(tasks(), N, timing(args.quick)))]);
}

/** Processes per group; each task keeps its fastest (see the header). Paired groups: see runPaired. */
const RUNS = args.quick ? 1 : 5;

/**
 * Runs `group` once (with the copy without tracepoints when given) and returns its figures. The
 * full run starts a child process (see the header). --quick runs it in a worker thread instead: a
 * V8 isolate of its own, so no other group's type feedback or compiled code reaches it (what the
 * process boundary is for), started without a process's ~0.4 s of CPU (Node's start and the
 * library's load), which was most of what a quick group cost — on a loaded machine, seconds.
 */
async function runOnce<T>(group: string, notrace?: string): Promise<T> {
  const own = ['--group', group, ...(args.quick ? ['--quick'] : []), ...(notrace !== undefined ? ['--notrace', notrace] : [])];
  if (args.quick) {
    const w = startWorker<T>(new URL(import.meta.url), undefined, own);
    const figures = await w.first;
    await w.exited;
    return figures;
  }
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...own], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out) as T;
}

/** Runs `group` RUNS times; each task keeps its fastest (see the header). */
async function runGroup(group: string): Promise<Map<string, number>> {
  const best = new Map<string, number>();
  for (let run = 0; run < RUNS; run++) {
    for (const [name, ns] of await runOnce<[string, number][]>(group)) best.set(name, Math.min(ns, best.get(name) ?? Infinity));
  }
  return best;
}

/**
 * The row of a paired group (see PAIRED): its rounds from `runs` processes pooled, the ratio their
 * median and the spread their interquartile range; each task's ns per operation the median of its
 * processes' medians. Every process counts: one that landed in the slow mode of the header slows
 * both of its tasks, which a ratio of the two takes out, so no process is dropped and none picked.
 */
async function runPaired(group: string, notrace: string | undefined, target: { max: number } | undefined, runs = PAIRED_RUNS): Promise<Row> {
  const ratios: number[] = [];
  const perProcess: number[] = [];
  const ns = new Map<string, number[]>();
  for (let run = 0; run < runs; run++) {
    const out = await runOnce<PairedOut>(group, notrace);
    ratios.push(...out.ratios);
    perProcess.push(quantile(out.ratios, 0.5));
    for (const [name, x] of out.ns) ns.set(name, [...(ns.get(name) ?? []), x]);
  }
  const [[name, nsTask], [baseline, nsBase]] = [...ns].map(([k, xs]) => [k, quantile(xs, 0.5)] as const);
  const r = row(new Map([[name, nsTask], [baseline, nsBase]]), name, baseline, target);
  const ratio = quantile(ratios, 0.5);
  return {
    ...r,
    ratio,
    ...(target === undefined ? {} : { met: ratio <= target.max }),
    ratioQuartiles: [quantile(ratios, 0.25), quantile(ratios, 0.75)],
    ratioRounds: ratios.length,
    ratioByProcess: perProcess,
  };
}

async function main(): Promise<void> {
  const r = (g: string) => runGroup(g);
  const paired = (g: string, max?: number) => runPaired(g, undefined, max === undefined ? undefined : { max }, RATIO_PAIRED_RUNS);
  const rows: Row[] = [];
  for (const k of ['tas', 'ttas', 'ticket', 'futex'] as const) rows.push(row(await r(k), `SpinLock ${k} lock+unlock`, 'raw TAS exchange+store'));
  rows.push(await paired('fenceInline', 1.2));
  rows.push(await paired('fenceModes', 1.05));
  rows.push(await paired('fenceWithLock', 1.2));
  rows.push(await paired('fenceSanitizeInline', 2));
  rows.push(await paired('fenceSanitizeBorrowed', 2));
  rows.push(row(await r('lifecycle'), 'fence create+signal+put', undefined, { minOpsPerSec: 5e6 }));
  rows.push(await paired('lifecycleSanitize', 2));
  // The tracked row's ratio is the cost of the ledger record and its removal (same process).
  const tracked = await r('lifecycleTracked');
  rows.push(row(tracked, 'fence createTracked+signal+putTracked', 'fence create+signal+put', { minOpsPerSec: 5e6 }));
  rows.push(row(tracked, 'fence share+receive+putTracked', 'fence create+signal+put'));
  // Tracing off against a build without the tracing code: this build beside a copy of it whose
  // tracepoints are stripped (bench/notrace.ts), both loaded in each child.
  const stripped = buildNoTraceCopy();
  try {
    rows.push(await runPaired('lifecycleNoTrace', stripped, { max: 1.02 }));
    rows.push(await runPaired('lockNoTrace', stripped, { max: 1.02 }));
  } finally {
    removeNoTraceCopy(stripped);
  }
  rows.push(await paired('lifecycleTraceOn', 1.5));
  rows.push(await paired('lifecycleTraceAll'));
  rows.push(await paired('lockTraceOn', 1.5));
  rows.push(await runPaired('allocBlock', undefined, { max: 1.0 }, ALLOC_PAIRED_RUNS));
  rows.push(await runPaired('allocPublic', undefined, { max: 1.5 }, ALLOC_PAIRED_RUNS));
  rows.push(await runPaired('allocLive', undefined, { max: 1.0 }, ALLOC_PAIRED_RUNS));
  finishSuite('core', args, { ...runInfo(args), rows });
}

const group = args.own.group;
if (typeof group === 'string') await child(group);
else await main();

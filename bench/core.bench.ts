/**
 * Single-thread costs of the core, each as a ratio to a baseline measured in the same run:
 * lock pairs per algorithm vs a raw TAS (exchange + store), fence lock inline vs raw and vs
 * borrowed, fence withLock(fn) vs the same closure between a raw TAS pair, fence create+signal+put
 * (untracked, and tracked in the creator's ledger; a share+receive round trip beside it),
 * alloc+free vs @thi.ng/malloc (empty and with 1,000 live blocks), the sanitizer's overhead, and
 * what tracing costs (a session recording the default categories, or every tracepoint, against the
 * same operation untraced; tracing off against a copy of the build without tracepoints, see
 * bench/notrace.ts). Run: `npm run bench`. The tracing-off pairs are timed in interleaved rounds of
 * CPU time (measureInterleaved): their target is a 2 % ratio, finer than sequential runs resolve.
 *
 * Each row runs in its own child process, task and baseline side by side: V8 shares type feedback
 * between every caller of a function, so measuring, say, ticket locks and sanitized fences in one
 * process would slow the plain fence path for reasons no single-arena application has.
 * Each group runs in RUNS processes and every task keeps its best: on this 2-core VM 2 to 5 in 10
 * unpinned processes land in a slow mode (~1.6x on everything, for the whole process; none when
 * pinned to one core), which is the machine, not the code. --quick: 1 process per group, a quarter
 * of the time per task (bench/util.ts lists the options every suite takes).
 */
import { MemPool } from '@thi.ng/malloc';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as lib from '../src/index.js';
import { Arena, Fence, SpinLock, type LockKind } from '../src/index.js';
import { buildNoTraceCopy, loadNoTraceCopy, removeNoTraceCopy } from './notrace.js';
import { finishSuite, measure, row, runInfo, suiteArgs, timing, type Row } from './util.js';

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

function fenceLock(mode: 'inline' | 'borrowed', sanitize: boolean, tracing: Tracing = 'off'): Task {
  const { Arena, Fence, SpinLock } = libFor(tracing);
  const arena = traced(Arena.create({ bytes: 8 << 20, sanitize }), tracing);
  const lock = mode === 'borrowed' ? SpinLock.at(arena, arena.alloc(64), 0) : undefined;
  const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1, lock });
  return [
    `fence lock+unlock ${mode}${sanitize ? ' (sanitize)' : ''}${TRACING_LABEL[tracing]}`,
    () => {
      for (let i = 0; i < N; i++) {
        f.lock();
        f.unlock();
      }
    },
  ];
}

function lifecycle(sanitize: boolean, tracing: Tracing = 'off'): Task {
  const { Arena, Fence } = libFor(tracing);
  const arena = traced(Arena.create({ bytes: 8 << 20, sanitize }), tracing);
  const context = Fence.contextAlloc(arena);
  let seqno = 1;
  return [
    `fence create+signal+put${sanitize ? ' (sanitize)' : ''}${TRACING_LABEL[tracing]}`,
    () => {
      for (let i = 0; i < N; i++) {
        const f = Fence.create(arena, { context, seqno: seqno++ });
        f.signal();
        f.put();
      }
    },
  ];
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
  fenceInline: () => [rawTas(), fenceLock('inline', false)],
  fenceModes: () => [fenceLock('borrowed', false), fenceLock('inline', false)],
  fenceWithLock: () => [rawTasAround(), fenceWithLock()],
  fenceSanitize: () => [fenceLock('inline', false), fenceLock('inline', true), fenceLock('borrowed', false), fenceLock('borrowed', true)],
  lifecycle: () => [lifecycle(false)],
  lifecycleSanitize: () => [lifecycle(false), lifecycle(true)],
  lifecycleTracked: () => [lifecycle(false), lifecycleTracked(), handover()],
  lifecycleTrace: () => [lifecycle(false), lifecycle(false, 'on'), lifecycle(false, 'all')],
  lockTrace: () => [fenceLock('inline', false), fenceLock('inline', false, 'on')],
  lifecycleNoTrace: () => [lifecycle(false, 'off-labelled'), lifecycle(false, 'stripped')],
  lockNoTrace: () => [fenceLock('inline', false, 'off-labelled'), fenceLock('inline', false, 'stripped')],
  alloc: () => [thiPair(0), arenaPair(0, 'block'), arenaPair(0, 'public')],
  allocLive: () => [thiPair(1000), arenaPair(1000, 'block')],
};

/**
 * Groups whose ratio must resolve a few percent: the tracing-off rows (target ≤ 1.02×), measured
 * with {@link measureInterleaved}. tinybench runs one task after the other, so a change of load on
 * the shared machine between the two lands in the ratio: one build read 1.02, 1.10 and 1.11 in
 * three runs of a day. Interleaved, one process still reads 0.98 to 1.09 for it (and 0.95 to 1.02
 * against an identical copy: a process-wide mode, see the header), which the best of the group's
 * processes (runGroup) takes out.
 */
const INTERLEAVED = new Set(['lifecycleNoTrace', 'lockNoTrace', 'lifecycleTracked']);

/** Process CPU time in ns (user + system): a slice the OS gave another process is not counted. */
function cpuNs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

/**
 * Measures `tasks` in interleaved rounds: each round runs every task for the same number of calls
 * (~10 ms of CPU), in an order that reverses from one round to the next, timed in CPU time; each
 * task keeps its fastest round. Both sides of a ratio see the same machine, round by round.
 * Returns ns per operation.
 */
function measureInterleaved(tasks: Task[], quick: boolean): Map<string, number> {
  const rounds = quick ? 10 : 40;
  const warm = performance.now() + (quick ? 100 : 300);
  while (performance.now() < warm) for (const [, fn] of tasks) fn();
  // Calls per round: ~10 ms of CPU for the slowest task (cpuUsage counts microseconds).
  let slowest = 0;
  for (const [, fn] of tasks) {
    const t0 = cpuNs();
    for (let k = 0; k < 20; k++) fn();
    slowest = Math.max(slowest, (cpuNs() - t0) / 20);
  }
  const calls = Math.max(5, Math.ceil(10e6 / Math.max(slowest, 1)));
  const best = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? tasks : [...tasks].reverse();
    for (const [name, fn] of order) {
      const t0 = cpuNs();
      for (let k = 0; k < calls; k++) fn();
      const ns = (cpuNs() - t0) / (calls * N);
      best.set(name, Math.min(ns, best.get(name) ?? Infinity));
    }
  }
  return best;
}

async function child(group: string): Promise<void> {
  const tasks = GROUPS[group];
  if (tasks === undefined) throw new Error(`core bench: unknown group "${group}"`);
  if (typeof args.own.notrace === 'string') noTrace = await loadNoTraceCopy(args.own.notrace);
  const results = INTERLEAVED.has(group) ? measureInterleaved(tasks(), args.quick) : await measure(tasks(), N, timing(args.quick));
  process.stdout.write(JSON.stringify([...results]));
}

/** Processes per group; each task keeps its fastest (see the header). */
const RUNS = args.quick ? 1 : 5;

function runGroup(group: string, notrace?: string): Map<string, number> {
  const best = new Map<string, number>();
  for (let run = 0; run < RUNS; run++) {
    const own = [...(args.quick ? ['--quick'] : []), ...(notrace !== undefined ? ['--notrace', notrace] : [])];
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--group', group, ...own], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    for (const [name, ns] of JSON.parse(out) as [string, number][]) best.set(name, Math.min(ns, best.get(name) ?? Infinity));
  }
  return best;
}

async function main(): Promise<void> {
  const r = (g: string) => runGroup(g);
  const r2 = (g: string, notrace: string) => runGroup(g, notrace);
  const rows: Row[] = [];
  for (const k of ['tas', 'ttas', 'ticket', 'futex'] as const) rows.push(row(r(k), `SpinLock ${k} lock+unlock`, 'raw TAS exchange+store'));
  rows.push(row(r('fenceInline'), 'fence lock+unlock inline', 'raw TAS exchange+store', { max: 1.2 }));
  rows.push(row(r('fenceModes'), 'fence lock+unlock inline', 'fence lock+unlock borrowed', { max: 1.05 }));
  rows.push(row(r('fenceWithLock'), 'fence withLock(fn) inline', 'raw TAS exchange+store around fn (try/finally)', { max: 1.2 }));
  const san = r('fenceSanitize');
  rows.push(row(san, 'fence lock+unlock inline (sanitize)', 'fence lock+unlock inline', { max: 2 }));
  rows.push(row(san, 'fence lock+unlock borrowed (sanitize)', 'fence lock+unlock borrowed', { max: 2 }));
  rows.push(row(r('lifecycle'), 'fence create+signal+put', undefined, { minOpsPerSec: 5e6 }));
  rows.push(row(r('lifecycleSanitize'), 'fence create+signal+put (sanitize)', 'fence create+signal+put', { max: 2 }));
  // Interleaved (see INTERLEAVED): the tracked row's ratio is the cost of the ledger record and its removal.
  const tracked = r('lifecycleTracked');
  rows.push(row(tracked, 'fence createTracked+signal+putTracked', 'fence create+signal+put', { minOpsPerSec: 5e6 }));
  rows.push(row(tracked, 'fence share+receive+putTracked', 'fence create+signal+put'));
  // Tracing off against a build without the tracing code: this build beside a copy of it whose
  // tracepoints are stripped (bench/notrace.ts), both loaded in each child.
  const stripped = buildNoTraceCopy();
  try {
    rows.push(row(r2('lifecycleNoTrace', stripped), 'fence create+signal+put (tracing off)', 'fence create+signal+put (a build without tracepoints)', { max: 1.02 }));
    rows.push(row(r2('lockNoTrace', stripped), 'fence lock+unlock inline (tracing off)', 'fence lock+unlock inline (a build without tracepoints)', { max: 1.02 }));
  } finally {
    removeNoTraceCopy(stripped);
  }
  const lt = r('lifecycleTrace');
  rows.push(row(lt, 'fence create+signal+put (tracing on)', 'fence create+signal+put', { max: 1.5 }));
  rows.push(row(lt, 'fence create+signal+put (tracing every tracepoint)', 'fence create+signal+put'));
  rows.push(row(r('lockTrace'), 'fence lock+unlock inline (tracing on)', 'fence lock+unlock inline', { max: 1.5 }));
  const alloc = r('alloc');
  rows.push(row(alloc, 'arena allocBlock+freeBlock 64 B', '@thi.ng/malloc alloc+free 64 B', { max: 1.0 }));
  rows.push(row(alloc, 'arena alloc+free 64 B (public, zeroed)', '@thi.ng/malloc alloc+free 64 B', { max: 1.5 }));
  const live = r('allocLive');
  rows.push(row(live, 'arena allocBlock+freeBlock 64 B, 1000 live', '@thi.ng/malloc alloc+free 64 B, 1000 live', { max: 1.0 }));
  finishSuite('core', args, { ...runInfo(args), rows });
}

const group = args.own.group;
if (typeof group === 'string') await child(group);
else await main();

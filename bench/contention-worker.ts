/**
 * Crew worker of bench/contention.bench.ts (see bench/crew.ts for the cell protocol). Lock cells:
 * take one lock as often as it can until STOP, and under it increment the shared counter (a plain
 * read and write: only mutual exclusion keeps it exact) and run the critical section's busy loop.
 * Workload cells: the exporter or an importer of a fence pipeline (see contention.bench.ts).
 */
import { Arena, Fence, LOCK_KINDS, SpinLock, drain, setAutoDispatch, waitInbox } from '../src/index.js';
import {
  CELL_BLOCK_BYTES,
  COUNTER_WORD,
  LOCK_WORD,
  RING_SLOTS,
  SIGNAL_LAG,
  W_EXPORTER_DONE,
  W_PROGRESS,
  W_PROGRESS_STRIDE,
  W_PUBLISHED,
  W_SLEEPERS,
  type ContentionCellMessage,
  type ContentionResultMessage,
  type CalibrateResult,
  type LockCell,
  type LockResult,
  type WorkloadCell,
  type WorkloadResult,
} from './contention-protocol.js';
import { serveCells, type CellControl } from './crew.js';

const { buffer } = serveCells<ContentionCellMessage, ContentionResultMessage, { buffer: SharedArrayBuffer }>(
  (cell, ctl) => {
    switch (cell.type) {
      case 'calibrate':
        return calibrate(ctl);
      case 'lock':
        return lockCell(cell, ctl);
      case 'workload':
        return cell.role === 'exporter' ? exporter(cell, ctl) : importer(cell, ctl);
    }
  },
  () => arena.detach(),
).data;
const arena = Arena.attach(buffer);
// Callbacks other threads queue to this one run when an importer drains its inbox, not from an
// event-loop dispatcher (the cells block the event loop).
setAutoDispatch(false);

/** The critical section's work: `iters` dependent multiply-adds (~2 ns each). */
function spinWork(iters: number): number {
  let x = iters;
  for (let j = 0; j < iters; j++) x = (Math.imul(x, 1103515245) + 12345) | 0;
  return x;
}

/**
 * ns per spinWork iteration: the fastest of several timed runs (a loaded machine only slows runs
 * down). First warms every lock loop up alone, on a block and fences of its own, so that no cell
 * measures the JIT compiling its loop.
 */
function calibrate(ctl: CellControl): CalibrateResult {
  const block = arena.alloc(CELL_BLOCK_BYTES);
  const lockWord = payloadWord(block, LOCK_WORD);
  const scratch = payloadWord(block, COUNTER_WORD);
  const context = Fence.contextAlloc(arena);
  const inline = Fence.create(arena, { context, seqno: 1 });
  const borrowed = Fence.create(arena, { context, seqno: 2, lock: SpinLock.at(arena, block, LOCK_WORD * 4) });
  let sink = 0;
  for (let round = 0; round < WARMUP_ROUNDS; round++) {
    sink += rawBatch(arena.i32, lockWord, scratch, round & 3, WARMUP_BATCH);
    for (const kind of LOCK_KINDS) sink += spinLockBatch(SpinLock.at(arena, block, LOCK_WORD * 4, kind), arena.i32, scratch, round & 3, WARMUP_BATCH);
    sink += fenceBatch(inline, arena.i32, scratch, round & 3, WARMUP_BATCH);
    sink += fenceBatch(borrowed, arena.i32, scratch, round & 3, WARMUP_BATCH);
  }
  inline.put();
  borrowed.put();
  arena.free(block);

  const ITERS = 200_000;
  let best = Infinity;
  for (let run = 0; run < 12; run++) {
    const t0 = performance.now();
    sink += spinWork(ITERS);
    best = Math.min(best, (performance.now() - t0) * 1e6);
  }
  ctl.ready();
  return { nsPerIter: best / ITERS, sink };
}

/** Warm-up: this many batches of WARMUP_BATCH acquisitions per lock (enough for the optimising compiler). */
const WARMUP_ROUNDS = 400;
const WARMUP_BATCH = 16;

function payloadWord(handle: number, word: number): number {
  return arena.resolve(handle, -1, 'block') + 2 + word;
}

/**
 * A lock cell: each variant's batch function (the work) in a loop that looks at STOP between
 * batches. The batch functions are what calibrate() warms up. Every worker runs one batch before
 * its first look: on a loaded machine a worker woken by START may get a core only after STOP
 * (a 40 ms --quick cell), and a cell of no acquisitions at all has no throughput or fairness to report.
 */
function lockCell(cell: LockCell, ctl: CellControl): LockResult {
  const i32 = arena.i32;
  const counter = payloadWord(cell.block, COUNTER_WORD);
  const { variant, csIters, batch } = cell;
  let count = 0;
  let sink = 0;
  if (variant === 'raw') {
    const word = payloadWord(cell.block, LOCK_WORD);
    ctl.ready();
    do {
      sink += rawBatch(i32, word, counter, csIters, batch);
      count += batch;
    } while (!ctl.stopped());
  } else if (variant === 'fence inline' || variant === 'fence borrowed') {
    const fence = Fence.fromHandle(arena, cell.fence);
    ctl.ready();
    do {
      sink += fenceBatch(fence, i32, counter, csIters, batch);
      count += batch;
    } while (!ctl.stopped());
  } else {
    const lock = SpinLock.at(arena, cell.block, LOCK_WORD * 4, variant);
    ctl.ready();
    do {
      sink += spinLockBatch(lock, i32, counter, csIters, batch);
      count += batch;
    } while (!ctl.stopped());
  }
  return { count, sink };
}

/** The baseline: a bare test-and-set (exchange until it returns 0, then store 0), no owner, no backoff. */
function rawBatch(i32: Int32Array, word: number, counter: number, csIters: number, batch: number): number {
  let sink = 0;
  for (let k = 0; k < batch; k++) {
    while (Atomics.exchange(i32, word, 1) !== 0);
    i32[counter]++;
    sink += spinWork(csIters);
    Atomics.store(i32, word, 0);
  }
  return sink;
}

/*
 * spinLockBatch and fenceBatch are the same loop over two classes, kept apart on purpose: one loop
 * taking `{ lock(); unlock() }` would see both classes at its call sites across the cells a worker
 * runs, and a polymorphic lock call in the measured loop is a cost the library's users do not pay.
 */
function spinLockBatch(lock: SpinLock, i32: Int32Array, counter: number, csIters: number, batch: number): number {
  let sink = 0;
  for (let k = 0; k < batch; k++) {
    lock.lock();
    i32[counter]++;
    sink += spinWork(csIters);
    lock.unlock();
  }
  return sink;
}

function fenceBatch(fence: Fence, i32: Int32Array, counter: number, csIters: number, batch: number): number {
  let sink = 0;
  for (let k = 0; k < batch; k++) {
    fence.lock();
    i32[counter]++;
    sink += spinWork(csIters);
    fence.unlock();
  }
  return sink;
}

/* ───────────── the fence workload ───────────── */

/** How long a workload thread with nothing to do sleeps before it looks again. */
const IDLE_NAP_MS = 0.05;

/**
 * Creates fences on one context as fast as the importers keep up (each importer at most
 * RING_SLOTS − 1 fences behind), takes one reference per importer on each, publishes its handle,
 * and signals and puts each fence SIGNAL_LAG fences later. At STOP it signals and puts the rest.
 */
function exporter(cell: WorkloadCell, ctl: CellControl): WorkloadResult {
  const words = new Int32Array(cell.words);
  const ring = new Float64Array(cell.ring);
  const lock = cell.lock === 0 ? undefined : cell.lock;
  const pending: Fence[] = [];
  let seqno = 0;
  ctl.ready();
  while (!ctl.stopped()) {
    if (seqno - slowest(words, cell.importers) >= RING_SLOTS - 1) {
      // The ring is full: nap (50 µs) instead of spinning on a core an importer needs.
      Atomics.wait(words, W_PUBLISHED, seqno, IDLE_NAP_MS);
      continue;
    }
    const f = Fence.create(arena, { context: cell.context, seqno: seqno + 1, lock });
    for (let i = 0; i < cell.importers; i++) f.get();
    seqno++;
    ring[seqno % RING_SLOTS] = f.handle;
    Atomics.store(words, W_PUBLISHED, seqno);
    if (Atomics.load(words, W_SLEEPERS) > 0) Atomics.notify(words, W_PUBLISHED);
    pending.push(f);
    if (pending.length > SIGNAL_LAG) {
      const done = pending.shift()!;
      done.signal();
      done.put();
    }
  }
  for (const f of pending) {
    f.signal();
    f.put();
  }
  Atomics.store(words, W_EXPORTER_DONE, 1);
  return { fences: seqno, added: 0, ran: 0, statusReads: 0 };
}

function slowest(words: Int32Array, importers: number): number {
  let min = Infinity;
  for (let i = 0; i < importers; i++) min = Math.min(min, Atomics.load(words, W_PROGRESS + i * W_PROGRESS_STRIDE));
  return min;
}

/**
 * Takes every published fence in order: adds a callback (when it is still pending), reads its
 * status, puts the reference the exporter took for it. Runs the callbacks the exporter's signals
 * queued to this thread. Goes on past STOP until it has seen every fence the exporter published
 * and every callback it added has run.
 */
function importer(cell: WorkloadCell, ctl: CellControl): WorkloadResult {
  const words = new Int32Array(cell.words);
  const ring = new Float64Array(cell.ring);
  const progress = W_PROGRESS + cell.index * W_PROGRESS_STRIDE;
  let ran = 0;
  const onSignal = () => {
    ran++;
  };
  let next = 1;
  let added = 0;
  let statusReads = 0;
  ctl.ready();
  for (;;) {
    const published = Atomics.load(words, W_PUBLISHED);
    if (next > published) {
      // Read DONE before PUBLISHED: the exporter publishes its last fence before it says it is done.
      if (Atomics.load(words, W_EXPORTER_DONE) === 1 && next > Atomics.load(words, W_PUBLISHED)) break;
      drain(arena);
      // Caught up: sleep until the exporter publishes (at most 50 µs) instead of spinning on a core
      // it needs. Counted in SLEEPERS before the wait re-checks PUBLISHED, so the exporter, which
      // publishes before it reads SLEEPERS, either sees us or we see its fence.
      Atomics.add(words, W_SLEEPERS, 1);
      Atomics.wait(words, W_PUBLISHED, published, IDLE_NAP_MS);
      Atomics.sub(words, W_SLEEPERS, 1);
      continue;
    }
    const f = Fence.fromHandle(arena, ring[next % RING_SLOTS]);
    if (f.addCallback(onSignal) !== null) added++;
    if (f.status() >= 0) statusReads++;
    f.put();
    Atomics.store(words, progress, next);
    next++;
    if ((next & 7) === 0) drain(arena);
  }
  const by = performance.now() + 10_000;
  while (ran < added) {
    if (performance.now() > by) throw new Error(`importer ${cell.index}: ${added - ran} of ${added} callbacks never ran`);
    waitInbox(arena, 50);
  }
  return { fences: next - 1, added, ran, statusReads };
}

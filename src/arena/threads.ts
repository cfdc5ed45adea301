/**
 * Thread slots: every thread attached to an arena owns one slot of its thread table (its caches,
 * counters and the words the higher layers reserve there). A slot is claimed on attach, freed on
 * detach, and reaped — its locks released, the higher layers' clean-up run, its caches returned —
 * when its thread dies without detaching.
 *
 * Also here: this thread's view of each arena it is attached to, held weakly so that an arena no
 * one references any more is collected with its buffer.
 */
import { threadId, type Worker } from 'node:worker_threads';
import { describeValue, Errors, isLiveObject } from '../errors.js';
import { flushSlotCaches, releaseDeadClassLocks } from './freelists.js';
import type { Arena } from './arena.js';
import { runReapHooks } from './hooks.js';
import { osThreadGone, ownOsThread } from './osthread.js';
import { forgetWatch, noteWatch, watches } from './watching.js';
import * as L from './layout.js';
import { EV_THREAD_REAPED, TC_THREAD } from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';

/** Word index of thread slot `s` of the arena in `i32`. */
export function slotWord(i32: Int32Array, s: number): number {
  return i32[L.H_THREAD_TABLE] + s * i32[L.H_THREAD_STRIDE];
}

/**
 * Claims a free thread slot of the arena in `i32` for the calling thread and returns it.
 * Threads: any. Throws EMFILE when the thread table is full.
 */
export function claimSlot(i32: Int32Array): number {
  const max = i32[L.H_MAX_THREADS];
  const stride = i32[L.H_THREAD_STRIDE];
  for (let s = 0; s < max; s++) {
    const base = slotWord(i32, s);
    if (Atomics.compareExchange(i32, base + L.T_STATE, L.SLOT_FREE, L.SLOT_RESERVED) !== L.SLOT_FREE) continue;
    // A reaped slot comes back zeroed except for what the reaper folded away; clear the rest.
    i32.fill(0, base + 1, base + stride);
    i32[base + L.T_THREAD_ID] = threadId;
    // Its kernel identity: a waiter on a word this thread holds can then tell that it died.
    [i32[base + L.T_OS_TID], i32[base + L.T_OS_START]] = ownOsThread();
    i32[base + L.T_SERIAL] = Atomics.add(i32, L.H_THREAD_SERIAL, 1) + 1;
    Atomics.store(i32, base + L.T_STATE, L.SLOT_LIVE);
    return s;
  }
  throw Errors.tooManyThreads(max);
}

/** Live thread slots of the arena in `i32` whose occupant has Node threadId `tid`. */
export function slotsOfThread(i32: Int32Array, tid: number): number[] {
  const out: number[] = [];
  const max = i32[L.H_MAX_THREADS];
  for (let s = 0; s < max; s++) {
    const b = slotWord(i32, s);
    if (Atomics.load(i32, b + L.T_STATE) === L.SLOT_LIVE && i32[b + L.T_THREAD_ID] === tid) out.push(s);
  }
  return out;
}

/**
 * The slot the calling thread already holds in the arena in `i32`, or -1. A thread holds one
 * while a view of it is alive, and keeps it when the view is collected without detaching.
 */
export function ownSlot(i32: Int32Array): number {
  const mine = slotsOfThread(i32, threadId);
  return mine.length > 0 ? mine[0] : -1;
}

/**
 * Reaps `worker`'s thread slots of `arena` once it exits (see {@link Arena.watch}).
 * Throws EINVAL for a non-worker or a worker that has already exited.
 */
export function watchWorker(arena: Arena, worker: Worker): void {
  if (worker === null || typeof worker !== 'object' || !isLiveObject(worker) || typeof worker.once !== 'function' || !Number.isInteger(worker.threadId))
    throw Errors.invalid(`watch needs a Worker, got ${describeValue(worker)}`);
  // Recorded now: Node resets threadId to -1 by the time 'exit' fires.
  const tid = worker.threadId;
  if (tid < 0) throw Errors.invalid('watch: the worker has already exited');
  noteWatch(tid);
  worker.once('exit', () => {
    // Forgotten after the reap: a stage waiting on a word the dead thread still holds may take it over.
    try {
      if (!arena.isDetached) for (const s of slotsOfThread(arena.i32, tid)) reapSlot(arena, s);
    } finally {
      forgetWatch(tid);
    }
  });
}

/**
 * Reaps the dead thread's slot `s` (see {@link Arena.reapSlot}); a slot that is not live (already
 * reaped, or detached) is left alone. Threads: any live thread except the dead one.
 */
export function reapSlot(arena: Arena, s: number): void {
  const i32 = arena.i32;
  if (s === arena.slot) throw Errors.invalid('a thread cannot reap its own slot');
  // Exactly one reaper wins the slot: watching a worker twice, or two threads reaping, reap once.
  if (Atomics.compareExchange(i32, slotWord(i32, s) + L.T_STATE, L.SLOT_LIVE, L.SLOT_DEAD) !== L.SLOT_LIVE) return;
  if (tracing(i32, TC_THREAD)) traceEvent(arena, EV_THREAD_REAPED, s, i32[slotWord(i32, s) + L.T_SERIAL], i32[slotWord(i32, s) + L.T_THREAD_ID], 0, 0);
  // The allocator's own class locks; the layers above release theirs in their reap hooks.
  releaseDeadClassLocks(arena, s + 1);
  runReapHooks(arena, s);
  // Last: the higher layers' clean-up may still read a raw block (a lock borrowed from one).
  settleRawBlocks(arena, s, true);
  releaseSlot(arena, s);
}

/**
 * Reaps every live slot of the arena whose thread this thread watches and which is gone from the
 * process (src/arena/osthread.ts) though not reaped: for a watcher blocked in a wait that only such
 * a reap can end — the worker's 'exit' event, which would reap it, waits for this thread's event
 * loop. Threads: any live thread holding no locks (the reap takes locks). Returns how many it reaped.
 */
export function reapGoneThreads(arena: Arena): number {
  const i32 = arena.i32;
  let n = 0;
  for (let s = 0; s < arena.maxThreads; s++) {
    if (s === arena.slot) continue;
    const b = slotWord(i32, s);
    if (Atomics.load(i32, b + L.T_STATE) !== L.SLOT_LIVE || !watches(i32[b + L.T_THREAD_ID])) continue;
    if (!osThreadGone(i32[b + L.T_OS_TID], i32[b + L.T_OS_START])) continue;
    reapSlot(arena, s);
    n++;
  }
  return n;
}

/**
 * The raw blocks (`arena.alloc`) slot `s` allocated and did not hand over ({@link adoptRawBlock}):
 * freed when its thread died (`free`), or made the arena's (no thread's) when it detaches, so
 * that a later occupant of the slot is not taken for their owner. Threads: the reaper, or the
 * detaching thread itself.
 */
export function settleRawBlocks(arena: Arena, s: number, free: boolean): void {
  const i32 = arena.i32;
  const found: number[] = [];
  arena.walk((hw, _size, state, type) => {
    if (state === L.STATE_LIVE && type === L.BlockType.RAW && ((i32[hw + L.B_TAG] >>> L.TAG_ALLOC_SHIFT) & L.TAG_THREAD_MASK) === s) found.push(hw);
  });
  for (const hw of found) {
    if (free) arena.freeBlock(hw);
    else retag(i32, hw, s, L.NO_THREAD);
  }
}

/**
 * Moves the raw block at header word `hw` from owner slot `from` to `to` (NO_THREAD: the arena's)
 * with a compare-exchange on its tag: a concurrent free wins, and nothing changes then.
 */
function retag(i32: Int32Array, hw: number, from: number, to: number): boolean {
  const mask = L.TAG_THREAD_MASK << L.TAG_ALLOC_SHIFT;
  const tag = Atomics.load(i32, hw + L.B_TAG);
  if (((tag >>> L.TAG_STATE_SHIFT) & L.TAG_STATE_MASK) !== L.STATE_LIVE || ((tag & mask) >>> L.TAG_ALLOC_SHIFT) !== from) return false;
  return Atomics.compareExchange(i32, hw + L.B_TAG, tag, (tag & ~mask) | (to << L.TAG_ALLOC_SHIFT)) === tag;
}

/**
 * Hands raw block `hw` over to the calling thread (`keep` false) or to the arena (`keep` true):
 * the death of the thread that allocated it no longer frees it. Returns false when another
 * thread changed or freed the block meanwhile.
 */
export function adoptRawBlock(arena: Arena, hw: number, keep: boolean): boolean {
  const i32 = arena.i32;
  const from = (Atomics.load(i32, hw + L.B_TAG) >>> L.TAG_ALLOC_SHIFT) & L.TAG_THREAD_MASK;
  return retag(i32, hw, from, keep ? L.NO_THREAD : arena.slot);
}

/**
 * Flushes slot `s`'s caches to the free lists, folds its counters into the header and frees the
 * slot. Threads: the slot's own thread (detach) or its reaper.
 */
export function releaseSlot(arena: Arena, s: number): void {
  const i32 = arena.i32;
  const b = slotWord(i32, s);
  flushSlotCaches(arena, b, s !== arena.slot); // the detaching thread releases its own slot
  Atomics.add(i32, L.H_REAPED_ALLOCS, i32[b + L.T_ALLOCS]);
  Atomics.add(i32, L.H_REAPED_FREES, i32[b + L.T_FREES]);
  i32.fill(0, b + 1, b + L.T_CACHE);
  Atomics.store(i32, b + L.T_STATE, L.SLOT_FREE);
}

/* ───────────── this thread's views ───────────── */

/**
 * This thread's view of each arena it is attached to, by arena id. Weak, so the registry keeps no
 * arena (and no 32 MiB buffer) alive: a view nobody references is collected with its buffer.
 */
const views = new Map<number, WeakRef<Arena>>();
const collected = new FinalizationRegistry<number>((id) => {
  // A newer view of the same arena may have taken the entry since this one became unreachable.
  if (views.get(id)?.deref() === undefined) views.delete(id);
});

/** This thread's live (not detached) view of the arena with id `id`, if it still has one. */
export function viewOf(id: number): Arena | undefined {
  const view = views.get(id)?.deref();
  return view !== undefined && !view.isDetached ? view : undefined;
}

/** Records `view` as this thread's view of the arena with id `id`. */
export function rememberView(id: number, view: Arena): void {
  views.set(id, new WeakRef(view));
  collected.register(view, id, view);
}

/** Forgets `view` (it detached): the next attach in this thread claims a new slot. */
export function forgetView(id: number, view: Arena): void {
  if (views.get(id)?.deref() === view) views.delete(id);
  collected.unregister(view);
}

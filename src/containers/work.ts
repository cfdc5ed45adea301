/**
 * The container work list: an array's signal or a chain's re-arm queued by a thread that could not
 * run it at once (see the deferred queue of common.ts), recorded in the container's own K_WORK
 * word as an item of the thread's list (T_WORK_HEAD of layout.ts) — the kernel embeds its irq_work
 * in dma_fence_array and dma_fence_chain the same way — so queuing needs no memory and cannot fail,
 * and a dead thread's reaper finds every item.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { onReap, onThreadCheck, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { putFenceAt } from '../fence/release.js';

/**
 * Deferred work: `fn(arena, fw)` runs while the queue holds a reference on `fw`, which the queue
 * puts once it returned (or threw).
 */
export type DeferredWork = (arena: Arena, fw: number) => void;

/** Container work kinds: the containers a kind's work is for, and the work. */
const workKinds: { is: (i32: Int32Array, fw: number) => boolean; fn: DeferredWork }[] = [];

/**
 * Defines the queued work of a container kind (`is`: its kind test): an array's signal, a chain's
 * re-arm. Queued, it is an item of the thread's container work list (K_WORK of layout.ts), which
 * needs no memory: a dead thread's reaper runs each item's `fn` and puts its reference. `fn` must
 * tolerate running after a cut-off run of itself (signaling a signaled fence is a no-op; a re-arm
 * arms again). Threads: every thread that imports the container's module defines it.
 */
export function defineContainerWork(is: (i32: Int32Array, fw: number) => boolean, fn: DeferredWork): void {
  if (!workKinds.some((k) => k.fn === fn)) workKinds.push({ is, fn });
}

/** The work of container `fw` (a defined kind's), checked: the word was read from shared memory. */
export function workOf(arena: Arena, fw: number): DeferredWork {
  const k = workKinds.find((w) => w.is(arena.i32, fw));
  if (k === undefined) throw Errors.corruptArena(`container work names fence @${fw * 4}, no container with queued work`);
  return k.fn;
}

/**
 * Appends container `fw`'s work to the calling thread's work list, handing it the reference the
 * caller holds: false when it is queued already (its queued run, later than this call, does the
 * work: the caller keeps its reference). The claim's compare-exchange, then plain writes only —
 * the link, and `at` (0: none; the word naming the caller's reference, see runOrDefer) cleared —
 * are one run: a thread terminated here leaves the reference named by `at` or by the list.
 */
export function listWork(arena: Arena, fw: number, at: number): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const tail = i32[sb + L.T_WORK_TAIL];
  const linkAt = tail === 0 ? sb + L.T_WORK_HEAD : tail + L.K_WORK;
  if (Atomics.compareExchange(i32, fw + L.K_WORK, 0, L.WORK_END) !== 0) return false;
  i32[linkAt] = fw;
  i32[sb + L.T_WORK_TAIL] = fw;
  if (at !== 0) i32[at] = 0;
  return true;
}

/**
 * Takes the first item off the work list of the thread of slot word `sb` into its WORK_RUN word
 * (0: the list is empty): the store that frees the container's word for another queuing, then
 * plain writes, one run. Returns the container, whose reference WORK_RUN now names.
 */
export function takeWork(arena: Arena, sb: number): number {
  const i32 = arena.i32;
  const fw = i32[sb + L.T_WORK_HEAD];
  if (fw === 0) return 0;
  // Read from shared memory: checked before the store writes through it.
  linkedPayload(arena, fw, A.BlockType.FENCE, 'a queued container');
  const next = i32[fw + L.K_WORK] === L.WORK_END ? 0 : i32[fw + L.K_WORK];
  Atomics.store(i32, fw + L.K_WORK, 0);
  i32[sb + L.T_WORK_HEAD] = next;
  if (next === 0) i32[sb + L.T_WORK_TAIL] = 0;
  i32[sb + L.T_WORK_RUN] = fw;
  return fw;
}

/**
 * Runs the work WORK_RUN of the thread of slot word `sb` names, then puts its reference, clearing
 * the word in the drop's run (putFenceAt): a terminate() before leaves the work to the reaper.
 */
export function runTaken(arena: Arena, sb: number): void {
  const fw = arena.i32[sb + L.T_WORK_RUN];
  try {
    workOf(arena, fw)(arena, fw);
  } finally {
    putFenceAt(arena, fw, sb + L.T_WORK_RUN);
  }
}

/**
 * Reap hook (LEDGER stage, with the ledger's queued work): the container work the dead thread of
 * `slot` had taken and not finished, from the start, then every item of its list, in order; for a
 * detaching thread, its list (the queue's entries for them then find the list empty).
 */
function reapWork(arena: Arena, slot: number): void {
  const sb = arena.slotWord(slot);
  let first: unknown = NO_ERROR;
  // A detaching thread's own WORK_RUN is on its stack (detach is refused in no callback): not ours.
  if (slot !== arena.slot && arena.i32[sb + L.T_WORK_RUN] !== 0) first = attempt(runTaken, arena, sb, 0, first);
  let hops = maxBlocks(arena);
  while (takeWork(arena, sb) !== 0) {
    first = attempt(runTaken, arena, sb, 0, first);
    if (hops-- === 0) throw Errors.corruptArena('a container work list does not end');
  }
  rethrowFirst(first);
}
onReap(ReapStage.LEDGER, reapWork);

/** Check hook: a thread between calls runs no container work. */
onThreadCheck((arena, s, b) => (s === arena.slot && arena.i32[b + L.T_WORK_RUN] !== 0 ? [`thread ${s} is running container work`] : []));


/**
 * The ledger: what a thread holds that nobody else could give back if it died — fence references,
 * operations it exports. One block per thread slot (T_LEDGER), entries `[kind, value, generation]`.
 * Only the owner writes it; the reaper reads it once the owner is dead (Arena.watch → reapSlot →
 * the hook below), so no lock is needed. Entries may go stale (an operation finished by another
 * thread): the generation tells, and {@link ledgerCompact} drops them.
 *
 * Kinds are registered per thread like shared callbacks: the reaping thread must have loaded the
 * module that defines a kind (the runtime defines FENCE_REF; the driver defines OPERATION).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import { Errors } from '../errors.js';
import { pushRelease } from '../fence/core.js';
import { Fence, fenceView, putFence, releaseFenceAt } from '../fence/fence.js';
import { syncFileFence } from '../sync/syncfile.js';

const { LG_COUNT, LG_CAP, LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN, T_LEDGER } = FL;
const { BLOCK_HEADER_WORDS } = A;

/** What the reaper does with one entry of a dead slot: `value`/`generation` as recorded. */
export type LedgerReaper = (arena: Arena, value: number, generation: number, deadSlot: number) => void;

export const LedgerKind = { FENCE_REF: FL.LGK_FENCE_REF, OPERATION: 2, DRIVER: 3, JOB: 4 } as const;

const reapers: LedgerReaper[] = [];
/** Registers the reaper of ledger kind `kind` (1..63) in this thread. */
export function defineLedgerKind(kind: number, reaper: LedgerReaper): void {
  if (!Number.isInteger(kind) || kind < 1 || kind > 63) throw Errors.invalid(`ledger kind ${kind} not in 1..63`);
  reapers[kind] = reaper;
}

const FIRST_CAP = 20;

/** Records `[kind, value, gen]` for the calling thread. Throws ENOMEM (nothing recorded). */
export function ledgerAdd(arena: Arena, kind: number, value: number, gen: number): void {
  const i32 = arena.i32;
  const lw = ledgerReserve(arena);
  const n = i32[lw + LG_COUNT];
  const e = lw + LG_ENTRIES + n * LG_STRIDE;
  i32[e + LE_KIND] = kind;
  i32[e + LE_VALUE] = value;
  i32[e + LE_GEN] = gen;
  i32[lw + LG_COUNT] = n + 1;
}

/**
 * Makes room for one more entry in the calling thread's ledger (allocating or growing it) and
 * returns its payload word index: a caller can then record an entry with plain writes only.
 * Throws ENOMEM.
 */
export function ledgerReserve(arena: Arena): number {
  const i32 = arena.i32;
  const sw = arena.slotBase + T_LEDGER;
  let lw = i32[sw];
  if (lw === 0) {
    lw = arena.allocBlock((BLOCK_HEADER_WORDS + LG_ENTRIES + FIRST_CAP * LG_STRIDE) * 4, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
    // Installed in the run that allocated it (no call between): a reaper always finds it.
    i32[lw + LG_COUNT] = 0;
    i32[lw + LG_CAP] = 0;
    i32[sw] = lw;
    i32[lw + LG_CAP] = capacityOf(arena, lw);
  }
  const n = i32[lw + LG_COUNT];
  if (n === i32[lw + LG_CAP]) {
    const left = ledgerCompact(arena);
    if (left > i32[lw + LG_CAP] >>> 1) lw = grow(arena, lw, left);
  }
  return lw;
}

/**
 * Imports a sync-file fd as a tracked reference: SyncFile.getFence and trackRef in one step, with
 * the ledger entry written right after the refcount increment (no call between), so a thread
 * terminated at any point either holds no reference or one its reaper will drop.
 * Threads: the importer. Returns the fence (put it with putTracked). Throws EBADF (fd not open), ENOMEM.
 */
export function importFd(arena: Arena, fd: number): Fence {
  ledgerReserve(arena);
  return fenceView(arena, syncFileFence(arena, fd, true));
}

/** Entries that fit in ledger block `lw`. */
function capacityOf(arena: Arena, lw: number): number {
  return Math.floor((arena.payloadBytes(lw - BLOCK_HEADER_WORDS) / 4 - LG_ENTRIES) / LG_STRIDE);
}

/**
 * Moves the ledger to a block twice as large. Each block in flight sits in the slot's spare word
 * from the run that allocates or unlinks it to its end, so a terminate() anywhere leaks neither.
 */
function grow(arena: Arena, lw: number, n: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const cap = i32[lw + LG_CAP] * 2;
  const nw = arena.allocBlock((BLOCK_HEADER_WORDS + LG_ENTRIES + cap * LG_STRIDE) * 4, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
  i32[sb + FL.T_LEDGER_SPARE_GEN] = i32[nw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + FL.T_LEDGER_SPARE] = nw;
  i32.copyWithin(nw + LG_ENTRIES, lw + LG_ENTRIES, lw + LG_ENTRIES + n * LG_STRIDE);
  i32[nw + LG_COUNT] = n;
  i32[nw + LG_CAP] = capacityOf(arena, nw);
  // Swap in one run: the slot names the new block, the spare the old one.
  i32[sb + FL.T_LEDGER_SPARE_GEN] = i32[lw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + FL.T_LEDGER_SPARE] = lw;
  i32[sb + T_LEDGER] = nw;
  arena.freeBlock(lw - BLOCK_HEADER_WORDS);
  i32[sb + FL.T_LEDGER_SPARE] = 0;
  return nw;
}

/**
 * Removes the most recent entry equal to `[kind, value, gen]` (the calling thread's). Returns
 * whether it was there. The ledger block is freed when it empties (so `arena.check()` sees no
 * leak once a thread holds nothing).
 */
export function ledgerRemove(arena: Arena, kind: number, value: number, gen: number): boolean {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  if (lw === 0) return false;
  const n = i32[lw + LG_COUNT];
  for (let j = n - 1; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    if (i32[e + LE_KIND] === kind && i32[e + LE_VALUE] === value && i32[e + LE_GEN] === gen) {
      const last = lw + LG_ENTRIES + (n - 1) * LG_STRIDE;
      i32[e + LE_KIND] = i32[last + LE_KIND];
      i32[e + LE_VALUE] = i32[last + LE_VALUE];
      i32[e + LE_GEN] = i32[last + LE_GEN];
      i32[lw + LG_COUNT] = n - 1;
      if (n === 1) release(arena, lw);
      return true;
    }
  }
  return false;
}

/** Frees the calling thread's emptied ledger block (via the spare word, see grow). */
function release(arena: Arena, lw: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  i32[sb + FL.T_LEDGER_SPARE_GEN] = i32[lw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + FL.T_LEDGER_SPARE] = lw;
  i32[sb + T_LEDGER] = 0;
  arena.freeBlock(lw - BLOCK_HEADER_WORDS);
  i32[sb + FL.T_LEDGER_SPARE] = 0;
}

/**
 * Drops entries whose block (payload word `value`) is no longer live at `generation` — objects
 * finished by other threads. Returns the number of entries left.
 */
export function ledgerCompact(arena: Arena): number {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  if (lw === 0) return 0;
  let n = i32[lw + LG_COUNT];
  for (let j = n - 1; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    if (arena.isLive(i32[e + LE_VALUE] - BLOCK_HEADER_WORDS, i32[e + LE_GEN])) continue;
    const last = lw + LG_ENTRIES + (n - 1) * LG_STRIDE;
    i32.copyWithin(e, last, last + LG_STRIDE);
    n--;
  }
  i32[lw + LG_COUNT] = n;
  return n;
}

/** Entries in the calling thread's ledger (stale ones included until compacted). */
export function ledgerSize(arena: Arena): number {
  const lw = arena.i32[arena.slotBase + T_LEDGER];
  return lw === 0 ? 0 : arena.i32[lw + LG_COUNT];
}

/**
 * Records that the calling thread holds one reference on `fence` (one it got from create, get or
 * SyncFile.getFence): if the thread dies, the reaper puts it. Returns the fence.
 * Threads: the holder. Throws EBADF on a released fence, ENOMEM.
 */
export function trackRef(fence: Fence): Fence {
  const arena = fence.arena;
  const fw = fence.fw;
  fence.refcount; // validates the view (EBADF on a released fence)
  ledgerAdd(arena, LedgerKind.FENCE_REF, fw, arena.generationAt(fw - BLOCK_HEADER_WORDS));
  return fence;
}

/**
 * Puts a reference recorded by {@link trackRef} and forgets it. Threads: the holder.
 * Throws EINVAL when the calling thread recorded no reference on `fence` (nothing is put).
 */
export function putTracked(fence: Fence): void {
  const arena = fence.arena;
  const fw = fence.fw;
  const i32 = arena.i32;
  fence.refcount; // validates the view (EBADF on a released fence)
  const gen = arena.generationAt(fw - BLOCK_HEADER_WORDS);
  const lw = i32[arena.slotBase + T_LEDGER];
  const n = lw === 0 ? 0 : i32[lw + LG_COUNT];
  let j = n - 1;
  for (; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    if (i32[e + LE_KIND] === LedgerKind.FENCE_REF && i32[e + LE_VALUE] === fw && i32[e + LE_GEN] === gen) break;
  }
  if (j < 0) throw Errors.invalid('putTracked: the calling thread tracks no reference on this fence');
  // The drop first, then forgetting the entry, in one run (see pushRelease: terminate() can land
  // at the Atomics call, not after it): a thread terminated here still records a reference it
  // holds (the reaper puts it), or neither records nor holds it.
  const d = pushRelease(arena, fw);
  const old = Atomics.sub(i32, fw + FL.F_REFCOUNT, 1);
  if (old < 1) {
    Atomics.add(i32, fw + FL.F_REFCOUNT, 1);
    i32[arena.slotBase + FL.T_RELEASE_DEPTH] = d;
    throw Errors.badHandle('fence', fence.handle, `putTracked on a fence with refcount ${old}`);
  }
  const e = lw + LG_ENTRIES + j * LG_STRIDE;
  const last = lw + LG_ENTRIES + (n - 1) * LG_STRIDE;
  i32[e + LE_KIND] = i32[last + LE_KIND];
  i32[e + LE_VALUE] = i32[last + LE_VALUE];
  i32[e + LE_GEN] = i32[last + LE_GEN];
  i32[lw + LG_COUNT] = n - 1;
  if (old !== 1) i32[arena.slotBase + FL.T_RELEASE_DEPTH] = d;
  else if (d < FL.RELEASE_CAP) i32[arena.slotBase + FL.T_RELEASE + 2 * d + 1] |= FL.REL_DROPPED;
  if (n === 1) release(arena, lw);
  if (old === 1) releaseFenceAt(arena, fw, d, fence);
}

defineLedgerKind(LedgerKind.FENCE_REF, (arena, fw, gen) => {
  // The dead thread held a reference, so the fence cannot have been released: still check.
  if (arena.isLive(fw - BLOCK_HEADER_WORDS, gen)) putFence(arena, fw);
});

onReap(ReapStage.LEDGER, (arena, slot) => {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  // A block the dead thread was installing or retiring (see grow): not the ledger, just memory.
  const spare = i32[b + FL.T_LEDGER_SPARE];
  if (spare !== 0 && slot !== arena.slot && arena.isLive(spare - BLOCK_HEADER_WORDS, i32[b + FL.T_LEDGER_SPARE_GEN]))
    arena.freeBlock(spare - BLOCK_HEADER_WORDS);
  i32[b + FL.T_LEDGER_SPARE] = 0;
  const sw = b + T_LEDGER;
  const lw = i32[sw];
  if (lw === 0) return;
  i32[sw] = 0;
  const n = i32[lw + LG_COUNT];
  let error: unknown;
  let failed = false;
  // Newest first, like unwinding: what a thread made last (an operation) goes before what it
  // made it with (its driver).
  for (let j = n - 1; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    const reaper = reapers[i32[e + LE_KIND]];
    try {
      reaper?.(arena, i32[e + LE_VALUE], i32[e + LE_GEN], slot);
    } catch (err) {
      if (!failed) error = err;
      failed = true;
    }
  }
  // The dead thread allocated the block; freeing it from here counts it in our slot's stats,
  // which the arena folds together, so the live counters stay right.
  arena.freeBlock(lw - BLOCK_HEADER_WORDS);
  if (failed) throw error;
});

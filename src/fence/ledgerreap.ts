/**
 * The reference ledger's reaper (the ledger itself: ./ledger.ts): the LEDGER reap stage runs the
 * reaper of every entry a dead thread's ledger still records, newest first, and frees the block;
 * and the check hook that bounds every thread's ledger.
 *
 * Kinds are registered per thread like shared callbacks: the reaping thread must have loaded the
 * module that defines a kind (this one defines LGK_FENCE_REF; the driver its own kinds).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, onThreadCheck, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, describeValue, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { entryCount } from './ledger.js';
import { putFence } from './release.js';

const { LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN, T_LEDGER, T_LEDGER_SPARE, T_LEDGER_SPARE_GEN } = L;
const { BLOCK_HEADER_WORDS } = A;

/** What the reaper does with one entry of a dead slot: `value`/`generation` as recorded. */
export type LedgerReaper = (arena: Arena, value: number, generation: number, deadSlot: number) => void;

const reapers: LedgerReaper[] = [];
/** Registers the reaper of ledger kind `kind` (1..63) in this thread. Throws EINVAL. */
export function defineLedgerKind(kind: number, reaper: LedgerReaper): void {
  if (!Number.isInteger(kind) || kind < 1 || kind > 63) throw Errors.invalid(`ledger kind ${describeValue(kind)} not in 1..63`);
  reapers[kind] = reaper;
}


defineLedgerKind(L.LGK_FENCE_REF, (arena, fw, gen) => {
  if (gen === L.LE_GEN_CREATING) return reapCreating(arena, fw);
  // The dead thread held a reference, so the fence cannot have been released: still check.
  if (arena.isLive(fw - BLOCK_HEADER_WORDS, gen)) putFence(arena, fw);
});

/**
 * A dead thread's fence reference it was creating (ledgerOpenCreating): nothing when the allocation
 * had not happened (value 0); the block freed when it was not initialised yet (fenceAllocWith zeroes
 * the flags in the allocation's run); else its only reference put. Nobody else knew the fence.
 */
function reapCreating(arena: Arena, fw: number): void {
  if (fw === 0) return;
  const hw = fw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, arena.generationAt(hw))) return;
  if (arena.i32[fw + L.F_FLAGS] & L.FLAG_INITIALIZED) putFence(arena, fw);
  else arena.freeBlock(hw);
}

/** Reap hook: runs the reaper of every entry of the slot's ledger, newest first, and frees it. */
function reapLedger(arena: Arena, slot: number): void {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  // A block the dead thread was installing or retiring (see grow): not the ledger, just memory.
  const spare = i32[b + T_LEDGER_SPARE];
  if (spare !== 0 && slot !== arena.slot && arena.isLive(spare - BLOCK_HEADER_WORDS, i32[b + T_LEDGER_SPARE_GEN]))
    arena.freeBlock(spare - BLOCK_HEADER_WORDS);
  i32[b + T_LEDGER_SPARE] = 0;
  const sw = b + T_LEDGER;
  const lw = i32[sw];
  if (lw === 0) return;
  i32[sw] = 0;
  if (slot === arena.slot) arena.ledgerSeen = 0;
  const n = entryCount(arena, lw);
  let first: unknown = NO_ERROR;
  // Newest first, like unwinding: what a thread made last (an operation) goes before what it
  // made it with (its driver).
  for (let j = n - 1; j >= 0; j--) first = attempt(reapEntry, arena, lw + LG_ENTRIES + j * LG_STRIDE, slot, first);
  // The dead thread allocated the block; freeing it from here counts it in our slot's stats,
  // which the arena folds together, so the live counters stay right.
  arena.freeBlock(lw - BLOCK_HEADER_WORDS);
  rethrowFirst(first);
}

/** Runs the reaper of the ledger entry at word `e` of dead slot `slot` (none for an unknown kind). */
function reapEntry(arena: Arena, e: number, slot: number): void {
  const i32 = arena.i32;
  reapers[i32[e + LE_KIND]]?.(arena, i32[e + LE_VALUE], i32[e + LE_GEN], slot);
}
onReap(ReapStage.LEDGER, reapLedger);

/**
 * Check hook: every occupied slot's ledger is a live block with its count and capacity in bounds.
 * A live thread's ledger is its own bookkeeping, kept once allocated (an emptied one is not freed,
 * so a thread creating and putting tracked references does not allocate it each time): not a leak.
 * What its entries name is checked as usual. ledgerCompact frees an empty one; the reaper and
 * detach free it with its thread.
 */
onThreadCheck((arena, s, b) => {
  const i32 = arena.i32;
  const lw = i32[b + T_LEDGER];
  if (lw === 0) return [];
  const permanent = i32[b + A.T_STATE] === A.SLOT_LIVE ? [lw] : [];
  try {
    entryCount(arena, lw);
    return { permanent };
  } catch (e) {
    return { problems: [`thread ${s}: ${(e as Error).message}`], permanent };
  }
});

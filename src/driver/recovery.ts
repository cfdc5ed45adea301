/**
 * A dead exporter's operations. Like a GPU reset: what it submitted and had not ended gets
 * -ENODEV on its out-fence and is freed (the OPERATION ledger kind), and an end it had claimed
 * but not finished is finished (the OPERATIONS reap stage). The driver's own lifetime (the DRIVER
 * kind) is in driver.ts.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errno } from '../errors.js';
import { defineLedgerKind } from '../fence/ledgerreap.js';
import { completeOp, finishOp } from './operation.js';

const { OP_STATE, OP_FENCE, OPS_GEN_SHIFT } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * Reap hook: a thread terminated between claiming an operation and freeing it leaves the claim in
 * its slot (a T_FINISH record per end it was nested in); finish them here, innermost first, as
 * the thread would have returned through them.
 * Threads: the reaper. Also run by the DRIVER kind before it decides whether a driver is idle.
 */
export function finishDeadOps(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: never inside finishOp
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const depth = Math.min(Math.max(i32[b + L.T_FINISH_DEPTH], 0), L.FINISH_CAP);
  for (let k = depth - 1; k >= 0; k--) finishDeadEnd(arena, b + L.T_FINISH + k * L.FINISH_STRIDE);
  i32[b + L.T_FINISH_DEPTH] = 0;
}

/**
 * One end record of a dead thread, at `rec`. The record is ours to act on only while the block is
 * still that allocation (generation) in that thread's FINISHING state, or COUNTED, or in state 0
 * (ended, not yet freed).
 */
function finishDeadEnd(arena: Arena, rec: number): void {
  const i32 = arena.i32;
  const ow = i32[rec + L.FIN_OP];
  if (ow === 0) return;
  const finishing = i32[rec + L.FIN_STATE];
  if (!arena.isLive(ow - BLOCK_HEADER_WORDS, finishing >>> OPS_GEN_SHIFT)) return;
  const s = Atomics.load(i32, ow + OP_STATE);
  const counted = (finishing & ~((1 << OPS_GEN_SHIFT) - 1)) | L.OPS_COUNTED;
  // A terminate() inside the free leaves the block live with state 0 (the sanitizer poisons only
  // after the free commits: src/arena/alloc.ts freeSlow), or freed: either is handled above.
  if (s === finishing || s === counted || s === 0) completeOp(arena, ow, i32[rec + L.FIN_COUNTER], rec);
}
onReap(ReapStage.OPERATIONS, finishDeadOps);

defineLedgerKind(L.LGK_OPERATION, (arena, ow, gen) => {
  const i32 = arena.i32;
  const hw = ow - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen)) return; // ended and freed
  if (Atomics.load(i32, ow + OP_STATE) !== ((gen << OPS_GEN_SHIFT) | L.OPS_NEW)) {
    finishOp(arena, ow, gen, Errno.ENODEV, L.DRV_ABORTED, true); // published: end it (unless ending already)
    return;
  }
  // Never published (its submitter died inside submit): nobody else knows the operation or its
  // fence, which may be half initialised; free both blocks as they are.
  const fw = i32[ow + OP_FENCE];
  const fhw = fw - BLOCK_HEADER_WORDS;
  // Any generation: a fence nobody else ever saw was not freed or reused by anybody.
  if (fw !== 0 && arena.isLive(fhw, arena.generationAt(fhw))) arena.freeBlock(fhw);
  arena.freeBlock(hw);
});
